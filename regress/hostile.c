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
 *	hostile -w -s socket -q qemu-socket
 *		a watcher that never reads, while VMs come and go on
 *		qemu-socket (connections that attach and close) until the
 *		server cuts the watcher off, and a second watcher that
 *		reads and must see every event, in order.
 *
 * Once in place it prints one line, "flooding N", "backlog full", or
 * "cut off after N cycles, the reader saw M events in order" (or why
 * not), and holds on until its standard input ends.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <endian.h>
#include <err.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../ivshm.h"
#include "lib.h"

#define WATCH_CYCLES	20000	/* VMs that come and go, at the most */
#define WATCH_TIMEOUT	10000	/* ms: an event to the reading watcher */
#define WATCH_PACE	25	/* ms a cycle: the server's log keeps up */

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

static int
dial(const char *path)
{
	struct sockaddr_un	 sun;
	int			 s;

	if (unix_addr(&sun, path) == -1)
		errx(1, "%s: path too long", path);
	if ((s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		err(1, "socket");
	if (connect(s, (struct sockaddr *)&sun, sizeof(sun)) == -1)
		err(1, "%s", path);
	return s;
}

static void
watch_request(int s)
{
	uint16_t	 req = htole16(IVSHM_REQ_WATCH);

	if (write(s, &req, sizeof(req)) != sizeof(req))
		err(1, "watch request");
}

/* The next event on the reading watcher, of type want: 1, or 0. */
static int
watch_next(int s, uint32_t want, uint64_t *gen)
{
	struct ivshm_event	 ev;
	long long		 deadline = now_ms() + WATCH_TIMEOUT;
	size_t			 got = 0;
	ssize_t			 n;

	while (got < sizeof(ev)) {
		if (fd_wait(s, POLLIN, deadline) != 1)
			return 0;
		if ((n = read(s, (char *)&ev + got, sizeof(ev) - got)) <= 0)
			return 0;
		got += n;
	}
	if (le32toh(ev.type) != want || le64toh(ev.generation) != *gen + 1)
		return 0;
	*gen += 1;
	return 1;
}

/*
 * The lazy watcher sends its request and reads nothing, not even the
 * version.  Each VM cycle must reach the reader: attach, then detach.
 */
static void
watchers(const char *path, const char *qpath)
{
	struct ivshm_event	 ev;
	struct pollfd		 pfd;
	long long		 start;
	uint64_t		 gen;
	uint32_t		 v;
	unsigned int		 i, seen = 0;
	int			 lazy, reader, vm, cut = 0;

	lazy = dial(path);
	watch_request(lazy);
	reader = dial(path);
	if (read(reader, &v, sizeof(v)) != sizeof(v))
		err(1, "version");
	watch_request(reader);
	if (read(reader, &ev, sizeof(ev)) != sizeof(ev) ||
	    (le32toh(ev.flags) & IVSHM_EVENT_INITIAL) == 0)
		errx(1, "no initial event");
	gen = le64toh(ev.generation);
	start = now_ms();
	for (i = 0; i < WATCH_CYCLES && !cut; i++) {
		vm = dial(qpath);
		if (!watch_next(reader, IVSHM_EVENT_ATTACH, &gen))
			break;
		close(vm);
		if (!watch_next(reader, IVSHM_EVENT_DETACH, &gen))
			break;
		seen += 2;
		sleep_ms(WATCH_PACE);
		pfd.fd = lazy;
		pfd.events = POLLIN;
		cut = poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLHUP);
	}
	/* Its end would show as readable: it has had no event since. */
	pfd.fd = reader;
	pfd.events = POLLIN;
	if (cut && poll(&pfd, 1, 0) == 0)
		printf("cut off after %u cycles, the reader saw %u events in "
		    "order and is still served after %lld ms\n", i, seen,
		    now_ms() - start);
	else
		printf("not cut off after %u cycles, or the reader was; it saw "
		    "%u events in order\n", i, seen);
}

int
main(int argc, char *argv[])
{
	const char	*path = NULL, *bpath = NULL, *qpath = NULL;
	unsigned int	 conns = 0, nreq = 1000;
	char		 buf[64];
	int		 ch, wflag = 0;

	while ((ch = getopt(argc, argv, "b:f:n:q:s:w")) != -1) {
		switch (ch) {
		case 'q':
			qpath = optarg;
			break;
		case 'w':
			wflag = 1;
			break;
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
			    "[-n requests] [region] | -b path | "
			    "-w -s socket -q qemu-socket");
		}
	}
	if (wflag && path != NULL && qpath != NULL)
		watchers(path, qpath);
	else if (bpath != NULL) {
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
