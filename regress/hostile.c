/*
 * hostile: what a hostile local user does to ivserver, for the
 * hardening tests.
 *
 *	hostile -s socket -f connections [-n requests] [region]
 *		connections that each send the requests (1000) for the
 *		region ("ril") and never read a reply: every reply sent
 *		leaves its fds in flight, charged to the serving user.
 *	hostile -b path
 *		a listening socket at path whose backlog is full, so
 *		that a connect to it would block.
 *
 * Once in place it prints one line, "flooding N" or "backlog full",
 * and holds on until its standard input ends.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <err.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib.h"

/* Each connection sends until its socket is full, reading nothing. */
static unsigned int
flood(const char *path, unsigned int conns, unsigned int nreq,
    const char *name)
{
	struct sockaddr_un	 sun;
	unsigned char		 req[2 + 15];
	size_t			 len = strlen(name);
	unsigned int		 i, k, sent = 0;
	int			 s;

	if (len == 0 || len > 15)
		errx(1, "%s: a region name has 1 to 15 bytes", name);
	req[0] = (unsigned char)len;
	req[1] = 0;
	memcpy(req + 2, name, len);
	if (unix_addr(&sun, path) == -1)
		errx(1, "%s: path too long", path);
	for (i = 0; i < conns; i++) {
		if ((s = socket(AF_UNIX, SOCK_STREAM, 0)) == -1)
			err(1, "socket");
		if (connect(s, (struct sockaddr *)&sun, sizeof(sun)) == -1)
			err(1, "%s", path);
		for (k = 0; k < nreq; k++)
			if (send(s, req, 2 + len, MSG_NOSIGNAL |
			    MSG_DONTWAIT) != (ssize_t)(2 + len))
				break;
		sent += k;
	}
	return sent;
}

/* A listener with a backlog of one, filled until connect would block. */
static void
backlog(const char *path)
{
	struct sockaddr_un	 sun;
	int			 l, s;

	if (unix_addr(&sun, path) == -1)
		errx(1, "%s: path too long", path);
	if ((l = socket(AF_UNIX, SOCK_STREAM, 0)) == -1)
		err(1, "socket");
	if (bind(l, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    listen(l, 0) == -1)
		err(1, "%s", path);
	for (;;) {
		if ((s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0)) ==
		    -1)
			err(1, "socket");
		if (connect(s, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
			if (errno != EAGAIN)
				err(1, "%s", path);
			close(s);
			return;
		}
	}
}

int
main(int argc, char *argv[])
{
	const char	*path = NULL, *bpath = NULL;
	unsigned int	 conns = 0, nreq = 1000;
	char		 buf[64];
	int		 ch;

	while ((ch = getopt(argc, argv, "b:f:n:s:")) != -1) {
		switch (ch) {
		case 'b':
			bpath = optarg;
			break;
		case 'f':
			conns = getnum(optarg, 1, 100000, "connections");
			break;
		case 'n':
			nreq = getnum(optarg, 1, 1000000, "requests");
			break;
		case 's':
			path = optarg;
			break;
		default:
			errx(1, "usage: hostile -s socket -f connections "
			    "[-n requests] [region] | -b path");
		}
	}
	if (bpath != NULL) {
		backlog(bpath);
		printf("backlog full\n");
	} else if (path != NULL && conns > 0)
		printf("flooding %u\n", flood(path, conns, nreq,
		    optind < argc ? argv[optind] : "ril"));
	else
		errx(1, "need -b path, or -s socket and -f connections");
	fflush(stdout);
	while (read(STDIN_FILENO, buf, sizeof(buf)) > 0)
		;
	return 0;
}
