/*
 * server.c: the serving process, from fork to exit.  It gives up root,
 * the file system and all but a few system calls before it reads a byte
 * from anyone, then serves both sockets in one poll(2) loop until it is
 * told to stop or its parent goes away.  It never execs and never
 * unlinks anything: the parent cleans up.
 */

#include <sys/types.h>
#include <sys/resource.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "ivserver.h"
#include "log.h"

static int	server_loop(struct server *);
static int	server_parent(struct server *);

__dead void
server_main(struct server *srv, const struct passwd *pw, int ipc)
{
	struct rlimit	 rl;
	int		 rv;

	log_procinit("server");
	setproctitle("server");
	srv->qemu.made = srv->client.made = 0;	/* the parent's to remove */
	srv->ipcfd = ipc;
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
