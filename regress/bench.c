/*
 * bench.c: the client side of the ivserver benchmark; bench.sh runs it.
 *
 *	ivbench hs -s socket -F floorsocket [-l label] [-n count] [-p pid]
 *	    [-r runs] [-T]
 *	ivbench tput -s socket -F floorsocket [-c list] [-d ms] [-p pid]
 *	    [-r runs]
 *	ivbench burst -s socket -F floorsocket [-n clients] [-r runs]
 *	ivbench vm -q socket -s socket -N regions [-n count] [-r runs]
 *	ivbench start -x server -D dir -f layout [-l label] [-r runs] [-T]
 *	ivbench hsonly -s socket [-n count]
 *	ivbench floorsrv socket
 *	ivbench peerfloor socket vectors
 *
 * and every command but floorsrv and peerfloor also takes -C cpu, to put the client
 * on that CPU, -S cpu, to put every server it starts, real or floor,
 * on that one, and -R region, the name to ask for (hwcomposer, of the
 * built-in layout).  -T checks the targets of the figure, -l names the
 * rows, -p gives the server's pid, for its CPU time.
 *
 * Each command measures one figure of a server that is already
 * listening (start runs its own) together with the floor of that
 * figure, measured in the same run on the same machine: the same bytes
 * and fds with no server logic behind them.  Results are tab-separated
 * lines on standard output, "row" with figure, value, floor, ratio,
 * target and met, and "note", which bench.sh lays out as one table.
 *
 * The client is a single process that drives all its connections from
 * poll(2).  Every wait has a deadline, and an alarm ends the program
 * whatever happens, so a broken server makes the benchmark fail, never
 * hang.  Linux only: CPU time, memory and fds come from /proc.
 */

#include <sys/types.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <ctype.h>
#include <dirent.h>
#include <endian.h>
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../ivshm.h"
#include "lib.h"

#ifndef __dead
#define __dead		__attribute__((__noreturn__))
#endif

#define STEP_MS		5000	/* deadline of one exchange */
#define BURST_MS	20000	/* deadline of a whole burst */
#define START_MS	10000	/* deadline of a server's start */
#define ALARM_S		300	/* the most any command may take */
#define WARMUP		200	/* handshakes before any measurement */
#define PUSH_KEEP	4096	/* connections a pushing floor keeps open */
#define VM_MAXREG	IVSHM_REGIONS_MAX
#define MS		1000000LL	/* ns */

/* The targets of the issue, checked where they apply. */
#define TARGET_RATIO	2.0	/* handshake median over its floor */
#define TARGET_CONC	64	/* clients at which the rate is checked */
#define TARGET_RATE	20000.0	/* handshakes per second */
#define TARGET_START	(10 * MS)
#define TARGET_RSS	2048	/* KiB, parent and serving child */

enum hstate {
	HS_IDLE,
	HS_VERSION,	/* connected, waiting for the version */
	HS_REPLY	/* request sent, waiting for offsets and fds */
};

/* One host-client handshake under way. */
struct hs {
	int		 fd;
	enum hstate	 state;
	unsigned char	 buf[16];
	size_t		 got;
	int		 fds[RECV_MAXFDS];
	int		 nfds;
	int64_t		 start;		/* ns */
	int64_t		 end;		/* ns */
	long long	 deadline;	/* ms */
	int		 rv;		/* once ended: 1 served, -1 failed */
};

/* Handshakes driven from one poll(2). */
struct hsset {
	struct hs	*h;
	int		 n;
	struct pollfd	*pfd;		/* room for n */
	int		*idx;		/* of the pfd's handshake */
	int		*ended;		/* handshakes that ended in a poll */
};

struct opts {
	const char	*sock;		/* -s: the client socket */
	const char	*qsock;		/* -q: the VM socket */
	const char	*floor;		/* -F: where the floor server listens */
	const char	*server;	/* -x: the server binary */
	const char	*dir;		/* -D: for start's sockets and log */
	const char	*layout;	/* -f */
	const char	*label;		/* -l: names the row */
	const char	*conc;		/* -c: comma-separated client counts */
	int		 count;		/* -n */
	int		 runs;		/* -r */
	int		 dur;		/* -d: ms per throughput run */
	int		 nregions;	/* -N */
	int		 target;	/* -T: check the figure's targets */
	pid_t		 pid;		/* -p: the server's parent */
};

static unsigned char	 req[2 + IVSHM_NAME_SIZE];
static size_t		 reqlen;
static const char	*region = "hwcomposer";
static const char	*self_exe;
static volatile pid_t	 floorpid = -1;
static volatile pid_t	 spawned = -1;	/* a server start is timing */
static int		 floorcpu = -1;	/* -S: where servers and floors run */
static int		 clientcpu = -1;	/* -C: where the client runs */

static __dead void usage(void);
static int64_t	 now_ns(void);
static void	 sleep_ns(int64_t);
static int	 wait_in(int, long long);
static int	 cmp64(const void *, const void *);
static int	 cmp64l(const void *, const void *);
static int64_t	 pct(const int64_t *, size_t, double);
static double	 median_d(double *, size_t);
static void	 fmt_lat(char *, size_t, const int64_t *, size_t);
static void	 row(const char *, const char *, const char *, const char *,
		    const char *, const char *);
static void	 note(const char *, ...)
		    __attribute__((__format__(__printf__, 1, 2)));
static void	 set_sun(struct sockaddr_un *, const char *);
static int	 send_fds(int, const void *, size_t, const int *, int);
static int	 read_full(int, void *, size_t);
static void	 make_fds(int *, int);
static int	 hs_start(struct hs *, const struct sockaddr_un *);
static int	 hs_step(struct hs *);
static void	 hs_end(struct hs *);
static void	 hsset_init(struct hsset *, int);
static void	 hsset_free(struct hsset *);
static int	 hsset_poll(struct hsset *, int);
static int64_t	 hs_once(const struct sockaddr_un *);
static int	 warmup(const struct sockaddr_un *);
static void	 on_fatal(int);
static void	 pin(int);
static void	 child_init(void);
static void	 floor_serve(int, int);
static int	 floor_listen(const char *);
static pid_t	 floor_start(const char *, int);
static void	 floor_stop(void);
static pid_t	 pair_start(int *, int);
static void	 pair_serve(int, int);
static int64_t	 pair_once(int, int);
static long	 proc_kb(pid_t, const char *, const char *);
static int64_t	 proc_cpu(pid_t);
static int64_t	 server_cpu(pid_t);
static double	 tput_run(const struct sockaddr_un *, int, int, long *);
static int	 burst_run(const struct sockaddr_un *, int, int64_t *);
static int	 vm_recv(int, int64_t *, int *, long long);
static int64_t	 vm_once(const struct sockaddr_un *, int, int *);
static int	 vm_sync(const struct sockaddr_un *);
static void	 vm_serve(int, int);
static int64_t	 vm_pair_once(int, int);
static int	 start_once(char *const [], const char *, const char *,
		    int64_t *, int64_t *, long *, int *);
static int	 cmd_hs(struct opts *);
static int	 cmd_hsonly(struct opts *);
static int	 cmd_tput(struct opts *);
static int	 cmd_burst(struct opts *);
static int	 cmd_vm(struct opts *);
static int	 cmd_start(struct opts *);
static int	 cmd_floorsrv(int, char *[]);
static int	 cmd_peerfloor(int, char *[]);

static __dead void
usage(void)
{
	fprintf(stderr,
	    "usage: ivbench command [-C cpu] [-R region] [-S cpu] [options]\n"
	    "       ivbench hs -s socket -F floorsocket [-l label] [-n count] "
	    "[-p pid] [-r runs] [-T]\n"
	    "       ivbench tput -s socket -F floorsocket [-c list] [-d ms] "
	    "[-p pid] [-r runs]\n"
	    "       ivbench burst -s socket -F floorsocket [-n clients] "
	    "[-r runs]\n"
	    "       ivbench vm -q socket -s socket -N regions [-n count] "
	    "[-r runs]\n"
	    "       ivbench start -x server -D dir -f layout [-l label] "
	    "[-r runs] [-T]\n"
	    "       ivbench hsonly -s socket [-n count]\n"
	    "       ivbench floorsrv socket\n"
	    "       ivbench peerfloor socket vectors\n");
	exit(2);
}

