/*
 * load: many host clients at once, for the load and fault tests.
 *
 *	load -s socket [-c concurrent] [-n total] [-t seconds] [region]
 *		total handshakes, up to concurrent at a time, each on
 *		its own connection: version, request, 3 fds, close.
 *		Prints "served N failed N".
 *	load -s socket -F requests [-t seconds] [region]
 *		one connection that sends the requests and never reads,
 *		holding on until the timeout.  Prints "flooded N".
 *	load -s socket -H connections [-t seconds]
 *		connections that say nothing, held until the timeout.
 *		Prints "held N".
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib.h"

struct cl {
	int		 fd;
	int		 state;	/* 0 connecting, 1 version, 2 reply */
	size_t		 got;
};

static struct sockaddr_un	 sun;
static unsigned char		 req[2 + 15];
static size_t			 reqlen;

static int
cl_open(void)
{
	int	 s;

	if ((s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0)) == -1)
		return -1;
	if (connect(s, (struct sockaddr *)&sun, sizeof(sun)) == -1 &&
	    errno != EINPROGRESS && errno != EAGAIN) {
		close(s);
		return -1;
	}
	return s;
}

/* Read the 16-byte reply and its fds; returns fds received or -1. */
static int
cl_reply(int s, unsigned char *buf, size_t len)
{
	ssize_t	 n;
	int	 nfds = 0;

	if ((n = recv_fds(s, buf, len, NULL, &nfds)) <= 0)
		return n == -1 && errno == EAGAIN ? 0 : -1;
	return (int)n * 4 + nfds;	/* bytes and fds, packed */
}

/* One step of a client; returns 1 when done, -1 on failure. */
static int
cl_step(struct cl *c)
{
	unsigned char	 buf[16];
	ssize_t		 n;
	int		 r;

	switch (c->state) {
	case 0:
	case 1:
		n = read(c->fd, buf, 4 - c->got);
		if (n == -1 && errno == EAGAIN)
			return 0;
		if (n <= 0)
			return -1;
		if ((c->got += n) < 4)
			return 0;
		if (send(c->fd, req, reqlen, MSG_NOSIGNAL) != (ssize_t)reqlen)
			return -1;
		c->state = 2;
		c->got = 0;
		return 0;
	default:
		if ((r = cl_reply(c->fd, buf, sizeof(buf) - c->got)) == 0)
			return 0;
		if (r < 0 || r / 4 + c->got > 16 || (c->got == 0 &&
		    r % 4 != 3))
			return -1;
		c->got += r / 4;
		return c->got == 16 ? 1 : 0;
	}
}

static void
run_load(unsigned int conc, unsigned int total, long long deadline)
{
	struct cl	*cl;
	struct pollfd	*pfd;
	unsigned int	 i, started = 0, served = 0, failed = 0, live = 0;
	int		 r;

	if ((cl = calloc(conc, sizeof(*cl))) == NULL ||
	    (pfd = calloc(conc, sizeof(*pfd))) == NULL)
		err(1, NULL);
	for (i = 0; i < conc; i++)
		cl[i].fd = -1;
	while ((served + failed < total) && now_ms() < deadline) {
		for (i = 0; i < conc; i++) {
			if (cl[i].fd == -1 && started < total) {
				memset(&cl[i], 0, sizeof(cl[i]));
				started++;
				if ((cl[i].fd = cl_open()) == -1)
					failed++;
				else
					live++;
			}
			pfd[i].fd = cl[i].fd;
			pfd[i].events = POLLIN;
			pfd[i].revents = 0;
		}
		if (live == 0)
			continue;
		if (poll(pfd, conc, 1000) == -1 && errno != EINTR)
			err(1, "poll");
		for (i = 0; i < conc; i++) {
			if (cl[i].fd == -1 || pfd[i].revents == 0)
				continue;
			if ((r = cl_step(&cl[i])) == 0)
				continue;
			if (r == 1)
				served++;
			else
				failed++;
			close(cl[i].fd);
			cl[i].fd = -1;
			live--;
		}
	}
	printf("served %u failed %u\n", served, failed + (total - served -
	    failed));
	for (i = 0; i < conc; i++)
		if (cl[i].fd != -1)
			close(cl[i].fd);
	free(cl);
	free(pfd);
}

int
main(int argc, char *argv[])
{
	const char	*name = "ril", *path = NULL;
	unsigned int	 conc = 1, total = 1, flood = 0, hold = 0, i;
	long long	 deadline, secs = 30;
	int		 ch, s;

	while ((ch = getopt(argc, argv, "c:F:H:n:s:t:")) != -1) {
		switch (ch) {
		case 'c':
			conc = getnum(optarg, 1, 100000, "-c");
			break;
		case 'F':
			flood = getnum(optarg, 1, 10000000, "-F");
			break;
		case 'H':
			hold = getnum(optarg, 1, 100000, "-H");
			break;
		case 'n':
			total = getnum(optarg, 1, 100000000, "-n");
			break;
		case 's':
			path = optarg;
			break;
		case 't':
			secs = getnum(optarg, 1, 3600, "-t");
			break;
		default:
			errx(1, "usage: load -s socket [-c n] [-n n] "
			    "[-F n] [-H n] [-t s] [region]");
		}
	}
	if (optind < argc)
		name = argv[optind];
	if (path == NULL || strlen(name) > 15 || name[0] == '\0')
		errx(1, "need -s socket and a region name of 1 to 15 bytes");
	if (unix_addr(&sun, path) == -1)
		err(1, "%s", path);
	reqlen = 2 + strlen(name);
	req[0] = (unsigned char)strlen(name);
	req[1] = 0;
	memcpy(req + 2, name, strlen(name));
	deadline = now_ms() + secs * 1000;

	if (flood) {
		if ((s = cl_open()) == -1)
			err(1, "%s", path);
		for (i = 0; i < flood; i++)
			if (send(s, req, reqlen, MSG_NOSIGNAL | MSG_DONTWAIT) !=
			    (ssize_t)reqlen)
				break;
		printf("flooded %u\n", i);
		fflush(stdout);
		sleep_ms(ms_left(deadline));
		return 0;
	}
	if (hold) {
		for (i = 0; i < hold; i++)
			if (cl_open() == -1)
				break;
		printf("held %u\n", i);
		fflush(stdout);
		sleep_ms(ms_left(deadline));
		return 0;
	}
	run_load(conc, total, deadline);
	return 0;
}
