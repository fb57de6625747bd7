/*
 * ivctl.h: what the files of ivctl share.
 */

#ifndef IVCTL_H
#define IVCTL_H

#define EX_FAIL		1	/* the command failed */
#define EX_USAGE	2	/* a usage error, or no server */

void	usage(void) __attribute__((__noreturn__));
void	die(int, const char *, ...)
	    __attribute__((__noreturn__, __format__ (printf, 2, 3)));

/* ivctl_peer.c */
int	peer_main(const char *, int, char **);

#endif /* IVCTL_H */
