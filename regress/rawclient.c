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
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void
sleep_ms(long ms)
{
	struct timespec	 ts;

	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000;
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

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
drain(int s, size_t *bytes, size_t *nfds)
{
	unsigned char	 buf[512];
	union {
		struct cmsghdr	hdr;
		unsigned char	buf[CMSG_SPACE(16 * sizeof(int))];
	}		 cm;
	struct msghdr	 mh;
	struct iovec	 iov;
	struct cmsghdr	*c;
	ssize_t		 n;
	size_t		 i, k;
	int		 fd;

	memset(&mh, 0, sizeof(mh));
	iov.iov_base = buf;
	iov.iov_len = sizeof(buf);
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cm.buf;
	mh.msg_controllen = sizeof(cm.buf);
	if ((n = recvmsg(s, &mh, 0)) == -1)
		return errno == ECONNRESET ? 1 : (err(1, "recvmsg"), 1);
	for (c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (i = 0; i < k; i++) {
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
			close(fd);
			(*nfds)++;
		}
	}
	*bytes += n;
	return n == 0;
}

int
main(int argc, char *argv[])
{
	struct sockaddr_un	 sun;
	struct pollfd		 pfd;
	unsigned char		 buf[4096];
	const char		*errstr;
	size_t			 len, bytes = 0, nfds = 0;
	long			 delay = 0, timeout = 2000;
	int			 ch, s, i, eof = 0;

	while ((ch = getopt(argc, argv, "d:t:")) != -1) {
		switch (ch) {
		case 'd':
			delay = strtonum(optarg, 0, 60000, &errstr);
			if (errstr != NULL)
				errx(1, "-d %s: %s", optarg, errstr);
			break;
		case 't':
			timeout = strtonum(optarg, 0, 600000, &errstr);
			if (errstr != NULL)
				errx(1, "-t %s: %s", optarg, errstr);
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
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlcpy(sun.sun_path, argv[0], sizeof(sun.sun_path)) >=
	    sizeof(sun.sun_path))
		errx(1, "%s: path too long", argv[0]);
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
	pfd.fd = s;
	pfd.events = POLLIN;
	while (!eof && poll(&pfd, 1, (int)timeout) > 0)
		eof = drain(s, &bytes, &nfds);
	printf("bytes %zu fds %zu %s\n", bytes, nfds, eof ? "eof" : "open");
	close(s);
	return 0;
}
