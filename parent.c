/*
 * parent.c: the privileged parent after the split.  It starts the
 * serving process (server.c), launches and supervises QEMU, relays the
 * stop signals, and when the serving process dies starts another one
 * the same way, handing it what it holds: the listening sockets, the
 * window and the eventfds it made, and the connection of each VM or
 * peer the serving processes admitted, so that no VM and no client
 * sees the change.
 *
 * Trust goes one way.  All the parent takes from the serving process is
 * fixed-size records with descriptors, each checked; it never reads or
 * writes those descriptors, holds a bounded number of them, and never
 * acts on a path, a pid or a file the serving process names.
 */

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/eventfd.h>
#include <sys/wait.h>

#include <errno.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ivserver.h"
#include "log.h"

#define SERVER_STOP_TIMEOUT	5000	/* ms before SIGKILL */
#define RESTART_SETTLE		250	/* ms: an end sooner is quick */
#define RESTART_DELAY		100	/* ms after a first quick end */
#define RESTART_DELAY_MAX	2000	/* ms, doubling up to it */
#define RESTART_QUICK_MAX	5	/* quick deaths in a row: give up */

struct parent {
	struct server		*srv;
	const struct passwd	*pw;
	struct qemu		*q;
	int			 sigfd;
	int			 pidfd;	/* not the server's */
	pid_t			 child;	/* serving process, or -1 */
	int			 ipc;	/* its channel, or -1 */
	int64_t			 started;
	int64_t			 restart_at; /* ms, or 0 */
	unsigned int		 quick;	/* quick deaths in a row */
	struct heldq		 held;
	unsigned int		 nheld;	/* complete entries */
	unsigned int		 maxheld;
	unsigned int		 nvec;	/* eventfds held per peer */
	struct stat		 evsb;	/* an eventfd's */
	int			 evknown;
};

static int	server_start(struct parent *);
static int	server_died(struct parent *, int);
static void	tell_server(struct parent *, pid_t);
static int	reap(struct parent *);
static void	channel_read(struct parent *);
static int	channel_record(struct parent *);
static void	record(struct parent *, const struct ipc_up *, int *, int);
static void	hold(struct parent *, const struct ipc_up *, int);
static void	hold_vecs(struct parent *, const struct ipc_up *, int *,
		    int);
static struct held *held_find(struct parent *, unsigned int);
static void	held_free(struct parent *, struct held *);
static void	held_pending(struct parent *);
static void	held_pid_gone(struct parent *, pid_t);

/*
 * Fork the serving process: the same path at start-up and at each
 * restart.  Its memory is a copy of ours, so it finds in it which held
 * descriptor is which; its channel is a new one each time.
 */
static int
server_start(struct parent *pa)
{
	int	 ipc[2];
	pid_t	 pid;

	/* Non-blocking: a serving process that never reads stalls no one. */
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK,
	    0, ipc) == -1) {
		log_warn("socketpair");
		return -1;
	}
	pa->srv->qemu_pid = pa->q->pid > 0 ? pa->q->pid : 0;
	signals_hold(1);
	if ((pid = fork()) == -1) {
		log_warn("fork");
		signals_hold(0);
		close(ipc[0]);
		close(ipc[1]);
		return -1;
	}
	if (pid == 0) {
		close(ipc[0]);
		if (pa->pidfd != -1)
			close(pa->pidfd);
		if (pa->ipc != -1)
			close(pa->ipc);
		server_main(pa->srv, pa->pw, ipc[1], &pa->held);
	}
	signals_hold(0);
	close(ipc[1]);
	pa->child = pid;
	pa->ipc = ipc[0];
	pa->started = now_ms();
	pa->restart_at = 0;
	return 0;
}

/*
 * The serving process is gone: take what it sent before it went, then
 * start the next one, at once after a process that ran a while, later
 * after each that died soon after its start, and not at all past
 * RESTART_QUICK_MAX of those in a row.  Returns -1 to give up.
 */
