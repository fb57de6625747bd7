/*
 * qtline: QEMU's qtest line protocol from the command line, for a
 * QEMU that someone else started with -qtest on a listening UNIX
 * socket (libvirt, through <qemu:commandline>).
 *
 *	qtline socket command ...
 *
 * Sends each command and prints its reply, the line that starts with
 * "OK", "FAIL" or "ERR"; interrupt lines ("IRQ ...") are skipped.
 * Exits 1 unless every reply is "OK".
 */

#include <sys/socket.h>
#include <sys/un.h>

#include <err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib.h"

#define QT_TIMEOUT	10000	/* ms for a reply */

/*
 * One line, read a byte at a time so that nothing past it is taken
 * from the socket; NULL when none came in time.
 */
static char *
getline_fd(int fd, char *buf, size_t len, long long deadline)
{
	size_t	 n = 0;
	char	 c;

	while (n + 1 < len) {
		if (!readable(fd, ms_left(deadline)) ||
		    read(fd, &c, 1) != 1)
			return NULL;
		buf[n++] = c;
		if (c == '\n')
			break;
	}
	buf[n] = '\0';
	return buf;
}

/* The reply to a command: the next line that is not an interrupt. */
static char *
reply(int fd, char *buf, size_t len)
{
	long long	 deadline = now_ms() + QT_TIMEOUT;
	char		*r;

	while ((r = getline_fd(fd, buf, len, deadline)) != NULL &&
	    strncmp(r, "IRQ", 3) == 0)
		;
	return r;
}

int
main(int argc, char *argv[])
{
	struct sockaddr_un	 sun;
	char			 buf[256], *r;
	int			 i, s, rv = 0;

	if (argc < 3) {
		fprintf(stderr, "usage: %s socket command ...\n",
		    getprogname());
		return 1;
	}
	if (unix_addr(&sun, argv[1]) == -1)
		err(1, "%s", argv[1]);
	if ((s = socket(AF_UNIX, SOCK_STREAM, 0)) == -1)
		err(1, "socket");
	if (connect(s, (struct sockaddr *)&sun, sizeof(sun)) == -1)
		err(1, "%s", argv[1]);
	for (i = 2; i < argc; i++) {
		if (dprintf(s, "%s\n", argv[i]) < 0)
			err(1, "%s: %s", argv[1], argv[i]);
		if ((r = reply(s, buf, sizeof(buf))) == NULL)
			errx(1, "%s: no reply to \"%s\"", argv[1], argv[i]);
		fputs(r, stdout);
		if (strncmp(r, "OK", 2) != 0)
			rv = 1;
	}
	close(s);
	return rv;
}
