/*
 * server.c: the serving process, from fork to exit.  It gives up root,
 * the file system and all but a few system calls before it reads a byte
 * from anyone, then serves both sockets in one poll(2) loop until it is
 * told to stop or its parent goes away.  It never execs and never
 * unlinks anything: the parent cleans up.
 *
 * It may be one of a line: the parent starts a new one when one dies,
 * and hands it the connections of the VMs and peers the others had
 * admitted, which it held for them, so that they see no change.
 */

#include <sys/types.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ivserver.h"
#include "log.h"

#define IPC_SEND_WAIT	1000	/* ms to wait for the parent */

static int	server_loop(struct server *);
static int	server_parent(struct server *);
static void	server_adopt(struct heldq *);
static int	ipc_send(uint32_t, unsigned int, unsigned int, unsigned int,
		    const int *);

static int	ipcfd = -1;

__dead void
server_main(struct server *srv, const struct passwd *pw, int ipc,
    struct heldq *held)
{
	struct rlimit	 rl;
	int		 rv;

	log_procinit("server");
	setproctitle("server");
	srv->qemu.made = srv->client.made = 0;	/* the parent's to remove */
	srv->ipcfd = ipcfd = ipc;
	if (fcntl(ipc, F_SETFL, O_NONBLOCK) == -1)
		fatal("fcntl");
	srv->sigfd = signals_init();
	signals_hold(0);	/* held across the fork */
	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		fatal("getrlimit");
	srv->nofile = rl.rlim_cur > UINT_MAX ? UINT_MAX : rl.rlim_cur;
	if (pw != NULL)
		sandbox_drop(pw, CHROOT_DIR);
	sandbox_limits();
	sandbox_enter();
	log_sandboxed();

	proto_init(srv);
	server_adopt(held);
	rv = server_loop(srv);
	proto_fini();
	_exit(rv == 0 ? 0 : 1);
}

void
pollset_add(struct pollset *ps, int fd, short events, enum pollkind kind,
    void *ptr)
{
	struct pollfd	*np;
	struct pollref	*nr;
	size_t		 n;

	if (ps->n >= ps->size) {
		n = ps->size ? ps->size * 2 : 64;
		if ((np = reallocarray(ps->pfd, n, sizeof(*np))) == NULL)
			fatal("poll array");
		ps->pfd = np;
		if ((nr = reallocarray(ps->ref, n, sizeof(*nr))) == NULL)
			fatal("poll array");
		ps->ref = nr;
		ps->size = n;
	}
	ps->pfd[ps->n].fd = fd;
	ps->pfd[ps->n].events = events;
	ps->pfd[ps->n].revents = 0;
	ps->ref[ps->n].kind = kind;
	ps->ref[ps->n].ptr = ptr;
	ps->n++;
}

/* Serve until SIGTERM or SIGINT (0), or a fatal error (-1). */
static int
server_loop(struct server *srv)
{
	struct pollset	 ps = { NULL, NULL, 0, 0 };
	int64_t		 deadline, now;
	size_t		 i;
	int		 timeout, rv = 0;

	for (;;) {
		ps.n = 0;
		pollset_add(&ps, srv->sigfd, POLLIN, POLL_SIGNAL, NULL);
		pollset_add(&ps, srv->ipcfd, POLLIN, POLL_PARENT, NULL);
		deadline = proto_pollset(&ps);
		now = now_ms();
		if (deadline == -1)
			timeout = -1;
		else
			timeout = deadline > now ? (int)(deadline - now) : 0;
		if (poll(ps.pfd, ps.n, timeout) == -1) {
			if (errno == EINTR)
				continue;
			log_warn("poll");
			rv = -1;
			break;
		}
		if ((ps.pfd[0].revents & POLLIN) &&
		    (signals_read() & SIGNAL_STOP))
			break;
		/* Before any accept: it may name the QEMU knocking. */
		if (ps.pfd[1].revents != 0 && server_parent(srv) == -1) {
			rv = -1;
			break;
		}
		for (i = 2; i < ps.n; i++)
			if (ps.pfd[i].revents != 0)
				proto_dispatch(ps.ref[i].kind, ps.ref[i].ptr,
				    ps.pfd[i].revents);
		proto_reap();
	}
	free(ps.pfd);
	free(ps.ref);
	return rv;
}

/*
 * The parent tells the pid of each QEMU it starts, 0 when it is gone.
 * Its end of the channel closing means it is gone: so is the reason
 * to serve.
 */
static int
server_parent(struct server *srv)
{
	int32_t	 pid;
	ssize_t	 n;

	n = read(srv->ipcfd, &pid, sizeof(pid));
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n != sizeof(pid)) {
		log_warnx("the parent process is gone; exiting");
		return -1;
	}
	srv->qemu_pid = pid;
	log_debug("QEMU pid %ld is the one to admit", (long)pid);
	return 0;
}

/*
 * What the parent held for the VMs and peers admitted before: each is
 * admitted again, nothing sent.  The memory is this process's copy of
 * the parent's table, and the fds its own since the fork.
 */
static void
server_adopt(struct heldq *held)
{
	struct held	*h;
	unsigned int	 v;

	while ((h = TAILQ_FIRST(held)) != NULL) {
		TAILQ_REMOVE(held, h, entry);
		if (h->fd != -1 && h->got == h->nvec) {
			proto_adopt(h->fd, h->id, h->vec, h->nvec);
			h->vec = NULL;
		} else {
			if (h->fd != -1)
				close(h->fd);
			for (v = 0; v < h->got; v++)
				close(h->vec[v]);
		}
		free(h->vec);
		free(h);
	}
}

/*
 * One record to the parent, with its fds.  The parent reads at once;
 * should it not, the wait is bounded and the record given up.
 */
static int
ipc_send(uint32_t type, unsigned int id, unsigned int first,
    unsigned int count, const int *fds)
{
	struct ipc_up	 r;
	struct pollfd	 pfd;
	int		 nfds = type == IPC_DROP ? 0 :
			    type == IPC_HOLD ? 1 : (int)count;
	int64_t		 deadline = now_ms() + IPC_SEND_WAIT;
	ssize_t		 n;

	r.type = type;
	r.id = id;
	r.first = first;
	r.count = count;
	for (;;) {
		n = send_fds(ipcfd, &r, sizeof(r), fds, nfds);
		if (n == (ssize_t)sizeof(r))
			return 0;
		if (n != 0 || now_ms() >= deadline)
			break;
		pfd.fd = ipcfd;
		pfd.events = POLLOUT;
		(void)poll(&pfd, 1, (int)(deadline - now_ms()));
	}
	log_warn("peer %u: record to the parent", id);
	return -1;
}

/*
 * A VM or peer has its whole handshake: the parent holds its connection
 * (and, in peer mode, its eventfds) from now on, so that it outlives
 * this process.
 */
void
server_hold(int fd, unsigned int id, const int *vec, unsigned int nvec)
{
	unsigned int	 first, n;

	for (first = 0; first < nvec; first += n) {
		n = nvec - first < IPC_FDS_MAX ? nvec - first : IPC_FDS_MAX;
		if (ipc_send(IPC_VECS, id, first, n, vec + first) == -1)
			goto fail;
	}
	if (ipc_send(IPC_HOLD, id, 0, nvec, &fd) == 0)
		return;
 fail:
	log_warnx("peer %u: not held by the parent: a restart of the serving "
	    "process would close its connection", id);
}

/* It left: the parent lets its copies go. */
void
server_drop(unsigned int id)
{
	(void)ipc_send(IPC_DROP, id, 0, 0, NULL);
}