static int
server_died(struct parent *pa, int status)
{
	int64_t		 now = now_ms(), delay;
	unsigned int	 i;

	channel_read(pa);
	held_pending(pa);
	close(pa->ipc);
	pa->ipc = -1;
	pa->child = -1;
	if (now - pa->started < RESTART_SETTLE)
		pa->quick++;
	else
		pa->quick = 0;
	if (pa->quick > RESTART_QUICK_MAX) {
		log_warnx("server process %s, %u times in a row within %d ms "
		    "of its start: giving up", exit_status(status), pa->quick,
		    RESTART_SETTLE);
		return -1;
	}
	delay = 0;
	if (pa->quick > 0)
		for (delay = RESTART_DELAY, i = 1; i < pa->quick &&
		    delay < RESTART_DELAY_MAX; i++)
			delay *= 2;
	if (delay > RESTART_DELAY_MAX)
		delay = RESTART_DELAY_MAX;
	log_warnx("server process %s; starting another in %lld ms, to adopt "
	    "%u held connection%s", exit_status(status), (long long)delay,
	    pa->nheld, pa->nheld == 1 ? "" : "s");
	pa->restart_at = now + delay;
	return 0;
}

/* Tell the server which QEMU may attach, 0 for none. */
static void
tell_server(struct parent *pa, pid_t pid)
{
	int32_t	 p = (int32_t)pid;

	pa->srv->qemu_pid = pid;	/* for the next serving process */
	if (pa->ipc != -1 && write(pa->ipc, &p, sizeof(p)) != sizeof(p))
		log_warn("telling the server QEMU's pid");
}

/*
 * Reap children; returns -1 to give up.  A QEMU that is gone is no
 * longer the one to admit: its pid could be reused.
 */
static int
reap(struct parent *pa)
{
	pid_t	 pid;
	int	 status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (pid == pa->child) {
			if (server_died(pa, status) == -1)
				return -1;
		} else if (pid == pa->q->pid) {
			held_pid_gone(pa, pid);
			qemu_exited(pa->q, status);
			tell_server(pa, 0);
		}
	}
	return 0;
}

/* Every record waiting on the channel. */
static void
channel_read(struct parent *pa)
{
	while (pa->ipc != -1 && channel_record(pa) == 1)
		;
}

/*
 * One record: 1 if one was taken, good or bad, 0 if none waits or the
 * serving process's end is closed.  What comes with a bad record is
 * closed and forgotten.
 */
