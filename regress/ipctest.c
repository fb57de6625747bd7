/*
 * ipctest: the parent (../parent.c) against a hostile serving process.
 * This program is the parent, linked with parent.c, and provides the
 * server_main() its children run: the first child sends records that
 * are malformed, out of range, out of order or past the limits, each
 * with descriptors whose other end it keeps, and checks that the
 * parent closes every one it refuses; then it hands up the one
 * connection (and, in peer mode, eventfds) that are right, and exits.
 * The parent starts a second child, which checks that it was handed
 * exactly what was right, and then asks the parent to stop.
 *
 *	ipctest host | peer
 *
 * One line per check, "ok - what" or "not ok - what"; the parent logs
 * why it refused each record on standard error.
 */

#include <sys/types.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "../ivserver.h"
#include "../log.h"

#define CLOSE_WAIT	10000	/* ms for a refusal closed */
#define NVEC		2	/* peer mode */
#define MAXPEERS	2

static void	 report(int, const char *, ...)
		    __attribute__((__format__(__printf__, 2, 3)));
static int	 closed_within(int);
static int	 send_rec(int, size_t, uint32_t, uint32_t, uint32_t,
		    uint32_t, const int *, int);
static void	 refused(int, const char *, size_t, uint32_t, uint32_t,
		    uint32_t, uint32_t, int, int);
static void	 first_child(int);
static void	 second_child(int, struct heldq *);

static const char	*mode;
static int		 peermode;
static int		 keep[2];	/* keep[0] is held in the end */
static int		 ev[NVEC];	/* so are these, in peer mode */
static int		 failures;

static void
report(int good, const char *fmt, ...)
{
	va_list	 ap;

	printf("%s - %s: ", good ? "ok" : "not ok", mode);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	if (!good)
		failures++;
}

/* Whether the other end of fd closes, as the parent lets it go. */
static int
closed_within(int fd)
{
	struct pollfd	 pfd;
	char		 c;

	pfd.fd = fd;
	pfd.events = POLLIN;
	if (poll(&pfd, 1, CLOSE_WAIT) != 1)
		return 0;
	return read(fd, &c, 1) == 0;
}