/*
 * Time, statistics and output.
 */

static int64_t
now_ns(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/*
 * The start-up figure is some milliseconds: a connect is retried every
 * few microseconds, finer than sleep_ms() can.
 */
static void
sleep_ns(int64_t ns)
{
	struct timespec	 ts;

	ts.tv_sec = ns / 1000000000;
	ts.tv_nsec = ns % 1000000000;
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* Wait for input until the deadline, in ms, or say why not. */
static int
wait_in(int fd, long long deadline)
{
	switch (fd_wait(fd, POLLIN, deadline)) {
	case 1:
		return 0;
	case 0:
		warnx("timed out waiting for the server");
		return -1;
	default:
		warn("poll");
		return -1;
	}
}

static int
cmp64(const void *a, const void *b)
{
	int64_t	 x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

static int
cmp64l(const void *a, const void *b)
{
	long	 x = *(const long *)a, y = *(const long *)b;

	return x < y ? -1 : x > y;
}

/* Nearest rank of sorted v: the smallest value with p of them at or below. */
static int64_t
pct(const int64_t *v, size_t n, double p)
{
	size_t	 i;

	if (n == 0)
		return 0;
	i = (size_t)(p * n + 0.999999);
	if (i == 0)
		i = 1;
	if (i > n)
		i = n;
	return v[i - 1];
}

static double
median_d(double *v, size_t n)
{
	double	 t;
	size_t	 i, j;

	/* A handful of runs: insertion sort will do. */
	for (i = 1; i < n; i++)
		for (j = i; j > 0 && v[j - 1] > v[j]; j--) {
			t = v[j];
			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	if (n == 0)
		return 0;
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* "p50 / p99" of sorted v, in the unit that suits the p99. */
static void
fmt_lat(char *buf, size_t len, const int64_t *v, size_t n)
{
	int64_t	 a = pct(v, n, .5), b = pct(v, n, .99);

	if (b < MS)
		snprintf(buf, len, "%.1f / %.1f us", a / 1e3, b / 1e3);
	else
		snprintf(buf, len, "%.2f / %.2f ms", a / 1e6, b / 1e6);
}

static void
row(const char *fig, const char *val, const char *floor, const char *ratio,
    const char *target, const char *met)
{
	printf("row\t%s\t%s\t%s\t%s\t%s\t%s\n", fig, val, floor, ratio,
	    target, met);
	fflush(stdout);
}

static void
note(const char *fmt, ...)
{
	va_list	 ap;

	fputs("note\t", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

/*
 * Sockets and fds.
 */

static void
set_sun(struct sockaddr_un *sun, const char *path)
{
	if (unix_addr(sun, path) == -1)
		err(1, "%s", path);
}

static int
send_fds(int s, const void *buf, size_t len, const int *fds, int nfds)
{
	union {
		struct cmsghdr	hdr;
		unsigned char	buf[CMSG_SPACE(3 * sizeof(int))];
	}		 cbuf;
	struct msghdr	 msg;
	struct iovec	 iov;
	struct cmsghdr	*c;

	memset(&msg, 0, sizeof(msg));
	iov.iov_base = (void *)(uintptr_t)buf;
	iov.iov_len = len;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	if (nfds > 0) {
		memset(&cbuf, 0, sizeof(cbuf));
		msg.msg_control = cbuf.buf;
		msg.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
	}
	return sendmsg(s, &msg, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
}

/* Blocking read of exactly len bytes, for the floor processes. */
static int
read_full(int s, void *buf, size_t len)
{
	unsigned char	*p = buf;
	ssize_t		 n;

	while (len > 0) {
		if ((n = read(s, p, len)) == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * The fds a floor hands out: n - 1 eventfds and, first, a small memfd,
 * the same kinds of file the server passes.
 */
static void
make_fds(int *fds, int n)
{
	int	 i;

	if ((fds[0] = memfd_create("ivbench", MFD_CLOEXEC)) == -1 ||
	    ftruncate(fds[0], 1 << 20) == -1)
		err(1, "memfd");
	for (i = 1; i < n; i++)
		if ((fds[i] = eventfd(0, EFD_CLOEXEC)) == -1)
			err(1, "eventfd");
}

/*
 * The host-client handshake, as a state machine so that one process
 * can drive hundreds of them from one poll(2).
 */

/*
 * Returns 0 when connected, 1 when the backlog is full, -1 on error
 * with errno set: the caller knows whether a missing socket is one.
 */
static int
hs_start(struct hs *h, const struct sockaddr_un *sun)
{
	int	 rv, saved;

	h->start = now_ns();
	h->deadline = now_ms() + STEP_MS;
	h->state = HS_VERSION;
	h->got = 0;
	h->nfds = 0;
	if ((h->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1) {
		h->state = HS_IDLE;
		return -1;
	}
	if (connect(h->fd, (const struct sockaddr *)sun, sizeof(*sun)) == 0)
		return 0;
	/* A full listen backlog is not the server failing: try again. */
	saved = errno;
	rv = saved == EAGAIN ? 1 : -1;
	close(h->fd);
	h->fd = -1;
	h->state = HS_IDLE;
	errno = saved;
	return rv;
}

/*
 * Take what the server sent.  Returns 1 when the fds are in, 0 to wait
 * for more, -1 on any deviation from the protocol.
 */
static int
hs_step(struct hs *h)
{
	uint64_t	 b, e;
	uint32_t	 v;
	size_t		 want;
	ssize_t		 n;

	for (;;) {
		want = h->state == HS_VERSION ? 4 : 16;
		n = recv_fds(h->fd, h->buf + h->got, want - h->got, h->fds,
		    &h->nfds);
		if (n == -1) {
			if (errno == EAGAIN || errno == EINTR)
				return 0;
			warn("recvmsg");
			return -1;
		}
		if (n == 0) {
			warnx("the server closed a connection");
			return -1;
		}
		if ((h->got += (size_t)n) < want)
			continue;
		if (h->state == HS_REPLY)
			break;
		memcpy(&v, h->buf, sizeof(v));
		if (le32toh(v) != IVSHM_CLIENT_VERSION || h->nfds != 0) {
			warnx("bad version message");
			return -1;
		}
		if (write(h->fd, req, reqlen) != (ssize_t)reqlen) {
			warn("write request");
			return -1;
		}
		h->state = HS_REPLY;
		h->got = 0;
		/* The answer cannot be there yet: back to poll. */
		return 0;
	}
	h->end = now_ns();
	memcpy(&b, h->buf, sizeof(b));
	memcpy(&e, h->buf + 8, sizeof(e));
	if (le64toh(b) == IVSHM_NO_REGION || le64toh(e) == IVSHM_NO_REGION ||
	    h->nfds != 3) {
		warnx("region %s: answer with %d fds", region, h->nfds);
		return -1;
	}
	return 1;
}

static void
hs_end(struct hs *h)
{
	close_fds(h->fds, h->nfds);
	h->nfds = 0;
	if (h->fd != -1)
		close(h->fd);
	h->fd = -1;
	h->state = HS_IDLE;
}

static void
hsset_init(struct hsset *set, int n)
{
	int	i;

	set->n = n;
	if ((set->h = calloc(n, sizeof(*set->h))) == NULL ||
	    (set->pfd = calloc(n, sizeof(*set->pfd))) == NULL ||
	    (set->idx = calloc(n, sizeof(*set->idx))) == NULL ||
	    (set->ended = calloc(n, sizeof(*set->ended))) == NULL)
		err(1, NULL);
	for (i = 0; i < n; i++) {
		set->h[i].fd = -1;
		set->h[i].state = HS_IDLE;
	}
}

/* End what is still under way, and free. */
static void
hsset_free(struct hsset *set)
{
	int	i;

	for (i = 0; i < set->n; i++)
		if (set->h[i].state != HS_IDLE)
			hs_end(&set->h[i]);
	free(set->h);
	free(set->pfd);
	free(set->idx);
	free(set->ended);
}

/*
 * Wait up to ms for the handshakes under way and take what came.
 * Those that end, served or failed, are ended with their result in rv
 * and their index in ended[]: returns how many.
 */
static int
hsset_poll(struct hsset *set, int ms)
{
	struct hs	*h;
	int		 i, k, n = 0, m = 0, rv;

	for (i = 0; i < set->n; i++) {
		if (set->h[i].state == HS_IDLE)
			continue;
		set->pfd[n].fd = set->h[i].fd;
		set->pfd[n].events = POLLIN;
		set->idx[n++] = i;
	}
	if (poll(set->pfd, n, ms) == -1) {
		if (errno == EINTR)
			return 0;
		err(1, "poll");
	}
	for (k = 0; k < n; k++) {
		if (set->pfd[k].revents == 0)
			continue;
		h = &set->h[set->idx[k]];
		if ((rv = hs_step(h)) == 0)
			continue;
		hs_end(h);
		h->rv = rv;
		set->ended[m++] = set->idx[k];
	}
	return m;
}

/* One handshake with no other client about: its time in ns, or -1. */
static int64_t
hs_once(const struct sockaddr_un *sun)
{
	struct hs	 h;
	long long	 give_up = now_ms() + STEP_MS;
	int		 rv;

	while ((rv = hs_start(&h, sun)) == 1) {
		if (ms_left(give_up) == 0) {
			warnx("%s: backlog full for too long", sun->sun_path);
			return -1;
		}
		/* The backlog is full: the server is behind, not failing. */
		sleep_ms(1);
	}
	if (rv == -1) {
		warn("connect %s", sun->sun_path);
		return -1;
	}
	while ((rv = hs_step(&h)) == 0)
		if (wait_in(h.fd, h.deadline) == -1) {
			rv = -1;
			break;
		}
	hs_end(&h);
	return rv == 1 ? h.end - h.start : -1;
}

static int
warmup(const struct sockaddr_un *sun)
{
	int	 i;

	for (i = 0; i < WARMUP; i++)
		if (hs_once(sun) == -1)
			return -1;
	return 0;
}

/*
 * The floors.  A floor process dies with the benchmark, and on its
 * own alarm, so that none is ever left behind.
 */

/*
 * Forked floors die with the benchmark by PR_SET_PDEATHSIG, but a
 * server that start spawned is no child of ours to the kernel's mind
 * once we are gone: stop it on the way out.
 */
static void
on_fatal(int sig)
{
	static const char	 msg[] = "ivbench: stopped by a signal\n";

	if (spawned > 0)
		kill(spawned, SIGTERM);
	if (floorpid > 0)
		kill(floorpid, SIGKILL);
	(void)write(STDERR_FILENO, msg, sizeof(msg) - 1);
	_exit(128 + sig);
}

/*
 * Where a wake-up lands costs more than most of what is measured: a
 * cross-CPU one several times a same-CPU one on a virtual machine.  So
 * bench.sh puts the client on one CPU and every server, real or floor,
 * on another, the same placement for each figure and its floor.
 */
static void
pin(int cpu)
{
	cpu_set_t	 set;

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) == -1)
		warn("sched_setaffinity %d", cpu);
}

static void
child_init(void)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	alarm(ALARM_S);
	pin(floorcpu);
}

/*
 * A server with no logic: one client at a time, blocking calls, the
 * version, any request, the same answer with three fds, close.
 *
 * With push set it never waits for a client, which one at a time
 * would make it slower than a real server under many clients: it
 * sends the version and the answer as soon as it accepts, leaves the
 * request unread, and closes each connection PUSH_KEEP accepts later,
 * when the client has long read its answer.
 */
static void
floor_serve(int lfd, int push)
{
	unsigned char	 in[2 + IVSHM_NAME_SIZE], out[16];
	uint64_t	 b = htole64(4096), e = htole64(8192);
	uint32_t	 v = htole32(IVSHM_CLIENT_VERSION);
	size_t		 len, next = 0;
	int		 fds[3], c, *keep;

	make_fds(fds, 3);
	if ((keep = calloc(PUSH_KEEP, sizeof(*keep))) == NULL)
		err(1, NULL);
	memcpy(out, &b, sizeof(b));
	memcpy(out + 8, &e, sizeof(e));
	for (;;) {
		if ((c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) == -1) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			err(1, "floor: accept");
		}
		if (push) {
			if (write(c, &v, sizeof(v)) == sizeof(v))
				(void)send_fds(c, out, sizeof(out), fds, 3);
			if (keep[next] > 0)
				close(keep[next]);
			keep[next] = c;
			next = (next + 1) % PUSH_KEEP;
			continue;
		}
		if (write(c, &v, sizeof(v)) == sizeof(v) &&
		    read_full(c, in, 2) == 0 &&
		    (len = in[0] | (size_t)in[1] << 8) < IVSHM_NAME_SIZE &&
		    read_full(c, in + 2, len) == 0)
			(void)send_fds(c, out, sizeof(out), fds, 3);
		close(c);
	}
}

static int
floor_listen(const char *path)
{
	struct sockaddr_un	 sun;
	int			 s;

	set_sun(&sun, path);
	(void)unlink(path);
	if ((s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    bind(s, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    listen(s, SOMAXCONN) == -1)
		err(1, "floor: %s", path);
	return s;
}

static pid_t
floor_start(const char *path, int push)
{
	pid_t	 pid;
	int	 s;

	s = floor_listen(path);
	if ((pid = fork()) == -1)
		err(1, "fork");
	if (pid == 0) {
		child_init();
		floor_serve(s, push);
	}
	close(s);
	floorpid = pid;
	return pid;
}

static void
floor_stop(void)
{
	if (floorpid == -1)
		return;
	kill(floorpid, SIGKILL);
	waitpid(floorpid, NULL, 0);
	floorpid = -1;
}

/*
 * The socketpair floor: a process that reads a request and answers
 * with 16 bytes and three fds, and with hello set first waits for one
 * byte and answers the version, the round trip a connect costs.
 */
static pid_t
pair_start(int *s, int hello)
{
	int	 sv[2];
	pid_t	 pid;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1)
		err(1, "socketpair");
	if ((pid = fork()) == -1)
		err(1, "fork");
	if (pid == 0) {
		child_init();
		close(sv[0]);
		pair_serve(sv[1], hello);
	}
	close(sv[1]);
	*s = sv[0];
	if (fcntl(*s, F_SETFL, O_NONBLOCK) == -1)
		err(1, "fcntl");
	return pid;
}

static void
pair_serve(int s, int hello)
{
	unsigned char	 in[2 + IVSHM_NAME_SIZE], out[16];
	uint64_t	 b = htole64(4096), e = htole64(8192);
	uint32_t	 v = htole32(IVSHM_CLIENT_VERSION);
	size_t		 len;
	int		 fds[3];

	make_fds(fds, 3);
	memcpy(out, &b, sizeof(b));
	memcpy(out + 8, &e, sizeof(e));
	for (;;) {
		if (hello && (read_full(s, in, 1) == -1 ||
		    write(s, &v, sizeof(v)) != sizeof(v)))
			_exit(0);
		if (read_full(s, in, 2) == -1 ||
		    (len = in[0] | (size_t)in[1] << 8) >= IVSHM_NAME_SIZE ||
		    read_full(s, in + 2, len) == -1 ||
		    send_fds(s, out, sizeof(out), fds, 3) == -1)
			_exit(0);
	}
}

/* One exchange with the socketpair floor, as hs_once times it. */
static int64_t
pair_once(int s, int hello)
{
	struct hs	 h;
	int64_t		 t;
	int		 rv;

	memset(&h, 0, sizeof(h));
	h.fd = s;
	h.start = now_ns();
	h.deadline = now_ms() + STEP_MS;
	h.state = HS_VERSION;
	if (hello) {
		if (write(s, "h", 1) != 1) {
			warn("floor: write");
			return -1;
		}
	} else {
		if (write(s, req, reqlen) != (ssize_t)reqlen) {
			warn("floor: write");
			return -1;
		}
		h.state = HS_REPLY;
	}
	do {
		if (wait_in(s, h.deadline) == -1)
			return -1;
	} while ((rv = hs_step(&h)) == 0);
	close_fds(h.fds, h.nfds);
	t = h.end - h.start;
	return rv == 1 ? t : -1;
}

/*
 * /proc.
 */

/* A "Key: N kB" line of /proc/pid/file, or -1. */
static long
proc_kb(pid_t pid, const char *file, const char *key)
{
	char	 path[64], line[256];
	size_t	 klen = strlen(key);
	long	 v = -1;
	FILE	*fp;

	snprintf(path, sizeof(path), "/proc/%ld/%s", (long)pid, file);
	if ((fp = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), fp) != NULL)
		if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
			v = strtol(line + klen + 1, NULL, 10);
			break;
		}
	fclose(fp);
	return v;
}

/* CPU time in ns: schedstat's is exact, stat's is in clock ticks. */
static int64_t
proc_cpu(pid_t pid)
{
	char		 path[64], buf[512], *p;
	long long	 ns, ut, st;
	FILE		*fp;
	int		 ok;

	snprintf(path, sizeof(path), "/proc/%ld/schedstat", (long)pid);
	if ((fp = fopen(path, "r")) != NULL) {
		ok = fscanf(fp, "%lld", &ns) == 1;
		fclose(fp);
		if (ok)
			return ns;
	}
	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	if ((fp = fopen(path, "r")) == NULL)
		return -1;
	ok = fgets(buf, sizeof(buf), fp) != NULL;
	fclose(fp);
	/* The command name may hold anything: start after its ')'. */
	if (!ok || (p = strrchr(buf, ')')) == NULL ||
	    sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
	    "%lld %lld", &ut, &st) != 2)
		return -1;
	return (ut + st) * (1000000000 / sysconf(_SC_CLK_TCK));
}

/* CPU time of a server, the parent and its serving child together. */
static int64_t
server_cpu(pid_t pid)
{
	static pid_t	 cached_parent = -1, child = -1;
	int64_t		 a, b;

	if (pid <= 0)
		return -1;
	if (pid != cached_parent) {
		child = proc_child(pid, NULL);
		cached_parent = pid;
	}
	if ((a = proc_cpu(pid)) == -1 || child == -1 ||
	    (b = proc_cpu(child)) == -1)
		return -1;
	return a + b;
}

/*
 * Figure 1: one client at a time.
 */

static int
cmd_hs(struct opts *o)
{
	struct sockaddr_un	 sun, fsun;
	int64_t			*sv, *fv, *pv, *hv, t, c0, cpu = 0;
	size_t			 n = 0;
	char			 fig[128], val[128], flo[128], rat[64];
	double			 ratio;
	pid_t			 p1, p2;
	int			 s1, s2, r, i, ok = 1;

	set_sun(&sun, o->sock);
	set_sun(&fsun, o->floor);
	floor_start(o->floor, 0);
	p1 = pair_start(&s1, 0);
	p2 = pair_start(&s2, 1);
	if ((sv = calloc((size_t)o->runs * o->count, sizeof(*sv))) == NULL ||
	    (fv = calloc((size_t)o->runs * o->count, sizeof(*fv))) == NULL ||
	    (pv = calloc((size_t)o->runs * o->count, sizeof(*pv))) == NULL ||
	    (hv = calloc((size_t)o->runs * o->count, sizeof(*hv))) == NULL)
		err(1, NULL);
	if (warmup(&sun) == -1 || warmup(&fsun) == -1)
		return -1;
	/* Runs interleave server and floors so they share the noise. */
	for (r = 0; r < o->runs && ok; r++) {
		c0 = server_cpu(o->pid);
		for (i = 0; i < o->count && ok; i++)
			if ((sv[n + i] = hs_once(&sun)) == -1)
				ok = 0;
		if (c0 != -1 && (t = server_cpu(o->pid)) != -1)
			cpu += t - c0;
		for (i = 0; i < o->count && ok; i++)
			if ((fv[n + i] = pair_once(s1, 0)) == -1)
				ok = 0;
		for (i = 0; i < o->count && ok; i++)
			if ((pv[n + i] = pair_once(s2, 1)) == -1)
				ok = 0;
		for (i = 0; i < o->count && ok; i++)
			if ((hv[n + i] = hs_once(&fsun)) == -1)
				ok = 0;
		n += o->count;
	}
	close(s1);
	close(s2);
	kill(p1, SIGKILL);
	kill(p2, SIGKILL);
	waitpid(p1, NULL, 0);
	waitpid(p2, NULL, 0);
	floor_stop();
	if (!ok)
		return -1;
	qsort(sv, n, sizeof(*sv), cmp64);
	qsort(fv, n, sizeof(*fv), cmp64);
	qsort(pv, n, sizeof(*pv), cmp64);
	qsort(hv, n, sizeof(*hv), cmp64);

	snprintf(fig, sizeof(fig), "1. handshake p50 / p99, %s", o->label);
	fmt_lat(val, sizeof(val), sv, n);
	fmt_lat(flo, sizeof(flo), fv, n);
	ratio = (double)pct(sv, n, .5) / pct(fv, n, .5);
	snprintf(rat, sizeof(rat), "%.2fx", ratio);
	row(fig, val, flo, rat, o->target ? "p50 <= 2x floor" : "-",
	    o->target ? ratio <= TARGET_RATIO ? "yes" : "NO" : "-");
	fmt_lat(flo, sizeof(flo), pv, n);
	snprintf(rat, sizeof(rat), "%.2fx",
	    (double)pct(sv, n, .5) / pct(pv, n, .5));
	snprintf(fig, sizeof(fig), "1b. the same, %s, floor 1b", o->label);
	row(fig, val, flo, rat, "-", "-");
	fmt_lat(flo, sizeof(flo), hv, n);
	snprintf(rat, sizeof(rat), "%.2fx",
	    (double)pct(sv, n, .5) / pct(hv, n, .5));
	snprintf(fig, sizeof(fig), "1c. the same, %s, floor 1c", o->label);
	row(fig, val, flo, rat, "-", "-");
	if (cpu > 0)
		note("1: %s: server CPU (parent + serving child) %.1f us "
		    "per serial handshake", o->label, cpu / 1e3 / n);
	free(sv);
	free(fv);
	free(pv);
	free(hv);
	return 0;
}

/* Handshakes one at a time and nothing else: for callgrind. */
static int
cmd_hsonly(struct opts *o)
{
	struct sockaddr_un	 sun;
	int			 i;

	set_sun(&sun, o->sock);
	for (i = 0; i < o->count; i++)
		if (hs_once(&sun) == -1)
			return -1;
	return 0;
}

/*
 * Figure 2: conc clients, each starting a new handshake as soon as its
 * last one is done, for dur_ms.  Handshakes still under way at the end
 * are finished but not counted in the rate returned, handshakes per
 * second; *total counts them too, for the CPU time they cost.
 */
static double
tput_run(const struct sockaddr_un *sun, int conc, int dur_ms, long *total)
{
	struct hsset	 set;
	struct hs	*h;
	int64_t		 end, now;
	long		 done = 0;
	int		 i, k, busy, rv, retry, fail = 0;

	hsset_init(&set, conc);
	end = now_ns() + dur_ms * MS;
	for (;;) {
		now = now_ns();
		busy = retry = 0;
		for (i = 0; i < conc; i++) {
			h = &set.h[i];
			if (h->state == HS_IDLE && now < end && !fail) {
				if ((rv = hs_start(h, sun)) == -1) {
					warn("connect %s", sun->sun_path);
					fail = 1;
				}
				retry |= rv == 1;
			}
			if (h->state != HS_IDLE && ms_left(h->deadline) == 0) {
				warnx("a handshake timed out");
				fail = 1;
				hs_end(h);
			}
			busy += h->state != HS_IDLE;
		}
		if (busy == 0 && (now >= end || fail))
			break;
		for (k = hsset_poll(&set, retry ? 1 : 100); k-- > 0; ) {
			h = &set.h[set.ended[k]];
			if (h->rv == -1)
				fail = 1;
			else if (h->end <= end)
				done++;
			else
				(*total)++;
		}
	}
	hsset_free(&set);
	*total += done;
	return fail ? -1 : done / (dur_ms / 1000.0);
}

static int
cmd_tput(struct opts *o)
{
	struct sockaddr_un	 sun, fsun;
	struct rusage		 ru0, ru1;
	double			 rs[16], rf[16], v, f;
	int64_t			 c0, c1, cpu, ccpu;
	char			 fig[128], val[64], flo[64], rat[64], tgt[64];
	char			 num[16];
	const char		*p;
	size_t			 len;
	long			 hs, fhs;
	int			 conc, r, runs = o->runs > 16 ? 16 : o->runs;

	set_sun(&sun, o->sock);
	set_sun(&fsun, o->floor);
	floor_start(o->floor, 1);
	if (warmup(&sun) == -1 || warmup(&fsun) == -1)
		return -1;
	for (p = o->conc; *p != '\0'; p += len + (p[len] == ',')) {
		len = strcspn(p, ",");
		if (len == 0 || len >= sizeof(num))
			errx(2, "-c %s: bad list", o->conc);
		memcpy(num, p, len);
		num[len] = '\0';
		conc = getnum(num, 1, 4096, "-c");
		cpu = ccpu = 0;
		hs = fhs = 0;
		for (r = 0; r < runs; r++) {
			c0 = server_cpu(o->pid);
			getrusage(RUSAGE_SELF, &ru0);
			if ((rs[r] = tput_run(&sun, conc, o->dur, &hs)) < 0)
				return -1;
			getrusage(RUSAGE_SELF, &ru1);
			if (c0 != -1 && (c1 = server_cpu(o->pid)) != -1)
				cpu += c1 - c0;
			ccpu += (ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec +
			    ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) *
			    1000000000LL + (ru1.ru_utime.tv_usec -
			    ru0.ru_utime.tv_usec + ru1.ru_stime.tv_usec -
			    ru0.ru_stime.tv_usec) * 1000LL;
			if ((rf[r] = tput_run(&fsun, conc, o->dur, &fhs)) < 0)
				return -1;
			/*
			 * Not for correctness: a pause, so that the server's
			 * closing of the last run's connections is not
			 * measured in the next.
			 */
			sleep_ms(20);
		}
		v = median_d(rs, runs);
		f = median_d(rf, runs);
		snprintf(fig, sizeof(fig), "2. handshakes/s, %d concurrent",
		    conc);
		snprintf(val, sizeof(val), "%.0f/s", v);
		snprintf(flo, sizeof(flo), "%.0f/s", f);
		snprintf(rat, sizeof(rat), "%.2fx", v / f);
		if (conc == TARGET_CONC) {
			snprintf(tgt, sizeof(tgt), ">= %.0f/s", TARGET_RATE);
			row(fig, val, flo, rat, tgt,
			    v >= TARGET_RATE ? "yes" : "NO");
		} else
			row(fig, val, flo, rat, "-", "-");
		if (cpu > 0 && hs > 0)
			note("2: %d clients: server CPU %.1f us/handshake, "
			    "%.0f%% of a core; client CPU %.0f%% of a core",
			    conc, cpu / 1e3 / (double)hs,
			    100.0 * cpu / (runs * o->dur * MS),
			    100.0 * ccpu / (runs * o->dur * MS));
	}
	floor_stop();
	return 0;
}

/*
 * Figure 3: clients handshakes started at once.  Each one's time from
 * the start of the burst to its fds goes into ns[]; returns how many
 * were served, or -1.
 */
static int
burst_run(const struct sockaddr_un *sun, int clients, int64_t *ns)
{
	struct hsset	 set;
	struct hs	*h;
	unsigned char	*fin;
	int64_t		 t0;
	long long	 deadline;
	int		 i, k, rv, retry, served = 0, failed = 0;

	hsset_init(&set, clients);
	if ((fin = calloc(clients, 1)) == NULL)
		err(1, NULL);
	t0 = now_ns();
	deadline = now_ms() + BURST_MS;
	while (served + failed < clients) {
		if (ms_left(deadline) == 0) {
			warnx("burst: %d of %d not served in %d ms",
			    clients - served - failed, clients, BURST_MS);
			break;
		}
		retry = 0;
		for (i = 0; i < clients; i++) {
			if (fin[i] || set.h[i].state != HS_IDLE)
				continue;
			if ((rv = hs_start(&set.h[i], sun)) == -1) {
				warn("connect %s", sun->sun_path);
				fin[i] = 1;
				failed++;
			}
			retry |= rv == 1;
		}
		for (k = hsset_poll(&set, retry ? 1 : ms_left(deadline));
		    k-- > 0; ) {
			h = &set.h[set.ended[k]];
			fin[set.ended[k]] = 1;
			if (h->rv == 1)
				ns[served++] = h->end - t0;
			else
				failed++;
		}
	}
	hsset_free(&set);
	free(fin);
	return served;
}

static int
cmd_burst(struct opts *o)
{
	struct sockaddr_un	 sun, fsun;
	int64_t			*sv, *fv;
	char			 fig[128], val[128], flo[128], rat[64];
	char			 a[64];
	int			 r, k, ns = 0, nf = 0, all = o->runs * o->count;

	set_sun(&sun, o->sock);
	set_sun(&fsun, o->floor);
	floor_start(o->floor, 1);
	if ((sv = calloc(all, sizeof(*sv))) == NULL ||
	    (fv = calloc(all, sizeof(*fv))) == NULL)
		err(1, NULL);
	if (warmup(&sun) == -1 || warmup(&fsun) == -1)
		return -1;
	for (r = 0; r < o->runs; r++) {
		if ((k = burst_run(&sun, o->count, sv + ns)) == -1)
			return -1;
		ns += k;
		/* As in tput: the closing is not to be measured. */
		sleep_ms(100);
		if ((k = burst_run(&fsun, o->count, fv + nf)) == -1)
			return -1;
		nf += k;
		sleep_ms(100);
	}
	floor_stop();
	qsort(sv, ns, sizeof(*sv), cmp64);
	qsort(fv, nf, sizeof(*fv), cmp64);
	snprintf(fig, sizeof(fig), "3. burst of %d, time to fds p50 / p99 "
	    "(served)", o->count);
	fmt_lat(a, sizeof(a), sv, ns);
	snprintf(val, sizeof(val), "%s (%d/%d)", a, ns, all);
	fmt_lat(a, sizeof(a), fv, nf);
	snprintf(flo, sizeof(flo), "%s (%d/%d)", a, nf, all);
	snprintf(rat, sizeof(rat), "%.2fx",
	    nf ? (double)pct(sv, ns, .5) / pct(fv, nf, .5) : 0);
	row(fig, val, flo, rat, "all served", ns == all ? "yes" : "NO");
	free(sv);
	free(fv);
	return 0;
}

/*
 * Figure 4: the ivshmem handshake as QEMU's ivshmem-doorbell reads it,
 * one 8-byte message per recvmsg with at most one fd.
 */

/* One message: its value and fd (-1 if none). */
static int
vm_recv(int s, int64_t *val, int *fd, long long deadline)
{
	switch (msg_recv(s, val, fd, deadline)) {
	case 1:
		return 0;
	case 0:
		errno = EPROTO;
		break;
	}
	if (errno == EPROTO)
		warnx("VM socket closed in the handshake");
	else if (errno == EMSGSIZE)
		warnx("a VM message with more than one fd");
	else
		warn("VM socket");
	return -1;
}

/*
 * Connect and read version, ID, shm and 2 * nreg vectors.  Returns the
 * time to the last message, 0 with *refused set when the server still
 * had the last VM attached, or -1.
 */
static int64_t
vm_once(const struct sockaddr_un *sun, int nreg, int *refused)
{
	int64_t		 t0, val, want;
	long long	 deadline;
	int		 i, s, fd, nmsg = 3 + 2 * nreg;

	*refused = 0;
	t0 = now_ns();
	deadline = now_ms() + STEP_MS;
	if ((s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1 || connect(s, (const struct sockaddr *)sun,
	    sizeof(*sun)) == -1) {
		warn("connect %s", sun->sun_path);
		if (s != -1)
			close(s);
		return -1;
	}
	for (i = 0; i < nmsg; i++) {
		if (vm_recv(s, &val, &fd, deadline) == -1)
			break;
		if (fd != -1)
			close(fd);
		if (i == 1 && val == -1) {
			*refused = 1;
			close(s);
			return 0;
		}
		want = i == 0 ? IVSHM_CLIENT_VERSION : i == 1 ? 1 :
		    i == 2 ? -1 : i < 3 + nreg ? 0 : 1;
		if (val != want || (fd == -1) != (i < 2)) {
			warnx("VM message %d: %lld%s, expected %lld%s", i,
			    (long long)val, fd == -1 ? "" : " with an fd",
			    (long long)want, i < 2 ? "" : " with an fd");
			break;
		}
	}
	val = now_ns() - t0;
	close(s);
	return i == nmsg ? val : -1;
}

/*
 * Once a client has had its version, the server has been through a
 * poll round begun after the last VM socket closed, and that round saw
 * the close: the next VM is not taken for a second one.  Returns the
 * connection, for the caller to close once the VM is measured, so that
 * the server does not take the close in the middle of it.
 */
static int
vm_sync(const struct sockaddr_un *csun)
{
	struct hs	 h;
	ssize_t		 n = -1;

	if (hs_start(&h, csun) != 0) {
		warn("connect %s", csun->sun_path);
		return -1;
	}
	/* The version only: a request would have the server busy still. */
	while (h.got < 4) {
		if (wait_in(h.fd, h.deadline) == -1)
			break;
		n = recv_fds(h.fd, h.buf + h.got, 4 - h.got, h.fds, &h.nfds);
		if (n == -1 && errno != EAGAIN && errno != EINTR) {
			warn("recvmsg");
			break;
		}
		if (n == 0) {
			warnx("the server closed a connection");
			break;
		}
		if (n > 0)
			h.got += (size_t)n;
	}
	close_fds(h.fds, h.nfds);
	if (h.got == 4)
		return h.fd;
	close(h.fd);
	return -1;
}

/* The VM floor: the same 3 + 2 * nreg messages for each byte read. */
static void
vm_serve(int s, int nreg)
{
	int64_t		 v;
	uint64_t	 le;
	int		*fds, i;
	char		 c;

	if ((fds = calloc(1 + 2 * nreg, sizeof(int))) == NULL)
		err(1, NULL);
	make_fds(fds, 1 + 2 * nreg);
	while (read_full(s, &c, 1) == 0) {
		for (i = 0; i < 3 + 2 * nreg; i++) {
			v = i == 0 ? 0 : i == 1 ? 1 : i == 2 ? -1 :
			    i < 3 + nreg ? 0 : 1;
			le = htole64((uint64_t)v);
			if (send_fds(s, &le, sizeof(le), i < 2 ? NULL :
			    &fds[i - 2], i < 2 ? 0 : 1) == -1)
				_exit(0);
		}
	}
	_exit(0);
}

static int64_t
vm_pair_once(int s, int nreg)
{
	int64_t		 t0, val;
	long long	 deadline;
	int		 i, fd;

	t0 = now_ns();
	deadline = now_ms() + STEP_MS;
	if (write(s, "h", 1) != 1) {
		warn("floor: write");
		return -1;
	}
	for (i = 0; i < 3 + 2 * nreg; i++) {
		if (vm_recv(s, &val, &fd, deadline) == -1)
			return -1;
		if (fd != -1)
			close(fd);
	}
	return now_ns() - t0;
}

static int
cmd_vm(struct opts *o)
{
	struct sockaddr_un	 qsun, csun;
	int64_t			*sv, *fv, t;
	char			 fig[128], val[128], flo[128], rat[64];
	pid_t			 pid;
	int			 sv2[2], i, refused, nref = 0, all, sync;

	if (o->nregions < 1 || o->nregions > VM_MAXREG)
		errx(2, "-N %d: 1 to %d regions", o->nregions, VM_MAXREG);
	set_sun(&qsun, o->qsock);
	set_sun(&csun, o->sock);
	all = o->runs * o->count;
	if ((sv = calloc(all, sizeof(*sv))) == NULL ||
	    (fv = calloc(all, sizeof(*fv))) == NULL)
		err(1, NULL);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv2) == -1)
		err(1, "socketpair");
	if ((pid = fork()) == -1)
		err(1, "fork");
	if (pid == 0) {
		child_init();
		close(sv2[0]);
		vm_serve(sv2[1], o->nregions);
	}
	close(sv2[1]);
	for (i = 0; i < all + WARMUP / 10; ) {
		if ((sync = vm_sync(&csun)) == -1)
			goto fail;
		t = vm_once(&qsun, o->nregions, &refused);
		close(sync);
		if (t == -1)
			goto fail;
		if (refused) {
			/* Not a measurement: the sync should prevent it. */
			if (++nref > 100) {
				warnx("the server keeps refusing the VM");
				goto fail;
			}
			continue;
		}
		if (i >= WARMUP / 10)
			sv[i - WARMUP / 10] = t;
		if ((t = vm_pair_once(sv2[0], o->nregions)) == -1)
			goto fail;
		if (i >= WARMUP / 10)
			fv[i - WARMUP / 10] = t;
		i++;
	}
	close(sv2[0]);
	waitpid(pid, NULL, 0);
	qsort(sv, all, sizeof(*sv), cmp64);
	qsort(fv, all, sizeof(*fv), cmp64);
	snprintf(fig, sizeof(fig), "4. VM attach p50 / p99, %d region%s",
	    o->nregions, o->nregions > 1 ? "s" : "");
	fmt_lat(val, sizeof(val), sv, all);
	fmt_lat(flo, sizeof(flo), fv, all);
	snprintf(rat, sizeof(rat), "%.2fx",
	    (double)pct(sv, all, .5) / pct(fv, all, .5));
	row(fig, val, flo, rat, "-", "-");
	if (nref > 0)
		note("4: %d regions: %d attaches refused as a second VM and "
		    "repeated", o->nregions, nref);
	free(sv);
	free(fv);
	return 0;
 fail:
	close(sv2[0]);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return -1;
}

/*
 * Figure 5: start a server and time it from exec until it listens and
 * until it serves, then take its memory with one handshake done.
 */
/*
 * mem[] gets VmRSS, Pss and RssAnon of the parent and the serving
 * child together, in KiB.
 */
static int
start_once(char *const argv[], const char *sock, const char *log,
    int64_t *tlisten, int64_t *tserve, long *mem, int *nfds)
{
	struct sockaddr_un		 sun;
	posix_spawn_file_actions_t	 fa;
	struct hs			 h;
	int64_t				 t0;
	long long			 deadline;
	pid_t				 pid, child = -1;
	int				 rv = -1, status, i;
	long				 v;

	set_sun(&sun, sock);
	if (posix_spawn_file_actions_init(&fa) != 0 ||
	    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY,
	    0) != 0 ||
	    posix_spawn_file_actions_addopen(&fa, 2, log,
	    O_WRONLY | O_APPEND | O_CREAT, 0600) != 0)
		errx(1, "posix_spawn_file_actions");
	/* The server inherits the CPU it is spawned from. */
	pin(floorcpu);
	t0 = now_ns();
	deadline = now_ms() + START_MS;
	if ((errno = posix_spawn(&pid, argv[0], &fa, NULL, argv,
	    environ)) != 0)
		err(1, "%s", argv[0]);
	spawned = pid;
	pin(clientcpu);
	posix_spawn_file_actions_destroy(&fa);

	/* A socket that is not there yet, or not listening yet. */
	for (;;) {
		if ((rv = hs_start(&h, &sun)) == 0)
			break;
		if (rv == -1 && errno != ENOENT && errno != ECONNREFUSED) {
			warn("connect %s", sock);
			goto stop;
		}
		if (ms_left(deadline) == 0 ||
		    waitpid(pid, &status, WNOHANG) == pid) {
			warnx("%s did not start; see %s", argv[0], log);
			spawned = pid = -1;
			rv = -1;
			goto stop;
		}
		sleep_ns(20000);
	}
	*tlisten = now_ns() - t0;
	rv = -1;
	while (h.state == HS_VERSION && (i = hs_step(&h)) == 0)
		if (wait_in(h.fd, deadline) == -1)
			break;
	if (h.state != HS_REPLY) {
		hs_end(&h);
		goto stop;
	}
	*tserve = now_ns() - t0;
	while ((i = hs_step(&h)) == 0)
		if (wait_in(h.fd, h.deadline) == -1)
			break;
	hs_end(&h);
	if (i != 1 || (child = proc_child(pid, NULL)) == -1)
		goto stop;
	if ((v = proc_kb(pid, "status", "VmRSS")) == -1 ||
	    (mem[0] = proc_kb(child, "status", "VmRSS")) == -1)
		goto stop;
	mem[0] += v;
	mem[1] = proc_kb(pid, "smaps_rollup", "Pss") +
	    proc_kb(child, "smaps_rollup", "Pss");
	mem[2] = proc_kb(pid, "status", "RssAnon") +
	    proc_kb(child, "status", "RssAnon");
	*nfds = count_fds(pid) + count_fds(child);
	rv = 0;
 stop:
	if (pid == -1)
		return -1;
	kill(pid, SIGTERM);
	for (i = 0; i < 5000; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid) {
			spawned = -1;
			return rv;
		}
		sleep_ms(1);
	}
	warnx("pid %ld did not stop on SIGTERM: SIGKILL", (long)pid);
	if (child != -1)
		kill(child, SIGKILL);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	spawned = -1;
	return -1;
}

static int
cmd_start(struct opts *o)
{
	char		 qpath[PATH_MAX], cpath[PATH_MAX], fpath[PATH_MAX];
	char		 log[PATH_MAX], fig[128], val[128], flo[128];
	char		 rat[64];
	char		*sargv[10], *fargv[4];
	int64_t		*sl, *ss, *fl, *fs;
	long		*sm[3], *fm[3], mem[3];
	int		 r, k, nfd = 0, ffd = 0;

	snprintf(qpath, sizeof(qpath), "%s/q", o->dir);
	snprintf(cpath, sizeof(cpath), "%s/c", o->dir);
	snprintf(fpath, sizeof(fpath), "%s/floor", o->dir);
	snprintf(log, sizeof(log), "%s/log", o->dir);
	sargv[0] = (char *)(uintptr_t)o->server;
	sargv[1] = "-d";
	sargv[2] = "-q";
	sargv[3] = qpath;
	sargv[4] = "-s";
	sargv[5] = cpath;
	sargv[6] = "-f";
	sargv[7] = (char *)(uintptr_t)o->layout;
	sargv[8] = NULL;
	fargv[0] = (char *)(uintptr_t)self_exe;
	fargv[1] = "floorsrv";
	fargv[2] = fpath;
	fargv[3] = NULL;
	if ((sl = calloc(o->runs, sizeof(*sl))) == NULL ||
	    (ss = calloc(o->runs, sizeof(*ss))) == NULL ||
	    (fl = calloc(o->runs, sizeof(*fl))) == NULL ||
	    (fs = calloc(o->runs, sizeof(*fs))) == NULL)
		err(1, NULL);
	for (k = 0; k < 3; k++)
		if ((sm[k] = calloc(o->runs, sizeof(long))) == NULL ||
		    (fm[k] = calloc(o->runs, sizeof(long))) == NULL)
			err(1, NULL);
	for (r = 0; r < o->runs; r++) {
		if (start_once(sargv, cpath, log, &sl[r], &ss[r], mem,
		    &nfd) == -1)
			return -1;
		for (k = 0; k < 3; k++)
			sm[k][r] = mem[k];
		if (start_once(fargv, fpath, log, &fl[r], &fs[r], mem,
		    &ffd) == -1)
			return -1;
		for (k = 0; k < 3; k++)
			fm[k][r] = mem[k];
	}
	qsort(sl, o->runs, sizeof(*sl), cmp64);
	qsort(ss, o->runs, sizeof(*ss), cmp64);
	qsort(fl, o->runs, sizeof(*fl), cmp64);
	qsort(fs, o->runs, sizeof(*fs), cmp64);

	snprintf(fig, sizeof(fig), "5. exec to listening p50 / p99, %s",
	    o->label);
	fmt_lat(val, sizeof(val), sl, o->runs);
	fmt_lat(flo, sizeof(flo), fl, o->runs);
	snprintf(rat, sizeof(rat), "%.2fx",
	    (double)pct(sl, o->runs, .5) / pct(fl, o->runs, .5));
	row(fig, val, flo, rat, o->target ? "p50 < 10 ms" : "-",
	    o->target ? pct(sl, o->runs, .5) < TARGET_START ? "yes" : "NO" :
	    "-");
	fmt_lat(val, sizeof(val), ss, o->runs);
	fmt_lat(flo, sizeof(flo), fs, o->runs);
	note("5: %s: exec to the first version received (serving) p50 / "
	    "p99 %s, floor %s", o->label, val, flo);

	/* Memory: the median run; all runs are alike to a few pages. */
	for (k = 0; k < 3; k++) {
		qsort(sm[k], o->runs, sizeof(long), cmp64l);
		qsort(fm[k], o->runs, sizeof(long), cmp64l);
	}
	r = o->runs / 2;
	snprintf(fig, sizeof(fig), "5. RSS parent + child, %s", o->label);
	snprintf(val, sizeof(val), "%ld KiB", sm[0][r]);
	snprintf(flo, sizeof(flo), "%ld KiB", fm[0][r]);
	snprintf(rat, sizeof(rat), "%.2fx", (double)sm[0][r] / fm[0][r]);
	row(fig, val, flo, rat, o->target ? "< 2048 KiB" : "-",
	    o->target ? sm[0][r] < TARGET_RSS ? "yes" : "NO" : "-");
	note("5: %s: parent + child: PSS %ld KiB (floor %ld), RssAnon %ld "
	    "KiB (floor %ld), fds %d (floor %d)", o->label, sm[1][r],
	    fm[1][r], sm[2][r], fm[2][r], nfd, ffd);
	free(sl);
	free(ss);
	free(fl);
	free(fs);
	for (k = 0; k < 3; k++) {
		free(sm[k]);
		free(fm[k]);
	}
	return 0;
}

/*
 * The floor of peer mode: a server with no logic that sends a peer the
 * same messages as ivserver, each with one blocking sendmsg, in the
 * same order: the version, its ID, the shm, every other peer's
 * eventfds, its own (eventfds made at its join); each other peer then
 * gets its eventfds, and its ID when it leaves.  No queue, no budget,
 * no check: what a sender must do at the least.
 */
#define PF_PEERS	1024

struct pfpeer {
	int	 s;
	long	 id;
	int	*fds;
};

static void
pf_send(int s, int64_t val, int fd)
{
	uint64_t	 le = htole64((uint64_t)val);

	/* A peer that has gone is seen at its EOF; nothing else to do. */
	(void)send_fds(s, &le, sizeof(le), &fd, fd == -1 ? 0 : 1);
}

static void
pf_join(struct pfpeer *pp, int np, int shm, int nvec)
{
	struct pfpeer	*p = &pp[np];
	int		 i, v;

	pf_send(p->s, IVSHM_CLIENT_VERSION, -1);
	pf_send(p->s, p->id, -1);
	pf_send(p->s, -1, shm);
	for (i = 0; i < np; i++)
		for (v = 0; v < nvec; v++)
			pf_send(p->s, pp[i].id, pp[i].fds[v]);
	for (v = 0; v < nvec; v++)
		pf_send(p->s, p->id, p->fds[v]);
	for (i = 0; i < np; i++)
		for (v = 0; v < nvec; v++)
			pf_send(pp[i].s, p->id, p->fds[v]);
}

static int
cmd_peerfloor(int argc, char *argv[])
{
	struct pfpeer	 pp[PF_PEERS];
	struct pollfd	 pfd[PF_PEERS + 1];
	long		 nextid = 0, gone;
	char		 buf[64];
	int		 lfd, shm, nvec, np = 0, i, v, s;

	if (argc != 3)
		usage();
	nvec = getnum(argv[2], 1, 1024, "vectors");
	alarm(0);		/* it serves as long as the benchmark runs */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	lfd = floor_listen(argv[1]);
	if ((shm = memfd_create("ivbench", MFD_CLOEXEC)) == -1 ||
	    ftruncate(shm, 4 << 20) == -1)
		err(1, "memfd");
	for (;;) {
		pfd[0].fd = lfd;
		pfd[0].events = np < PF_PEERS ? POLLIN : 0;
		for (i = 0; i < np; i++) {
			pfd[1 + i].fd = pp[i].s;
			pfd[1 + i].events = POLLIN;
		}
		if (poll(pfd, 1 + np, -1) == -1) {
			if (errno == EINTR)
				continue;
			err(1, "peerfloor: poll");
		}
		for (i = np - 1; i >= 0; i--) {
			if (pfd[1 + i].revents == 0 ||
			    read(pp[i].s, buf, sizeof(buf)) > 0)
				continue;
			gone = pp[i].id;
			close(pp[i].s);
			for (v = 0; v < nvec; v++)
				close(pp[i].fds[v]);
			free(pp[i].fds);
			pp[i] = pp[--np];
			for (s = 0; s < np; s++)
				pf_send(pp[s].s, gone, -1);
		}
		if (!(pfd[0].revents & POLLIN) ||
		    (s = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) == -1)
			continue;
		pp[np].s = s;
		pp[np].id = nextid++ & 0xffff;
		if ((pp[np].fds = calloc(nvec, sizeof(int))) == NULL)
			err(1, NULL);
		for (v = 0; v < nvec; v++)
			if ((pp[np].fds[v] = eventfd(0, EFD_CLOEXEC)) == -1)
				err(1, "peerfloor: eventfd");
		pf_join(pp, np, shm, nvec);
		np++;
	}
}

/*
 * The start-up floor, run as its own program: listen, fork a serving
 * child as the server does, wait for SIGTERM, clean up.
 */
static int
cmd_floorsrv(int argc, char *argv[])
{
	sigset_t	 set;
	pid_t		 pid;
	int		 s, sig;

	if (argc != 2)
		usage();
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	/* Stop, and stop the child, if whoever started us is gone. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	s = floor_listen(argv[1]);
	if ((pid = fork()) == -1)
		err(1, "fork");
	if (pid == 0) {
		sigprocmask(SIG_UNBLOCK, &set, NULL);
		child_init();
		floor_serve(s, 0);
	}
	close(s);
	while (sigwait(&set, &sig) != 0)
		;
	/* SIGTERM, which lets callgrind write the child's profile. */
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	unlink(argv[1]);
	return 0;
}

int
main(int argc, char *argv[])
{
	static char	 exe[PATH_MAX];
	struct opts	 o;
	struct rlimit	 rl;
	const char	*cmd;
	ssize_t		 n;
	size_t		 len;
	uint16_t	 len16;
	int		 ch, rv;

	if (argc < 2)
		usage();
	cmd = argv[1];
	signal(SIGPIPE, SIG_IGN);
	alarm(ALARM_S);
	if ((n = readlink("/proc/self/exe", exe, sizeof(exe) - 1)) == -1)
		err(1, "/proc/self/exe");
	exe[n] = '\0';
	self_exe = exe;
	if (strcmp(cmd, "floorsrv") == 0)
		return cmd_floorsrv(argc - 1, argv + 1);
	if (strcmp(cmd, "peerfloor") == 0)
		return cmd_peerfloor(argc - 1, argv + 1);
	signal(SIGALRM, on_fatal);
	signal(SIGTERM, on_fatal);
	signal(SIGINT, on_fatal);
	signal(SIGHUP, on_fatal);

	/* A thousand clients need a thousand fds. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	memset(&o, 0, sizeof(o));
	o.count = 1000;
	o.runs = 3;
	o.dur = 1000;
	o.conc = "1,8,64,512";
	o.label = "";
	argc--;
	argv++;
	while ((ch = getopt(argc, argv, "C:c:D:d:F:f:l:N:n:p:q:R:r:S:s:Tx:"))
	    != -1) {
		switch (ch) {
		case 'C':
			clientcpu = getnum(optarg, 0, CPU_SETSIZE - 1, "-C");
			break;
		case 'S':
			floorcpu = getnum(optarg, 0, CPU_SETSIZE - 1, "-S");
			break;
		case 'c':
			o.conc = optarg;
			break;
		case 'D':
			o.dir = optarg;
			break;
		case 'd':
			o.dur = getnum(optarg, 10, 60000, "-d");
			break;
		case 'F':
			o.floor = optarg;
			break;
		case 'f':
			o.layout = optarg;
			break;
		case 'l':
			o.label = optarg;
			break;
		case 'N':
			o.nregions = getnum(optarg, 1, VM_MAXREG, "-N");
			break;
		case 'n':
			o.count = getnum(optarg, 0, 1000000, "-n");
			break;
		case 'p':
			o.pid = getnum(optarg, 1, INT_MAX, "-p");
			break;
		case 'q':
			o.qsock = optarg;
			break;
		case 'R':
			region = optarg;
			break;
		case 'r':
			o.runs = getnum(optarg, 1, 1000, "-r");
			break;
		case 's':
			o.sock = optarg;
			break;
		case 'T':
			o.target = 1;
			break;
		case 'x':
			o.server = optarg;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();

	pin(clientcpu);
	len = strlen(region);
	if (len == 0 || len >= IVSHM_NAME_SIZE)
		errx(2, "-R %s: 1 to %d bytes", region, IVSHM_NAME_SIZE - 1);
	len16 = htole16((uint16_t)len);
	memcpy(req, &len16, sizeof(len16));
	memcpy(req + 2, region, len);
	reqlen = 2 + len;

	if (strcmp(cmd, "hs") == 0 && o.sock && o.floor && o.count > 0)
		rv = cmd_hs(&o);
	else if (strcmp(cmd, "hsonly") == 0 && o.sock)
		rv = cmd_hsonly(&o);
	else if (strcmp(cmd, "tput") == 0 && o.sock && o.floor)
		rv = cmd_tput(&o);
	else if (strcmp(cmd, "burst") == 0 && o.sock && o.floor &&
	    o.count > 0)
		rv = cmd_burst(&o);
	else if (strcmp(cmd, "vm") == 0 && o.qsock && o.sock &&
	    o.nregions > 0 && o.count > 0)
		rv = cmd_vm(&o);
	else if (strcmp(cmd, "start") == 0 && o.server && o.dir &&
	    o.layout)
		rv = cmd_start(&o);
	else
		usage();
	floor_stop();
	return rv == 0 ? 0 : 1;
}