static int
channel_record(struct parent *pa)
{
	struct ipc_up	 r;
	struct msghdr	 mh;
	struct iovec	 iov;
	union {
		struct cmsghdr	hdr;
		unsigned char	buf[CMSG_SPACE(IPC_FDS_MAX * sizeof(int))];
	}		 cm;
	struct cmsghdr	*c;
	int		 fds[IPC_FDS_MAX], n, nfds = 0;
	ssize_t		 len;

	memset(&mh, 0, sizeof(mh));
	iov.iov_base = &r;
	iov.iov_len = sizeof(r);
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cm.buf;
	mh.msg_controllen = sizeof(cm.buf);
	do {
		len = recvmsg(pa->ipc, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	} while (len == -1 && errno == EINTR);
	if (len <= 0)
		return 0;
	for (c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		if (n > IPC_FDS_MAX - nfds)
			n = IPC_FDS_MAX - nfds;	/* cannot be */
		memcpy(fds + nfds, CMSG_DATA(c), n * sizeof(int));
		nfds += n;
	}
	if (len != (ssize_t)sizeof(r) ||
	    (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) {
		if (mh.msg_flags & MSG_TRUNC)
			log_warnx("server process: a record longer than %zu "
			    "bytes ignored", sizeof(r));
		else if (mh.msg_flags & MSG_CTRUNC)
			log_warnx("server process: a record with too many fds "
			    "ignored");
		else
			log_warnx("server process: a record of %zd bytes "
			    "ignored", len);
		while (nfds > 0)
			close(fds[--nfds]);
		return 1;
	}
	record(pa, &r, fds, nfds);
	return 1;
}

static void
record(struct parent *pa, const struct ipc_up *r, int *fds, int nfds)
{
	struct held	*h;
	int		 i;

	switch (r->type) {
	case IPC_HOLD:
		if (nfds == 1) {
			hold(pa, r, fds[0]);
			return;
		}
		break;
	case IPC_VECS:
		if (nfds > 0 && (unsigned int)nfds == r->count) {
			hold_vecs(pa, r, fds, nfds);
			return;
		}
		break;
	case IPC_DROP:
		if (nfds != 0)
			break;
		if ((h = held_find(pa, r->id)) != NULL && h->fd != -1)
			held_free(pa, h);
		return;
	}
	log_warnx("server process: record type %u with %d fds ignored",
	    r->type, nfds);
	for (i = 0; i < nfds; i++)
		close(fds[i]);
}

/* A connection to hold: a socket, for a peer not yet held, in bounds. */
static void
hold(struct parent *pa, const struct ipc_up *r, int fd)
{
	struct held	*h;
	struct stat	 st;
	struct ucred	 uc;
	socklen_t	 len = sizeof(uc);
	const char	*why = NULL;

	h = held_find(pa, r->id);
	if (fstat(fd, &st) == -1 || !S_ISSOCK(st.st_mode))
		why = "not a socket";
	else if (r->id > IVSHM_PEER_MAX || r->count != pa->nvec)
		why = "out of range";
	else if (h != NULL && h->fd != -1)
		why = "already held";
	else if (pa->nheld >= pa->maxheld)
		why = "past the limit of connections held";
	else if (h == NULL && pa->nvec > 0)
		why = "without its eventfds";
	else if (h != NULL && h->got != h->nvec)
		why = "eventfds missing";
	if (why != NULL) {
		log_warnx("server process: peer %u: %s; its connection not "
		    "held", r->id, why);
		close(fd);
		if (h != NULL && h->fd == -1)
			held_free(pa, h);
		return;
	}
	if (h == NULL) {
		if ((h = calloc(1, sizeof(*h))) == NULL) {
			log_warn("peer %u: hold", r->id);
			close(fd);
			return;
		}
		h->id = r->id;
		TAILQ_INSERT_TAIL(&pa->held, h, entry);
	}
	h->fd = fd;
	h->pid = -1;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) == 0)
		h->pid = uc.pid;
	pa->nheld++;
	log_debug("holding the connection of peer %u (pid %ld)", h->id,
	    (long)h->pid);
}

/*
 * Peer mode: a peer's eventfds, in order, before its connection.  Each
 * must be an anonymous inode like an eventfd of our own.
 */
static void
hold_vecs(struct parent *pa, const struct ipc_up *r, int *fds, int nfds)
{
	struct held	*h = held_find(pa, r->id);
	struct stat	 st;
	const char	*why = NULL;
	int		 i, ev;

	if (!pa->evknown) {
		if ((ev = eventfd(0, EFD_CLOEXEC)) == -1 ||
		    fstat(ev, &pa->evsb) == -1)
			fatal("eventfd");
		close(ev);
		pa->evknown = 1;
	}
	if (pa->nvec == 0 || r->id > IVSHM_PEER_MAX ||
	    r->first > pa->nvec || (unsigned int)nfds > pa->nvec - r->first)
		why = "out of range";
	else if (h != NULL && (h->fd != -1 || h->got != r->first))
		why = "out of order";
	else if (h == NULL && r->first != 0)
		why = "out of order";
	else if (pa->nheld >= pa->maxheld)
		why = "past the limit of connections held";
	for (i = 0; why == NULL && i < nfds; i++)
		if (fstat(fds[i], &st) == -1 || st.st_dev != pa->evsb.st_dev ||
		    st.st_ino != pa->evsb.st_ino)
			why = "not an eventfd";
	if (why == NULL && h == NULL) {
		held_pending(pa);	/* one at a time */
		if ((h = calloc(1, sizeof(*h))) == NULL ||
		    (h->vec = calloc(pa->nvec, sizeof(int))) == NULL) {
			free(h);
			h = NULL;
			why = "out of memory";
		} else {
			h->id = r->id;
			h->fd = -1;
			h->nvec = pa->nvec;
			TAILQ_INSERT_TAIL(&pa->held, h, entry);
		}
	}
	if (why != NULL) {
		log_warnx("server process: peer %u: %s; its eventfds not held",
		    r->id, why);
		for (i = 0; i < nfds; i++)
			close(fds[i]);
		if (h != NULL && h->fd == -1)
			held_free(pa, h);
		return;
	}
	memcpy(h->vec + h->got, fds, nfds * sizeof(int));
	h->got += nfds;
}