/* A record of len bytes (the first 16 the fields) with nfds fds. */
static int
send_rec(int ipc, size_t len, uint32_t type, uint32_t id, uint32_t first,
    uint32_t count, const int *fds, int nfds)
{
	unsigned char	 buf[64];
	struct ipc_up	 r;
	struct msghdr	 mh;
	struct iovec	 iov;
	union {
		struct cmsghdr	hdr;
		unsigned char	buf[CMSG_SPACE(8 * sizeof(int))];
	}		 cm;
	struct cmsghdr	*c;

	memset(buf, 0, sizeof(buf));
	r.type = type;
	r.id = id;
	r.first = first;
	r.count = count;
	memcpy(buf, &r, sizeof(r) < len ? sizeof(r) : len);
	memset(&mh, 0, sizeof(mh));
	iov.iov_base = buf;
	iov.iov_len = len;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	if (nfds > 0) {
		memset(&cm, 0, sizeof(cm));
		mh.msg_control = cm.buf;
		mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
	}
	return sendmsg(ipc, &mh, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
}

/*
 * Send a record the parent must refuse, with nfds fresh descriptors,
 * sockets or (pipe) pipe ends: it must close every one.
 */
static void
refused(int ipc, const char *what, size_t len, uint32_t type, uint32_t id,
    uint32_t first, uint32_t count, int nfds, int pipe_)
{
	int	 fds[8] = { -1 }, other[8], p[2], i, ok;

	for (i = 0; i < nfds; i++) {
		if (pipe_ ? pipe(p) : socketpair(AF_UNIX, SOCK_STREAM, 0, p))
			fatal("socketpair");
		fds[i] = p[1];
		other[i] = p[0];
	}
	ok = send_rec(ipc, len, type, id, first, count, fds, nfds) == 0;
	for (i = 0; i < nfds; i++)
		close(fds[i]);
	for (i = 0; ok && i < nfds; i++)
		ok = closed_within(other[i]);
	for (i = 0; i < nfds; i++)
		close(other[i]);
	report(ok, "refused: %s, its %d fds closed", what, nfds);
}

static void
first_child(int ipc)
{
	struct ipc_up	 r;
	int		 s[2], dup2fd[NVEC];
	int		 nv = peermode ? NVEC : 0;

	memset(&r, 0, sizeof(r));
	refused(ipc, "a record of 8 bytes", 8, IPC_HOLD, 1, 0, nv, 1, 0);
	refused(ipc, "a record of 32 bytes", 32, IPC_HOLD, 1, 0, nv, 1, 0);
	refused(ipc, "an unknown type", sizeof(r), 9, 1, 0, nv, 1, 0);
	refused(ipc, "IPC_HOLD of a pipe", sizeof(r), IPC_HOLD, 1, 0, nv, 1,
	    1);
	refused(ipc, "IPC_HOLD with 2 fds", sizeof(r), IPC_HOLD, 1, 0, nv, 2,
	    0);
	refused(ipc, "IPC_HOLD with a wrong vector count", sizeof(r),
	    IPC_HOLD, 1, 0, nv + 1, 1, 0);
	refused(ipc, "IPC_HOLD of ID 70000", sizeof(r), IPC_HOLD, 70000, 0,
	    nv, 1, 0);
	refused(ipc, "IPC_DROP with an fd", sizeof(r), IPC_DROP, 1, 0, 0, 1,
	    0);
	if (!peermode) {
		refused(ipc, "IPC_VECS in host mode", sizeof(r), IPC_VECS, 1,
		    0, 1, 1, 0);
		send_rec(ipc, sizeof(r), IPC_HOLD, 1, 0, 0, &keep[0], 1);
		refused(ipc, "IPC_HOLD of an ID held", sizeof(r), IPC_HOLD, 1,
		    0, 0, 1, 0);
		refused(ipc, "IPC_HOLD past the one VM", sizeof(r), IPC_HOLD,
		    2, 0, 0, 1, 0);
		send_rec(ipc, sizeof(r), IPC_DROP, 5, 0, 0, NULL, 0);
		_exit(0);
	}
	refused(ipc, "IPC_VECS of more than the vectors", sizeof(r),
	    IPC_VECS, 3, 0, 3, 3, 0);
	refused(ipc, "IPC_VECS of a pipe", sizeof(r), IPC_VECS, 3, 0, 1, 1, 1);
	refused(ipc, "IPC_VECS of sockets", sizeof(r), IPC_VECS, 3, 0, 1, 1,
	    0);
	refused(ipc, "IPC_HOLD without its eventfds", sizeof(r), IPC_HOLD, 3,
	    0, NVEC, 1, 0);
	send_rec(ipc, sizeof(r), IPC_VECS, 4, 0, NVEC, ev, NVEC);
	send_rec(ipc, sizeof(r), IPC_HOLD, 4, 0, NVEC, &keep[0], 1);
	refused(ipc, "IPC_HOLD of an ID held", sizeof(r), IPC_HOLD, 4, 0,
	    NVEC, 1, 0);
	refused(ipc, "IPC_VECS of an ID held", sizeof(r), IPC_VECS, 4, 0, 1,
	    1, 1);
	send_rec(ipc, sizeof(r), IPC_VECS, 6, 0, 1, ev, 1);
	refused(ipc, "IPC_HOLD with eventfds missing", sizeof(r), IPC_HOLD,
	    6, 0, NVEC, 1, 0);
	/* A second peer, held and then dropped. */
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, s) == -1)
		fatal("socketpair");
	send_rec(ipc, sizeof(r), IPC_VECS, 7, 0, NVEC, ev, NVEC);
	send_rec(ipc, sizeof(r), IPC_HOLD, 7, 0, NVEC, &s[1], 1);
	close(s[1]);
	refused(ipc, "IPC_VECS past the limit of peers", sizeof(r), IPC_VECS,
	    8, 0, 1, 1, 1);
	refused(ipc, "IPC_HOLD past the limit of peers", sizeof(r), IPC_HOLD,
	    8, 0, NVEC, 1, 0);
	send_rec(ipc, sizeof(r), IPC_DROP, 7, 0, 0, NULL, 0);
	report(closed_within(s[0]), "IPC_DROP: the parent lets go of the "
	    "connection held");
	/* Eventfds whose connection never comes. */
	dup2fd[0] = ev[0];
	send_rec(ipc, sizeof(r), IPC_VECS, 9, 0, 1, dup2fd, 1);
	_exit(0);
}

