/*
 * restarttest: the serving process of an ivserver killed with SIGKILL
 * again and again, at random moments, while a real QEMU is attached
 * (driven through qtest, as vmtest does), a host client that got its
 * fds before the first kill rings the guest and is rung, and new
 * clients keep coming.
 *
 * Checked: a new serving process follows every kill; QEMU never loses
 * its connection (the set of sockets it holds, of which the chardev's
 * closes on an end of file, stays the same, and IVPosition stays 1);
 * every doorbell both ways arrives, each awaited before the next so
 * that none can merge with another; every client request is served in
 * the end, a retry allowed where a kill cut it; and once the last new
 * serving process is idle, it, the parent and QEMU hold as many fds as
 * before the first kill.  The time from each kill to the next client served is
 * printed, median and worst.
 *
 *	restarttest [-b] [-n kills] [-Q qemu] -p pid -q qemu-socket
 *	    -s client-socket region ...
 *
 * pid is the ivserver parent's.  With -b there is no QEMU, nothing but
 * clients, and the one output is a row of "make bench".
 */

#include <sys/types.h>
#include <sys/socket.h>

#include <endian.h>
#include <err.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ivclient.h"
#include "lib.h"
#include "qtest.h"

#define KILLS		100
#define KILL_AFTER	300	/* ms after a start: past 250 ms, */
#define KILL_SPREAD	400	/* a quick end for the server */
#define SERVE_TIMEOUT	30000	/* ms: served, retries and all */
#define SETTLE_TIMEOUT	20000	/* ms: fd counts back to baseline */
#define QEMU_LIFETIME	900000
#define WATCHDOG	900
#define MAXSOCK		64

static void	 usage(void);
static long long now_us(void);
static pid_t	 serving(pid_t);
static int	 client_conns(void);
static int	 idle_fds(pid_t);
static int	 sockets(pid_t, unsigned long *, int);
static int	 same_sockets(pid_t);
static int	 client_once(int, int);
static int	 client_served(long long *);
static void	 regions_free(void);
static void	 in_flight(struct ivshm_conn *);
static int	 ring_g2h(int);
static int	 ring_h2g(int);
static void	 activity(long long);
static int	 kill_one(int, long long *);
static int	 cmpll(const void *, const void *);
static int	 client_setup(int, char **);

static struct qvm_conf		 conf = {
	"qemu-system-x86_64", NULL, NULL, 0, 0, QEMU_LIFETIME
};
static struct qvm		 vm;
static int			 bench;
static pid_t			 parent;
static pid_t			 child;	/* the serving process */
static const char		*clientsock;
static struct ivclient_region	*regions;
static int			 nregions;
static char			 tmpdir[256];
static unsigned long		 socks[MAXSOCK]; /* QEMU's, at first */
static int			 nsocks;
/* What happened, over the whole run. */
static unsigned long		 g2h_rung, g2h_seen, h2g_rung, h2g_seen;
static unsigned long		 asked, served, retried, vmbad;

static void
usage(void)
{
	fprintf(stderr, "usage: %s [-b] [-n kills] [-Q qemu] -p pid "
	    "-q qemu-socket -s client-socket region ...\n", getprogname());
	exit(1);
}