static struct held *
held_find(struct parent *pa, unsigned int id)
{
	struct held	*h;

	TAILQ_FOREACH(h, &pa->held, entry)
		if (h->id == id)
			return h;
	return NULL;
}

static void
held_free(struct parent *pa, struct held *h)
{
	unsigned int	 v;

	TAILQ_REMOVE(&pa->held, h, entry);
	if (h->fd != -1) {
		close(h->fd);
		pa->nheld--;
	}
	for (v = 0; v < h->got; v++)
		close(h->vec[v]);
	free(h->vec);
	free(h);
}

/* Eventfds whose connection never came: the sender died between. */
static void
held_pending(struct parent *pa)
{
	struct held	*h, *th;

	TAILQ_FOREACH_SAFE(h, &pa->held, entry, th)
		if (h->fd == -1)
			held_free(pa, h);
}

/* A QEMU we reaped: whatever we hold of its connection can go. */
static void
held_pid_gone(struct parent *pa, pid_t pid)
{
	struct held	*h, *th;

	TAILQ_FOREACH_SAFE(h, &pa->held, entry, th)
		if (h->fd != -1 && h->pid == pid)
			held_free(pa, h);
}

/*
 * The privileged parent's loop: QEMU, the serving process and the stop
 * signals.  Returns 0 on a stop, 1 after giving up on the serving
 * process, which stops QEMU too: it could attach to no server.
 */
int
parent_main(struct server *srv, const struct passwd *pw, struct qemu *q,
    int sigfd, int pidfd)
{
	struct parent	 pa;
	struct pollfd	 pfd[2];
	struct held	*h;
	int64_t		 now;
	pid_t		 pid;
	int		 rv = -1, sigs, status, timeout;

	memset(&pa, 0, sizeof(pa));
	pa.srv = srv;
	pa.pw = pw;
	pa.q = q;
	pa.sigfd = sigfd;
	pa.pidfd = pidfd;
	pa.child = -1;
	pa.ipc = -1;
	TAILQ_INIT(&pa.held);
	pa.maxheld = srv->peermode ? srv->maxclients : 1;
	pa.nvec = srv->peermode ? srv->nvectors : 0;
	log_procinit("parent");
	setproctitle("parent");
	if (server_start(&pa) == -1)
		return 1;
	if (q->binary != NULL && (pid = qemu_start(q)) != -1)
		tell_server(&pa, pid);
	pfd[0].fd = sigfd;
	pfd[0].events = POLLIN;
	pfd[1].events = POLLIN;
	while (rv == -1) {
		timeout = qemu_timeout(q);
		if (pa.restart_at != 0) {
			now = now_ms();
			if (timeout == -1 || pa.restart_at - now < timeout)
				timeout = pa.restart_at > now ?
				    (int)(pa.restart_at - now) : 0;
		}
		pfd[1].fd = pa.ipc;
		pfd[1].revents = 0;
		if (poll(pfd, 2, timeout) == -1 && errno != EINTR)
			fatal("poll");
		sigs = signals_read();
		if (sigs & SIGNAL_STOP) {
			rv = 0;
			break;
		}
		if (pfd[1].revents & POLLIN)
			channel_read(&pa);
		if ((sigs & SIGNAL_CHILD) && reap(&pa) == -1)
			rv = 1;
		else if (pa.restart_at != 0 && now_ms() >= pa.restart_at) {
			if (server_start(&pa) == -1)
				rv = 1;
		} else if ((pid = qemu_due(q)) != -1)
			tell_server(&pa, pid);
	}
	qemu_stop(q);
	if (pa.child != -1 && (status = child_stop(pa.child, "server",
	    SERVER_STOP_TIMEOUT)) != -1 && status != 0)
		log_warnx("server process %s", exit_status(status));
	if (pa.ipc != -1)
		close(pa.ipc);
	while ((h = TAILQ_FIRST(&pa.held)) != NULL)
		held_free(&pa, h);
	return rv;
}