static void
second_child(int ipc, struct heldq *held)
{
	struct held	*h;
	struct stat	 a, b;
	uint64_t	 v[NVEC];
	int		 n = 0, i, ok;

	(void)ipc;
	TAILQ_FOREACH(h, held, entry)
		n++;
	h = TAILQ_FIRST(held);
	report(n == 1, "the next serving process is handed one connection "
	    "(%d)", n);
	ok = h != NULL && h->id == (peermode ? 4U : 1U) &&
	    fstat(h->fd, &a) == 0 && fstat(keep[0], &b) == 0 &&
	    a.st_ino == b.st_ino && a.st_dev == b.st_dev;
	report(ok, "the right one, under its ID");
	if (peermode) {
		ok = h != NULL && h->nvec == NVEC && h->got == NVEC;
		for (i = 0; ok && i < NVEC; i++)
			ok = read(h->vec[i], &v[i], sizeof(v[i])) ==
			    sizeof(v[i]) && v[i] == (uint64_t)(7 + 2 * i);
		report(ok, "with its eventfds, in order");
	}
	fflush(stdout);
	kill(getppid(), SIGTERM);
	for (;;)
		pause();
}

__dead void
server_main(struct server *srv, const struct passwd *pw, int ipc,
    struct heldq *held)
{
	(void)srv;
	(void)pw;
	signal(SIGTERM, SIG_DFL);
	signals_hold(0);
	if (TAILQ_EMPTY(held))
		first_child(ipc);
	second_child(ipc, held);
	_exit(0);
}

int
main(int argc, char *argv[])
{
	struct server	 srv;
	struct qemu	 q;
	uint64_t	 v;
	int		 fds0, i, rv, sigfd;

	if (argc != 2 || (strcmp(argv[1], "host") != 0 &&
	    strcmp(argv[1], "peer") != 0)) {
		fprintf(stderr, "usage: ipctest host | peer\n");
		return 1;
	}
	mode = argv[1];
	peermode = strcmp(mode, "peer") == 0;
	setvbuf(stdout, NULL, _IOLBF, 0);
	log_init(1, LOG_DAEMON);
	alarm(120);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, keep) == -1)
		fatal("socketpair");
	for (i = 0; i < NVEC; i++) {
		if ((ev[i] = eventfd(0, EFD_CLOEXEC)) == -1)
			fatal("eventfd");
		v = 7 + 2 * i;
		if (write(ev[i], &v, sizeof(v)) != sizeof(v))
			fatal("eventfd");
	}
	memset(&srv, 0, sizeof(srv));
	srv.peermode = peermode;
	srv.nvectors = NVEC;
	srv.maxclients = MAXPEERS;
	memset(&q, 0, sizeof(q));
	q.pid = -1;
	sigfd = signals_init();
	fds0 = 0;
	for (i = 0; i < 1024; i++)
		if (fcntl(i, F_GETFD) != -1)
			fds0++;
	rv = parent_main(&srv, NULL, &q, sigfd, -1);
	report(rv == 0, "the parent stops on SIGTERM (%d)", rv);
	for (i = 0; i < 1024; i++)
		if (fcntl(i, F_GETFD) != -1)
			fds0--;
	report(fds0 == 0, "and holds no descriptor it did not hold before "
	    "(%d more)", -fds0);
	return failures ? 1 : 0;
}