static long long
now_us(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The serving process: the one child of the parent that is not QEMU. */
static pid_t
serving(pid_t not)
{
	long long	 deadline = now_ms() + SERVE_TIMEOUT;
	pid_t		 pid;

	for (;;) {
		pid = proc_child(parent, "qemu");
		if (pid != -1 && pid != not)
			return (pid);
		if (ms_left(deadline) == 0)
			return (-1);
		sleep_ms(1);
	}
}

/* Connections on the client socket, taken or in its queue. */
static int
client_conns(void)
{
	FILE		*f;
	char		 line[PATH_MAX + 128], path[PATH_MAX];
	unsigned long	 flags;
	int		 n = 0;

	if ((f = fopen("/proc/net/unix", "r")) == NULL)
		return (-1);
	while (fgets(line, sizeof(line), f) != NULL) {
		path[0] = '\0';
		if (sscanf(line, "%*s %*s %*s %lx %*s %*s %*s %4095s", &flags,
		    path) == 2 && strcmp(path, clientsock) == 0 &&
		    flags != 0x10000)
			n++;
	}
	fclose(f);
	return (n);
}

/* The fds of pid once no client connection is left. */
static int
idle_fds(pid_t pid)
{
	long long	 deadline = now_ms() + SETTLE_TIMEOUT;

	while (client_conns() != 0 && ms_left(deadline) > 0)
		sleep_ms(5);
	return (count_fds(pid));
}

/* The inodes of pid's sockets, from /proc. */
static int
sockets(pid_t pid, unsigned long *ino, int max)
{
	char	 dir[64], path[PATH_MAX], link[128];
	ssize_t	 len;
	int	 fd, n = 0;

	snprintf(dir, sizeof(dir), "/proc/%ld/fd", (long)pid);
	for (fd = 0; fd < 1024 && n < max; fd++) {
		snprintf(path, sizeof(path), "%s/%d", dir, fd);
		if ((len = readlink(path, link, sizeof(link) - 1)) == -1)
			continue;
		link[len] = '\0';
		if (sscanf(link, "socket:[%lu]", &ino[n]) == 1)
			n++;
	}
	return (n);
}

/*
 * QEMU's chardev socket closes when it reads an end of file: the same
 * sockets as at first mean it never did.
 */
static int
same_sockets(pid_t pid)
{
	unsigned long	 now[MAXSOCK];
	int		 i, n;

	if ((n = sockets(pid, now, MAXSOCK)) != nsocks)
		return (0);
	for (i = 0; i < n; i++)
		if (now[i] != socks[i])
			return (0);
	return (1);
}

/*
 * A new client asks for region r; 1 if served, 0 if it failed.  Only
 * a kill may cut one short, so the caller retries.
 */
static int
client_once(int r, int timeout)
{
	struct ivclient_region	 got;
	struct ivshm_conn	*c;
	int			 rv;

	if ((c = ivclient_connect(clientsock, timeout)) == NULL)
		return (0);
	rv = ivclient_request(c, regions[r].name, &got, timeout);
	ivshm_close(c);
	if (rv != 1)
		return (0);
	rv = got.begin == regions[r].begin && got.end == regions[r].end;
	if (!rv)
		warnx("%s: a new client got 0x%jx-0x%jx", regions[r].name,
		    (uintmax_t)got.begin, (uintmax_t)got.end);
	ivclient_release(&got);
	return (rv);
}

/* One request, retried until served: 0, and when in *at; or -1. */
static int
client_served(long long *at)
{
	long long	 deadline = now_ms() + SERVE_TIMEOUT;
	int		 r = (int)(random() % nregions);

	asked++;
	for (;;) {
		if (client_once(r, ms_left(deadline)) == 1) {
			served++;
			*at = now_us();
			return (0);
		}
		if (ms_left(deadline) == 0) {
			warnx("a client request not served in %d ms",
			    SERVE_TIMEOUT);
			return (-1);
		}
		retried++;
		sleep_ms(1);
	}
}

/*
 * The request sent just before the kill: answered by the process that
 * died, or cut, and then asked again.
 */
static void
in_flight(struct ivshm_conn *c)
{
	int		 s = ivshm_fd(c);
	uint64_t	 rep[2];
	long long	 at;
	ssize_t		 n;
	int		 fds[RECV_MAXFDS], nfds = 0;

	asked++;
	n = readable(s, IO_TIMEOUT) ? recv_fds(s, rep, sizeof(rep), fds,
	    &nfds) : -1;
	close_fds(fds, nfds < RECV_MAXFDS ? nfds : RECV_MAXFDS);
	ivshm_close(c);
	if (n == (ssize_t)sizeof(rep) && nfds == 3 &&
	    le64toh(rep[0]) == regions[0].begin) {
		served++;
		return;
	}
	retried++;
	asked--;		/* client_served counts it again */
	(void)client_served(&at);
}

/* The guest rings region r: its g2h eventfd counts exactly 1. */
static int
ring_g2h(int r)
{
	uint64_t	 v;

	g2h_rung++;
	if (qt_cmd(&vm, "writel 0x%jx 0x%x", (uintmax_t)(vm.bar[0] +
	    DOORBELL), 0 << 16 | regions[r].vector) == NULL)
		return (-1);
	if (!readable(regions[r].g2h, EVENT_TIMEOUT) ||
	    read(regions[r].g2h, &v, sizeof(v)) != sizeof(v) || v != 1) {
		warnx("%s: a doorbell of the guest did not count 1",
		    regions[r].name);
		return (-1);
	}
	g2h_seen++;
	return (0);
}

/* The client rings region r: its vector, only, pending, then taken. */
static int
ring_h2g(int r)
{
	uint64_t	 one = 1;

	h2g_rung++;
	if (write(regions[r].h2g, &one, sizeof(one)) != sizeof(one) ||
	    pba_expect(&vm, regions[r].vector) == -1 ||
	    msix_deliver(&vm, regions[r].vector) == -1) {
		warnx("%s: a doorbell of the host did not reach the guest",
		    regions[r].name);
		return (-1);
	}
	h2g_seen++;
	return (0);
}

/* Until the deadline: doorbells both ways and new clients, in turn. */
static void
activity(long long deadline)
{
	long long	 at;
	int		 r;

	while (ms_left(deadline) > 0) {
		r = (int)(random() % nregions);
		if (!bench) {
			(void)ring_g2h(r);
			(void)ring_h2g(r);
		}
		(void)client_served(&at);
	}
}

/*
 * Kill the serving process at a random moment, often with a request
 * in flight, and wait for the next client to be served: the time in
 * *us, microseconds.  Then QEMU must hold what it held.
 */
static int
kill_one(int i, long long *us)
{
	unsigned char	 req[2 + IVSHM_NAME_SIZE];
	uint16_t	 len16;
	long long	 t0, at;
	size_t		 len;
	struct ivshm_conn *c = NULL;
	uint64_t	 pos;

	activity(now_ms() + KILL_AFTER + random() % KILL_SPREAD);
	/* Half the time, a request the server may be in the middle of. */
	if (random() % 2 &&
	    (c = ivclient_connect(clientsock, IO_TIMEOUT)) != NULL) {
		len = strlen(regions[0].name);
		len16 = htole16(len);
		memcpy(req, &len16, 2);
		memcpy(req + 2, regions[0].name, len);
		if (write(ivshm_fd(c), req, 2 + len) != (ssize_t)(2 + len))
			warn("a request in flight");
	}
	if (kill(child, SIGKILL) == -1) {
		warn("kill %ld", (long)child);
		return (-1);
	}
	t0 = now_us();
	if (client_served(&at) == -1)
		return (-1);
	*us = at - t0;
	if (c != NULL)
		in_flight(c);
	if ((child = serving(child)) == -1) {
		warnx("kill %d: no new serving process", i);
		return (-1);
	}
	if (bench)
		return (0);
	if (vm.pid == -1 || qvm_exited(&vm) || !same_sockets(vm.pid) ||
	    qt_num(&vm, &pos, "readl 0x%jx", (uintmax_t)(vm.bar[0] +
	    IVPOSITION)) == -1 || pos != 1) {
		warnx("kill %d: QEMU lost its connection or its position", i);
		vmbad++;
	}
	return (0);
}

static int
cmpll(const void *a, const void *b)
{
	long long	 x = *(const long long *)a, y = *(const long long *)b;

	return (x < y ? -1 : x > y);
}

/* The long-lived client's regions, which libivshm allocated. */
static void
regions_free(void)
{
	int	i;

	for (i = 0; i < nregions; i++)
		ivclient_release(&regions[i]);
	free(regions);
}

/* The long-lived client: every region on one connection, kept. */
static int
client_setup(int argc, char *argv[])
{
	struct ivshm_conn	*c;
	int			 i;

	if ((regions = calloc(argc, sizeof(*regions))) == NULL)
		err(1, NULL);
	if ((c = ivclient_connect(clientsock, IO_TIMEOUT)) == NULL)
		return (-1);
	for (i = 0; i < argc; i++) {
		if (ivclient_request(c, argv[i], &regions[i], IO_TIMEOUT) !=
		    1 || ivclient_check(&regions[i]) == -1) {
			warnx("region %s", argv[i]);
			ivshm_close(c);
			return (-1);
		}
		nregions = i + 1;
	}
	ivshm_close(c);
	conf.vectors = regions[0].nregions;
	conf.winsize = regions[0].size;
	return (0);
}

int
main(int argc, char *argv[])
{
	long long	*lat;
	const char	*errstr;
	pid_t		 pids[2];
	int		 ch, i, kills = KILLS, sfds = 0, qfds = 0, pfds = 0;
	int		 n, ok;

	while ((ch = getopt(argc, argv, "bn:p:Q:q:s:")) != -1) {
		switch (ch) {
		case 'b':
			bench = 1;
			break;
		case 'n':
			kills = strtonum(optarg, 1, 10000, &errstr);
			if (errstr != NULL)
				errx(1, "-n %s: %s", optarg, errstr);
			break;
		case 'p':
			parent = strtonum(optarg, 1, INT_MAX, &errstr);
			if (errstr != NULL)
				errx(1, "-p %s: %s", optarg, errstr);
			break;
		case 'Q':
			conf.bin = optarg;
			break;
		case 'q':
			conf.sock = optarg;
			break;
		case 's':
			clientsock = optarg;
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (parent == 0 || clientsock == NULL || argc == 0 ||
	    (!bench && conf.sock == NULL))
		usage();
	test_init("restarttest", WATCHDOG);
	srandom((unsigned int)getpid());
	make_tmpdir(tmpdir, sizeof(tmpdir), "restarttest");
	conf.dir = tmpdir;
	if ((lat = calloc(kills, sizeof(*lat))) == NULL)
		err(1, NULL);

	ok = (child = serving(0)) != -1 && client_setup(argc, argv) == 0;
	if (bench && !ok)
		errx(1, "no server to measure");
	if (!bench && !check(ok, "a client gets every region, its fds kept "
	    "for the whole test"))
		return (1);
	if (!bench) {
		if (qvm_up(&vm, 1, &conf, 1) == -1)
			return (1);
		pids[0] = vm.pid;
		pids[1] = getpid();
		if (!check(wait_shared(pids, 2, 2 * nregions, EVENT_TIMEOUT) ==
		    0, "QEMU holds the eventfds of the %d regions", nregions))
			return (1);
		nsocks = sockets(vm.pid, socks, MAXSOCK);
		qfds = count_fds(vm.pid);
		sfds = idle_fds(child);
		pfds = count_fds(parent);
	}

	for (n = 0, i = 0; i < kills; i++)
		if (kill_one(i + 1, &lat[n]) == 0)
			n++;
	qsort(lat, n, sizeof(*lat), cmpll);

	if (bench) {
		if (n == 0)
			errx(1, "no kill was followed by a client served");
		printf("row\t9. serving process killed, to the next client "
		    "served, p50 / worst of %d\t%.1f / %.1f ms\t-\t-\t-\t-\n",
		    n, lat[n / 2] / 1000.0, lat[n - 1] / 1000.0);
		free(lat);
		regions_free();
		return (n == kills ? 0 : 1);
	}
	check(n == kills, "%d kills of the serving process, each followed by "
	    "a new one that serves (%d did)", kills, n);
	if (n > 0)
		printf("# kill to the next client served, over %d kills: "
		    "median %.1f ms, worst %.1f ms\n", n, lat[n / 2] / 1000.0,
		    lat[n - 1] / 1000.0);
	check(vmbad == 0 && !qvm_exited(&vm), "QEMU never loses its "
	    "connection: the same %d sockets and IVPosition 1 after every "
	    "kill (%lu times not)", nsocks, vmbad);
	check(g2h_rung > 0 && g2h_seen == g2h_rung, "every doorbell of the "
	    "guest reaches the client: %lu of %lu", g2h_seen, g2h_rung);
	check(h2g_rung > 0 && h2g_seen == h2g_rung, "every doorbell of the "
	    "client reaches the guest: %lu of %lu", h2g_seen, h2g_rung);
	check(asked > 0 && served == asked, "every client request is served "
	    "in the end: %lu of %lu, after %lu retries", served, asked,
	    retried);
	ok = (n = idle_fds(child)) == sfds;
	check(ok, "the last serving process holds as many fds as the first "
	    "(%d, %d)", n, sfds);
	ok = (n = count_fds(parent)) == pfds;
	check(ok, "the parent holds as many fds as before the first kill "
	    "(%d, %d)", n, pfds);
	ok = (n = count_fds(vm.pid)) == qfds;
	check(ok, "QEMU holds as many fds as before the first kill (%d, %d)",
	    n, qfds);
	check(ring_g2h(0) == 0 && ring_h2g(0) == 0, "after the last kill, "
	    "the first region still rings both ways");
	qvm_kill(&vm);
	free(lat);
	regions_free();
	return (check_failures() ? 1 : 0);
}
