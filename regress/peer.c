/*
 * peer: a minimal peer of an ivshmem server in peer mode, speaking the
 * protocol as QEMU's ivshmem-doorbell device does, for the tests.
 *
 *	peer [-bvz] [-c count | -j count] [-l size] [-n vectors] [-t ms]
 *	    [-w ms] -s socket
 *
 * It connects, reads the handshake, checks every message of it and
 * prints "id N peers K": its own ID and how many other peers the server
 * named.  Then it leaves: it ends its side of the connection and reads
 * on until the server closes, so that when it exits the server has
 * taken its leave and a peer that comes next is not told of it.  These
 * do otherwise:
 *
 *	-b	send one byte, which the server must take as a goodbye,
 *		and print "dropped" once the server has closed;
 *	-c	join and leave count times, checking that each ID is the
 *		next one not in use, and print one line
 *		"cycles C first F last L wraps W peers K", K counting the
 *		peers named in every handshake.  Each connection but the
 *		last closes at once, so the server may not have read its
 *		end when the next one joins: the next handshake then names
 *		the ID just left, which is no other peer and not counted,
 *		and its leave must follow on the new connection.  The last
 *		one leaves as above;
 *	-j	join and leave count times, closing at once, and print
 *		"join p50 N p99 N us", the time from connect to the last
 *		own fd, for make bench;
 *	-w	stay up to ms milliseconds, or until standard input ends,
 *		following joins and leaves, then close at once.  An input
 *		line "ring P V" writes peer P's eventfd for vector V and is
 *		answered "rang P V", or "noring P V" when there is no such
 *		eventfd; "wait leaves N" is answered "leaves N" once N
 *		peers have left since it joined, at once if they have, so
 *		that a test can know the last leave has come before it ends
 *		the input; "wait peer P" is answered "peer P" once peer P
 *		is present with all its fds, at once if it is, so that a
 *		test knows all news before P's join has come; any other
 *		line is answered "error".  An
 *		interrupt on the own vector V prints "irq V".  At the end
 *		it prints "joins J leaves L now ID,...";
 *	-z	connect, print "connected", and read nothing, not even the
 *		handshake, until standard input ends: a peer that never
 *		reads.
 *
 * -l checks the size of the shared memory, -n (1) gives the vectors per
 * peer, -t (30000) the deadline of every read, -v traces to stderr.  A
 * protocol violation, a timeout or an error ends it with status 1 and
 * the reason on stderr.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <endian.h>
#include <err.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib.h"

#define MAXVEC		2048	/* QEMU's limit for vectors= */
#define NIDS		65536	/* IDs 0..65535 */

struct peer {
	long	 id;
	int	 nfd;
	int	*fds;		/* [nvectors], by vector */
};

struct conn {
	int		 s;
	long		 id;
	int		 shm;
	int		*own;		/* [nvectors] */
	int		 nown;
	struct peer	*peers;		/* the others present */
	size_t		 npeers;
	size_t		 peersize;
	unsigned char	 heard[NIDS / 8];	/* named in the handshake */
	int		 nheard;
	int		 joins;
	int		 leaves;
};

static void		 usage(void);
static int		 conn_open(struct conn *);
static void		 conn_close(struct conn *);
static void		 conn_leave(struct conn *);
static void		 await_leave(struct conn *, long);
static int		 recv_msg(struct conn *, int64_t *, int *);
static void		 check_eventfd(int, long);
static struct peer	*peer_find(struct conn *, long);
static struct peer	*peer_add(struct conn *, long);
static void		 peer_drop(struct conn *, struct peer *);
static int		 peer_cmp(const void *, const void *);
static void		 handshake(struct conn *);
static void		 notify(struct conn *, int64_t, int);
static void		 run_once(void);
static int		 us_cmp(const void *, const void *);
static void		 run_joins(long);
static void		 run_byte(void);
static void		 run_cycles(long);
static void		 run_watch(long);
static void		 run_silent(void);
static void		 watch_cmd(struct conn *, char *, long *, long *);
static void		 watch_ring(struct conn *, const char *, const char *);
static void		 watch_wait(struct conn *, long *);
static void		 watch_peer(struct conn *, long *);

static const char	*sockpath;
static int		 nvectors = 1;
static int		 timeout = 30000;	/* ms, each read */
static long long	 wantsize = -1;
static int		 verbose;
static dev_t		 shmdev;		/* the first connection's */
static ino_t		 shmino;
static int		 shmseen;

