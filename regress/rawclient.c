/*
 * rawclient: send raw bytes to a server socket and report what comes
 * back, for the hostile-client tests.
 *
 *	rawclient [-d delay] [-t timeout] socket [hex ...]
 *
 * Each hex argument goes out in its own write, delay ms after the one
 * before.  Then everything the server sends is read until it closes or
 * timeout ms pass, and one line is printed:
 *
 *	bytes N fds N eof|open
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

static size_t	 unhex(const char *, unsigned char *, size_t);
static int	 drain(int, size_t *, int *);

static size_t
unhex(const char *s, unsigned char *buf, size_t len)
{
	size_t		 n = 0;
	unsigned int	 v;

	while (s[0] != '\0' && s[1] != '\0' && n < len) {
		if (sscanf(s, "%2x", &v) != 1)
			errx(1, "bad hex: %s", s);
		buf[n++] = (unsigned char)v;
		s += 2;
	}
	if (s[0] != '\0')
		errx(1, "odd or too long hex argument");
	return n;
}

/* Read what is there; returns 1 at end of file. */
static int
drain(int s, size_t *bytes, int *nfds)
{
	unsigned char	 buf[512];
	ssize_t		 n;

	if ((n = recv_fds(s, buf, sizeof(buf), NULL, nfds)) == -1)
		return errno == ECONNRESET ? 1 : (err(1, "recvmsg"), 1);
	*bytes += n;
	return n == 0;
}

int
main(int argc, char *argv[])
{
	struct sockaddr_un	 sun;
	unsigned char		 buf[4096];
	size_t			 len, bytes = 0;
	int			 ch, s, i, eof = 0, nfds = 0, delay = 0;
	int			 timeout = 2000;

	while ((ch = getopt(argc, argv, "d:t:")) != -1) {
		switch (ch) {
		case 'd':
			delay = getnum(optarg, 0, 60000, "-d");
			break;
		case 't':
			timeout = getnum(optarg, 0, 600000, "-t");
			break;
		default:
			fprintf(stderr, "usage: rawclient [-d delay] "
			    "[-t timeout] socket [hex ...]\n");
			return 1;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1)
		errx(1, "no socket");
	if (unix_addr(&sun, argv[0]) == -1)
		err(1, "%s", argv[0]);
	if ((s = socket(AF_UNIX, SOCK_STREAM, 0)) == -1)
		err(1, "socket");
	if (connect(s, (struct sockaddr *)&sun, sizeof(sun)) == -1)
		err(1, "%s", argv[0]);
	for (i = 1; i < argc; i++) {
		if (i > 1)
			sleep_ms(delay);
		len = unhex(argv[i], buf, sizeof(buf));
		if (len > 0 && send(s, buf, len, MSG_NOSIGNAL) == -1) {
			eof = 1;	/* the server has already closed */
			break;
		}
	}
	/* Whatever comes within timeout ms of the last. */
	while (!eof && readable(s, timeout))
		eof = drain(s, &bytes, &nfds);
	printf("bytes %zu fds %d %s\n", bytes, nfds, eof ? "eof" : "open");
	close(s);
	return 0;
}