static void
usage(void)
{
	fprintf(stderr, "usage: %s [-bvz] [-c count | -j count] [-l size] "
	    "[-n vectors] [-t ms]\n\t[-w ms] -s socket\n", getprogname());
	exit(1);
}

/*
 * A non-blocking socket, so that neither a full backlog nor a silent
 * server can stop the test: connect retries until the deadline.
 */
static int
conn_open(struct conn *c)
{
	struct sockaddr_un	sun;
	long long		deadline;

	memset(c, 0, sizeof(*c));
	c->s = c->shm = -1;
	c->id = -1;
	if ((c->own = calloc(nvectors, sizeof(*c->own))) == NULL)
		err(1, NULL);
	if (unix_addr(&sun, sockpath) == -1)
		err(1, "%s", sockpath);
	if ((c->s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1)
		err(1, "socket");
	deadline = now_ms() + timeout;
	while (connect(c->s, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		if (errno != EAGAIN && errno != EINTR)
			err(1, "connect %s", sockpath);
		if (ms_left(deadline) == 0)
			errx(1, "timeout: connect %s: backlog full for %d ms",
			    sockpath, timeout);
		sleep_ms(1);
	}
	return (0);
}

static void
conn_close(struct conn *c)
{
	int	i;

	while (c->npeers > 0)
		peer_drop(c, &c->peers[c->npeers - 1]);
	free(c->peers);
	for (i = 0; i < c->nown; i++)
		close(c->own[i]);
	free(c->own);
	if (c->shm != -1)
		close(c->shm);
	if (c->s != -1)
		close(c->s);
	memset(c, 0, sizeof(*c));
	c->s = c->shm = -1;
}

/*
 * Leave and wait until the server has taken it: end of file to the
 * server, then the others' news until it closes.
 */
static void
conn_leave(struct conn *c)
{
	int64_t	v;
	int	fd;

	if (shutdown(c->s, SHUT_WR) == -1)
		err(1, "shutdown");
	while (recv_msg(c, &v, &fd))
		notify(c, v, fd);
	conn_close(c);
}

/* Read on until the server tells that peer id has left. */
static void
await_leave(struct conn *c, long id)
{
	int64_t	v;
	int	fd;

	while (peer_find(c, id) != NULL) {
		if (!recv_msg(c, &v, &fd))
			errx(1, "violation: the server closes on peer %ld "
			    "before peer %ld leaves", c->id, id);
		notify(c, v, fd);
	}
}

/* The next message from the server: 1, or 0 at a clean end of file. */
static int
recv_msg(struct conn *c, int64_t *val, int *fd)
{
	int	r;

	if ((r = msg_recv(c->s, val, fd, now_ms() + timeout)) == -1) {
		if (errno == ETIMEDOUT)
			errx(1, "timeout: no message from the server in %d "
			    "ms", timeout);
		if (errno == EPROTO)
			errx(1, "violation: end of file inside a message");
		if (errno == EMSGSIZE)
			errx(1, "violation: a message carries more than one "
			    "fd");
		err(1, "recvmsg");
	}
	if (r == 1 && verbose > 1)
		fprintf(stderr, "peer %ld: message %jd%s\n", c->id,
		    (intmax_t)*val, *fd != -1 ? " + fd" : "");
	return (r);
}

/* QEMU writes 8 bytes to what it takes for an eventfd: it must be one. */
static void
check_eventfd(int fd, long id)
{
#ifdef __linux__
	char	path[64], link[64];
	ssize_t	n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	if ((n = readlink(path, link, sizeof(link) - 1)) == -1)
		err(1, "%s", path);
	link[n] = '\0';
	if (strcmp(link, "anon_inode:[eventfd]") != 0)
		errx(1, "violation: an fd for peer %ld is %s, not an "
		    "eventfd", id, link);
#else
	(void)fd;
	(void)id;
#endif
}

static struct peer *
peer_find(struct conn *c, long id)
{
	size_t	i;

	for (i = 0; i < c->npeers; i++)
		if (c->peers[i].id == id)
			return (&c->peers[i]);
	return (NULL);
}

static struct peer *
peer_add(struct conn *c, long id)
{
	struct peer	*p;

	if (c->npeers == c->peersize) {
		c->peersize = c->peersize ? 2 * c->peersize : 8;
		if ((c->peers = reallocarray(c->peers, c->peersize,
		    sizeof(*c->peers))) == NULL)
			err(1, NULL);
	}
	p = &c->peers[c->npeers++];
	p->id = id;
	p->nfd = 0;
	if ((p->fds = calloc(nvectors, sizeof(*p->fds))) == NULL)
		err(1, NULL);
	return (p);
}

static void
peer_drop(struct conn *c, struct peer *p)
{
	int	i;

	for (i = 0; i < p->nfd; i++)
		close(p->fds[i]);
	free(p->fds);
	*p = c->peers[--c->npeers];
}

static int
peer_cmp(const void *a, const void *b)
{
	const struct peer	*pa = a, *pb = b;

	return (pa->id < pb->id ? -1 : pa->id > pb->id);
}

/*
 * Version 0, the own ID, -1 with the shm, then N fds for each other
 * peer, then N for the own ID.  How many other peers there are is not
 * said: the handshake ends with the N-th own fd.
 */
static void
handshake(struct conn *c)
{
	struct stat	 st;
	struct peer	*p;
	int64_t		 v;
	size_t		 i;
	int		 fd;

	if (!recv_msg(c, &v, &fd))
		errx(1, "violation: the server closes before the version");
	if (v != 0 || fd != -1)
		errx(1, "violation: version message %jd%s, expected 0 and no "
		    "fd", (intmax_t)v, fd != -1 ? " with an fd" : "");
	if (!recv_msg(c, &v, &fd))
		errx(1, "violation: the server closes before the ID");
	if (v < 0 || v >= NIDS || fd != -1)
		errx(1, "violation: ID message %jd%s", (intmax_t)v,
		    fd != -1 ? " with an fd" : "");
	c->id = v;
	if (!recv_msg(c, &v, &fd))
		errx(1, "violation: the server closes before the shm");
	if (v != -1 || fd == -1)
		errx(1, "violation: message %jd%s where the shm message (-1 "
		    "and an fd) belongs", (intmax_t)v,
		    fd != -1 ? " with an fd" : " without an fd");
	c->shm = fd;
	if (fstat(fd, &st) == -1)
		err(1, "fstat shm");
	/* QEMU asserts on a BAR that is no power of two, or under a page. */
	if (st.st_size < 4096 || (st.st_size & (st.st_size - 1)) != 0)
		errx(1, "violation: shm size %jd is not a power of two of at "
		    "least 4096", (intmax_t)st.st_size);
	if (wantsize != -1 && st.st_size != wantsize)
		errx(1, "shm size %jd, expected %lld", (intmax_t)st.st_size,
		    wantsize);
	if (!shmseen) {
		shmdev = st.st_dev;
		shmino = st.st_ino;
		shmseen = 1;
	} else if (st.st_dev != shmdev || st.st_ino != shmino)
		errx(1, "violation: peer %ld gets another shm than the first "
		    "connection", c->id);

	while (c->nown < nvectors) {
		if (!recv_msg(c, &v, &fd))
			errx(1, "violation: the server closes during the "
			    "handshake of peer %ld (%d of %d own fds)", c->id,
			    c->nown, nvectors);
		if (v < 0 || v >= NIDS)
			errx(1, "violation: message %jd during the handshake",
			    (intmax_t)v);
		if (fd == -1) {
			/* A leave: only of a peer named in full. */
			if (v == c->id)
				errx(1, "violation: a leave for the own ID %ld",
				    c->id);
			if ((p = peer_find(c, v)) == NULL)
				errx(1, "violation: a leave for peer %jd, "
				    "never named", (intmax_t)v);
			if (p->nfd < nvectors)
				errx(1, "violation: peer %ld leaves with %d of "
				    "%d fds sent", p->id, p->nfd, nvectors);
			peer_drop(c, p);
			continue;
		}
		check_eventfd(fd, v);
		if (v == c->id) {
			c->own[c->nown++] = fd;
			continue;
		}
		if (c->nown > 0)
			errx(1, "violation: an fd for peer %jd among the own "
			    "fds (%d of %d came)", (intmax_t)v, c->nown,
			    nvectors);
		if ((p = peer_find(c, v)) == NULL) {
			if (c->heard[v / 8] & 1 << (v % 8))
				errx(1, "violation: peer %jd named twice",
				    (intmax_t)v);
			p = peer_add(c, v);
			c->heard[v / 8] |= 1 << (v % 8);
			c->nheard++;
		}
		if (p->nfd == nvectors)
			errx(1, "violation: more than %d fds for peer %ld",
			    nvectors, p->id);
		p->fds[p->nfd++] = fd;
		if (c->nown > 0 && p->nfd < nvectors)
			errx(1, "violation: peer %ld named with %d of %d fds",
			    p->id, p->nfd, nvectors);
	}
	for (i = 0; i < c->npeers; i++)
		if (c->peers[i].nfd != nvectors)
			errx(1, "violation: peer %ld named with %d of %d fds",
			    c->peers[i].id, c->peers[i].nfd, nvectors);
	if (verbose)
		fprintf(stderr, "peer %ld: handshake done, %d others, shm %jd "
		    "bytes\n", c->id, c->nheard, (intmax_t)st.st_size);
}

/* A message after the handshake: a join's fd or a leave. */
static void
notify(struct conn *c, int64_t v, int fd)
{
	struct peer	*p;

	if (v < 0 || v >= NIDS)
		errx(1, "violation: message %jd after the handshake",
		    (intmax_t)v);
	if (v == c->id)
		errx(1, "violation: message for the own ID %ld%s after the "
		    "handshake", c->id, fd != -1 ? " with an fd" : "");
	p = peer_find(c, v);
	if (fd == -1) {
		if (p == NULL)
			errx(1, "violation: a leave for peer %jd, not present",
			    (intmax_t)v);
		if (p->nfd < nvectors)
			errx(1, "violation: peer %ld leaves with %d of %d fds "
			    "sent", p->id, p->nfd, nvectors);
		if (verbose)
			fprintf(stderr, "peer %ld: peer %ld leaves\n", c->id,
			    p->id);
		peer_drop(c, p);
		c->leaves++;
		return;
	}
	if (p == NULL)
		p = peer_add(c, v);
	if (p->nfd == nvectors)
		errx(1, "violation: more than %d fds for peer %ld", nvectors,
		    p->id);
	check_eventfd(fd, v);
	p->fds[p->nfd++] = fd;
	if (p->nfd == nvectors) {
		if (verbose)
			fprintf(stderr, "peer %ld: peer %ld joins\n", c->id,
			    p->id);
		c->joins++;
	}
}

static void
run_once(void)
{
	struct conn	c;

	conn_open(&c);
	handshake(&c);
	printf("id %ld peers %d\n", c.id, c.nheard);
	conn_leave(&c);
}

static int
us_cmp(const void *a, const void *b)
{
	long long	 x = *(const long long *)a, y = *(const long long *)b;

	return x < y ? -1 : x > y;
}

/*
 * For make bench: join and leave count times, one after the other,
 * and print how long a join takes, from connect to the last own fd.
 */
static void
run_joins(long count)
{
	struct conn	 c;
	struct timespec	 t0, t1;
	long long	*us;
	long		 i;

	if ((us = calloc(count, sizeof(*us))) == NULL)
		err(1, NULL);
	for (i = 0; i < count; i++) {
		clock_gettime(CLOCK_MONOTONIC, &t0);
		conn_open(&c);
		handshake(&c);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		conn_close(&c);
		us[i] = (t1.tv_sec - t0.tv_sec) * 1000000LL +
		    (t1.tv_nsec - t0.tv_nsec) / 1000;
	}
	qsort(us, count, sizeof(*us), us_cmp);
	printf("join p50 %lld p99 %lld us\n", us[count / 2],
	    us[(count * 99) / 100]);
	free(us);
}

/* A peer that never reads: the server is to wait for it, not drop it. */
static void
run_silent(void)
{
	struct conn	 c;
	char		 buf[64];

	conn_open(&c);
	printf("connected\n");
	while (read(STDIN_FILENO, buf, sizeof(buf)) > 0)
		;
	conn_close(&c);
}

/* Any byte from a peer is a goodbye: the server must close on us. */
static void
run_byte(void)
{
	struct conn	c;
	int64_t		v;
	int		fd;

	conn_open(&c);
	handshake(&c);
	printf("id %ld peers %d\n", c.id, c.nheard);
	fflush(stdout);
	if (write(c.s, "x", 1) != 1)
		err(1, "write");
	while (recv_msg(&c, &v, &fd))
		notify(&c, v, fd);
	printf("dropped\n");
	conn_close(&c);
}

/*
 * Join and leave as fast as the server lets us.  Each ID must be the
 * one after the last, wrapping after 65535, skipping those in use: the
 * handshake names every peer in use when the ID was chosen.
 */
static void
run_cycles(long count)
{
	static unsigned char	 stable[NIDS / 8];
	struct conn		 c;
	long			 i, first = -1, last = -1, want;
	int			 b, k, wraps = 0, behind;

	for (i = 0; i < count; i++) {
		conn_open(&c);
		handshake(&c);
		/* The last connection's end, not yet read by the server. */
		behind = i > 0 && peer_find(&c, last) != NULL;
		if (behind) {
			c.heard[last / 8] &= ~(1 << (last % 8));
			c.nheard--;
		}
		if (i == 0) {
			first = c.id;
			memcpy(stable, c.heard, sizeof(stable));
		} else {
			want = (last + 1) % NIDS;
			while (c.heard[want / 8] & 1 << (want % 8))
				want = (want + 1) % NIDS;
			if (c.id != want)
				errx(1, "cycle %ld: ID %ld after %ld, expected "
				    "%ld", i, c.id, last, want);
			if (c.id < last)
				wraps++;
			for (b = 0; b < NIDS / 8; b++)
				stable[b] &= c.heard[b];
		}
		if (behind)
			await_leave(&c, last);
		last = c.id;
		if (i == count - 1)
			conn_leave(&c);
		else
			conn_close(&c);
	}
	for (k = 0, b = 0; b < NIDS; b++)
		if (stable[b / 8] & 1 << (b % 8))
			k++;
	printf("cycles %ld first %ld last %ld wraps %d peers %d\n", count,
	    first, last, wraps, k);
}

/*
 * An input line of the watcher: "ring P V", "wait leaves N" or "wait
 * peer P".
 */
static void
watch_cmd(struct conn *c, char *line, long *waitfor, long *waitpeer)
{
	const char	*errstr;
	char		*word[4];
	long		 n;
	int		 nword = 0;

	while (nword < 4 &&
	    (word[nword] = strtok(nword == 0 ? line : NULL, " \t")) != NULL)
		nword++;
	if (nword == 3 && strcmp(word[0], "ring") == 0) {
		watch_ring(c, word[1], word[2]);
		return;
	}
	if (nword == 3 && strcmp(word[0], "wait") == 0 &&
	    strcmp(word[1], "peer") == 0 && *waitpeer == -1) {
		n = strtonum(word[2], 0, NIDS - 1, &errstr);
		if (errstr == NULL) {
			*waitpeer = n;
			watch_peer(c, waitpeer);
			return;
		}
	}
	if (nword == 3 && strcmp(word[0], "wait") == 0 &&
	    strcmp(word[1], "leaves") == 0 && *waitfor == -1) {
		n = strtonum(word[2], 0, LONG_MAX, &errstr);
		if (errstr == NULL) {
			*waitfor = n;
			watch_wait(c, waitfor);
			return;
		}
	}
	printf("error\n");
}

static void
watch_ring(struct conn *c, const char *id, const char *vec)
{
	struct peer	*p;
	const char	*errstr;
	uint64_t	 one = 1;
	long		 pid, v = 0;

	pid = strtonum(id, 0, NIDS - 1, &errstr);
	if (errstr == NULL)
		v = strtonum(vec, 0, MAXVEC - 1, &errstr);
	if (errstr != NULL) {
		printf("error\n");
		return;
	}
	p = peer_find(c, pid);
	if (p == NULL || v >= p->nfd) {
		printf("noring %ld %ld\n", pid, v);
		return;
	}
	if (write(p->fds[v], &one, sizeof(one)) != sizeof(one))
		err(1, "write eventfd of peer %ld vector %ld", pid, v);
	printf("rang %ld %ld\n", pid, v);
}

/* Answer a "wait leaves N" once N peers have left, if they have. */
static void
watch_wait(struct conn *c, long *waitfor)
{
	if (*waitfor == -1 || c->leaves < *waitfor)
		return;
	printf("leaves %ld\n", *waitfor);
	*waitfor = -1;
}

/* Answer a "wait peer P" once P is present with all its fds. */
static void
watch_peer(struct conn *c, long *waitpeer)
{
	struct peer	*p;

	if (*waitpeer == -1 || (p = peer_find(c, *waitpeer)) == NULL ||
	    p->nfd < nvectors)
		return;
	printf("peer %ld\n", *waitpeer);
	*waitpeer = -1;
}

/* Follow the others, ring them on request, report our interrupts. */
static void
run_watch(long ms)
{
	struct conn	 c;
	struct pollfd	*pfd;
	char		 line[256], *nl, *s;
	size_t		 len = 0, i;
	ssize_t		 n;
	uint64_t	 cnt;
	long long	 deadline;
	long		 waitfor = -1, waitpeer = -1;
	int64_t		 v;
	int		 fd, k, nfd, done = 0;

	conn_open(&c);
	handshake(&c);
	printf("id %ld peers %d\n", c.id, c.nheard);
	nfd = 2 + nvectors;
	if ((pfd = calloc(nfd, sizeof(*pfd))) == NULL)
		err(1, NULL);
	pfd[0].fd = c.s;
	pfd[1].fd = STDIN_FILENO;
	for (k = 0; k < nvectors; k++)
		pfd[2 + k].fd = c.own[k];
	for (k = 0; k < nfd; k++)
		pfd[k].events = POLLIN;

	deadline = now_ms() + ms;
	while (!done && ms_left(deadline) > 0) {
		if (poll(pfd, nfd, ms_left(deadline)) == -1) {
			if (errno == EINTR)
				continue;
			err(1, "poll");
		}
		if (pfd[0].revents != 0) {
			if (!recv_msg(&c, &v, &fd))
				errx(1, "the server closes on peer %ld", c.id);
			notify(&c, v, fd);
			watch_wait(&c, &waitfor);
			watch_peer(&c, &waitpeer);
		}
		for (k = 0; k < nvectors; k++) {
			if (pfd[2 + k].revents == 0)
				continue;
			n = read(c.own[k], &cnt, sizeof(cnt));
			if (n == -1 && errno == EAGAIN)
				continue;
			if (n != sizeof(cnt))
				err(1, "read own eventfd %d", k);
			printf("irq %d\n", k);
		}
		if (pfd[1].revents != 0) {
			n = read(STDIN_FILENO, line + len, sizeof(line) - 1 -
			    len);
			if (n == -1 && errno != EINTR && errno != EAGAIN)
				err(1, "read stdin");
			if (n == 0)
				done = 1;
			if (n > 0)
				len += n;
			line[len] = '\0';
			while ((nl = strchr(line, '\n')) != NULL) {
				*nl = '\0';
				watch_cmd(&c, line, &waitfor, &waitpeer);
				s = nl + 1;
				len -= s - line;
				memmove(line, s, len + 1);
			}
			if (len == sizeof(line) - 1)
				errx(1, "input line too long");
		}
	}
	/* Sorted, so that a test can compare the line. */
	qsort(c.peers, c.npeers, sizeof(*c.peers), peer_cmp);
	printf("joins %d leaves %d now ", c.joins, c.leaves);
	for (i = 0; i < c.npeers; i++)
		printf("%s%ld", i > 0 ? "," : "", c.peers[i].id);
	printf("%s\n", c.npeers == 0 ? "none" : "");
	free(pfd);
	conn_close(&c);
}

int
main(int argc, char *argv[])
{
	long	 count = 0, watch = -1, joins = 0;
	int	 byte = 0, silent = 0, ch;

	while ((ch = getopt(argc, argv, "bc:j:l:n:s:t:vw:z")) != -1) {
		switch (ch) {
		case 'b':
			byte = 1;
			break;
		case 'c':
			count = getnum(optarg, 1, LONG_MAX, "count");
			break;
		case 'j':
			joins = getnum(optarg, 1, 1000000, "joins");
			break;
		case 'l':
			wantsize = getnum(optarg, 4096, LLONG_MAX, "size");
			break;
		case 'n':
			nvectors = getnum(optarg, 1, MAXVEC, "vectors");
			break;
		case 's':
			sockpath = optarg;
			break;
		case 't':
			timeout = getnum(optarg, 1, INT_MAX, "timeout");
			break;
		case 'v':
			verbose++;
			break;
		case 'w':
			watch = getnum(optarg, 0, INT_MAX, "wait");
			break;
		case 'z':
			silent = 1;
			break;
		default:
			usage();
		}
	}
	if (sockpath == NULL || optind != argc ||
	    byte + silent + (count > 0) + (watch >= 0) + (joins > 0) > 1)
		usage();
	setvbuf(stdout, NULL, _IOLBF, 0);

	if (byte)
		run_byte();
	else if (silent)
		run_silent();
	else if (count > 0)
		run_cycles(count);
	else if (watch >= 0)
		run_watch(watch);
	else if (joins > 0)
		run_joins(joins);
	else
		run_once();
	return (0);
}
