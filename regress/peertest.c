/*
 * peertest: check an ivshmem server's peer mode with real QEMUs, each an
 * ivshmem-doorbell peer of the others, and with the C peer.
 *
 *	peertest -S socket [-C peer] [-c cycles] [-l size] [-n vectors]
 *	    [-p serverpid] [-Q qemu]
 *
 * The server must be fresh: the checks expect IDs from 0 up.  As in
 * vmtest, QEMU runs with -S and the qtest line protocol, and this
 * program plays every guest: it programs the PCI device, reads
 * IVPosition, rings doorbells and reads the MSI-X pending bits, which
 * show which VM an event reached.  The C peer (-C, "peer" next to this
 * program) joins as a watcher and joins and leaves cycles (10000)
 * times.  -l checks the window size, -n (1) gives the vectors per peer
 * and -p the server, whose fds must come back to their count.
 *
 * Every peer learns of a join or a leave when it gets to the server's
 * message, and a VM drops a doorbell to a peer it has not heard of: so
 * after every change the test waits until each peer holds the eventfds
 * of all, which it can see in /proc, before anything rings.
 *
 * Each check prints "ok - ..." or "not ok - ..."; details go to stderr.
 * Every wait is for an event and has a deadline, every QEMU and peer
 * is killed when it overstays, and a watchdog ends the whole test.
 */

#include <sys/types.h>
#include <sys/wait.h>

#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib.h"
#include "qtest.h"

/*
 * How long a negative check waits for a stray event to show before it
 * looks: only a ring that must reach nobody waits so, as no pause can
 * make such a check fail wrongly.  Whatever must come is waited for.
 */
#define QUIET_MS	50
#define SETTLE_TIMEOUT	60000		/* ms: the peers to take all notices */
#define FD_TIMEOUT	30000		/* ms: fds closed after a leave */
#define PEER_TIMEOUT	120000		/* ms: any one peer run */
#define QEMU_LIFETIME	280000		/* ms: any one QEMU */
#define WATCHDOG	300		/* s: the whole test */
#define NQEMU		5

/* A C peer run: its stdin and stdout on pipes, stderr to a file. */
struct child {
	pid_t		 pid;		/* -1 once reaped */
	int		 status;
	int		 in;		/* its stdin, or -1 */
	int		 out;		/* its stdout */
	char		 buf[8192];	/* of out, not yet taken */
	size_t		 len;
	int		 eof;
	char		 errpath[PATH_MAX];
	off_t		 errshown;
};

static void	 usage(void);
static void	 settle(struct qvm **, int, int, const char *);
static void	 vm_raw(struct qvm *);
static void	 vm_share(struct qvm **, int);
static int	 doorbell(struct qvm *, long, unsigned int);
static int	 others_quiet(struct qvm **, int, struct qvm *);
static int	 ring_vm(struct qvm **, int, struct qvm *, struct qvm *,
		    unsigned int);
static void	 ring_all(struct qvm **, int, const char *);
static void	 ring_gone(struct qvm **, int, long, const char *);
static int	 server_fds(void);
static int	 wait_fds(pid_t, int, int);
static int	 child_start(struct child *, const char *, int, char **);
static int	 child_line(struct child *, char *, size_t, long long);
static int	 child_finish(struct child *, int);
static void	 child_kill(struct child *);
static void	 peer_argv(char **, int *);
static int	 peer_run(const char *, char *, size_t, ...);
static int	 watcher_start(const char *);
static int	 watcher_cmd(const char *, const char *, int);
static int	 watcher_expect(const char *, int);
static int	 watcher_quiet(void);
static void	 ring_watcher(struct qvm **, int, const char *);
static void	 peers_run(struct qvm **, int);

static struct qvm_conf		 conf = {
	"qemu-system-x86_64", NULL, NULL, 1, 0, QEMU_LIFETIME
};
static char			 peerbin[PATH_MAX];
static unsigned int		 nvectors = 1;
static long			 cycles = 10000;
static pid_t			 serverpid = -1;
static pid_t			 serverchild = -1;
static char			 tmpdir[256];	/* holds a socket: short */
static struct qvm		 qemus[NQEMU];
static struct child		 watcher = { -1, 0, -1, -1, "", 0, 0, "", 0 };
static struct child		 runner = { -1, 0, -1, -1, "", 0, 0, "", 0 };
static long			 watcherid = -1;

static void
usage(void)
{
	fprintf(stderr, "usage: %s -S socket [-C peer] [-c cycles] [-l size] "
	    "[-n vectors]\n\t[-p serverpid] [-Q qemu]\n", getprogname());
	exit(1);
}

/*
 * Wait until the VMs, and the watcher with withwatcher, each hold the
 * eventfds of them all: they have taken every join and leave message
 * the server sent them, and know each other.  A VM drops a doorbell to
 * a peer it has not heard of yet, so no ring may come before this.
 */
static void
settle(struct qvm **vms, int nvms, int withwatcher, const char *when)
{
	pid_t	pids[NQEMU + 1];
	char	who[128], num[32];
	int	i, n = 0;

	who[0] = '\0';
	for (i = 0; i < nvms; i++) {
		pids[n++] = vms[i]->pid;
		snprintf(num, sizeof(num), "%sqemu %d", i == 0 ? "" :
		    i < nvms - 1 || withwatcher ? ", " : " and ", vms[i]->n);
		strlcat(who, num, sizeof(who));
	}
	if (withwatcher) {
		pids[n++] = watcher.pid;
		strlcat(who, " and the C peer", sizeof(who));
	}
	check(wait_shared(pids, n, n * nvectors, SETTLE_TIMEOUT) == 0,
	    "%s%s each hold the %u eventfds of the %d peers", when, who,
	    n * nvectors, n);
}

/* Without -f the window is bare: nothing but zeroes at first. */
static void
vm_raw(struct qvm *q)
{
	const char	*hex;
	size_t		 i;
	int		 ok;

	hex = qt_cmd(q, "read 0x%jx 0x1000", (uintmax_t)q->bar[2]);
	ok = hex != NULL && strncmp(hex, "0x", 2) == 0 &&
	    strlen(hex) == 2 + 2 * 0x1000;
	for (i = 2; ok && hex[i] != '\0'; i++)
		ok = hex[i] == '0';
	qvm_check(ok, q, "qemu %d: the window is raw, its first page all zero",
	    q->n);
}

/* What one VM writes the others read, and the other way round. */
static void
vm_share(struct qvm **vms, int nvms)
{
	uint64_t	tag, got, off;
	int		i, j, ok;

	for (i = 0; i < nvms; i++) {
		off = 0x1000 + 8 * i;
		tag = 0x5045455200000000ULL | (uint64_t)vms[i]->n << 8 |
		    (uint64_t)i;
		ok = qt_cmd(vms[i], "writeq 0x%jx 0x%jx",
		    (uintmax_t)(vms[i]->bar[2] + off), (uintmax_t)tag) != NULL;
		for (j = 0; ok && j < nvms; j++) {
			if (j == i)
				continue;
			if (qt_num(vms[j], &got, "readq 0x%jx",
			    (uintmax_t)(vms[j]->bar[2] + off)) == -1)
				ok = 0;
			else if (got != tag) {
				warnx("qemu %d reads 0x%jx where qemu %d "
				    "wrote 0x%jx", vms[j]->n, (uintmax_t)got,
				    vms[i]->n, (uintmax_t)tag);
				ok = 0;
			}
		}
		qvm_check(ok, vms[i], "qemu %d: what it writes to the window "
		    "the other VMs read", vms[i]->n);
	}
}

static int
doorbell(struct qvm *src, long dest, unsigned int vec)
{
	return (qt_cmd(src, "writel 0x%jx 0x%lx",
	    (uintmax_t)(src->bar[0] + DOORBELL), (unsigned long)dest << 16 |
	    vec) == NULL ? -1 : 0);
}

/* No VM but the one named (NULL: none) has anything pending. */
static int
others_quiet(struct qvm **vms, int nvms, struct qvm *except)
{
	int	i, ok = 1;

	for (i = 0; i < nvms; i++)
		if (vms[i] != except && pba_expect(vms[i], -1) == -1)
			ok = 0;
	return (ok);
}

/*
 * src rings dst's vector: it goes pending in dst, then in no VM but
 * dst, not even in src.
 */
static int
ring_vm(struct qvm **vms, int nvms, struct qvm *src, struct qvm *dst,
    unsigned int vec)
{
	if (!others_quiet(vms, nvms, NULL)) {
		warnx("vectors pending before the test");
		return (-1);
	}
	if (doorbell(src, dst->id, vec) == -1)
		return (-1);
	if (pba_expect(dst, vec) == -1)
		return (-1);
	sleep_ms(QUIET_MS);
	if (!others_quiet(vms, nvms, dst))
		return (-1);
	return (msix_deliver(dst, vec));
}

static void
ring_all(struct qvm **vms, int nvms, const char *when)
{
	unsigned int	v;
	int		i, j;

	for (i = 0; i < nvms; i++)
		for (j = 0; j < nvms; j++)
			for (v = 0; j != i && v < nvectors; v++)
				qvm_check(ring_vm(vms, nvms, vms[i], vms[j],
				    v) == 0, vms[j], "%sqemu %d (ID %ld) rings "
				    "qemu %d (ID %ld) on vector %u: pending "
				    "there only", when, vms[i]->n, vms[i]->id,
				    vms[j]->n, vms[j]->id, v);
}

/* Ringing a peer that left must reach nobody. */
static void
ring_gone(struct qvm **vms, int nvms, long gone, const char *when)
{
	unsigned int	v;
	int		i, ok;

	for (i = 0; i < nvms; i++) {
		ok = 1;
		for (v = 0; ok && v < nvectors; v++)
			if (doorbell(vms[i], gone, v) == -1)
				ok = 0;
		/* Nothing is to come: no event to wait for but a stray. */
		if (ok) {
			sleep_ms(4 * QUIET_MS);
			ok = others_quiet(vms, nvms, NULL);
		}
		qvm_check(ok, vms[i], "%sqemu %d rings the gone ID %ld on "
		    "every vector: nothing pending anywhere", when, vms[i]->n,
		    gone);
	}
}

/* The parent's and the serving child's fds, -1 if either is gone. */
static int
server_fds(void)
{
	int	n, m = 0;

	if ((n = count_fds(serverpid)) == -1)
		return (-1);
	if (serverchild != -1 && (m = count_fds(serverchild)) == -1)
		return (-1);
	return (n + m);
}

/* Wait until pid, or the server, has want fds; the count seen last. */
static int
wait_fds(pid_t pid, int want, int ms)
{
	long long	deadline;
	int		n;

	deadline = now_ms() + ms;
	for (;;) {
		n = pid == serverpid ? server_fds() : count_fds(pid);
		if (n == want || ms_left(deadline) == 0)
			return (n);
		sleep_ms(10);
	}
}

/* Run the C peer: its input a pipe with usepipe, else /dev/null. */
static int
child_start(struct child *c, const char *name, int usepipe, char **argv)
{
	int	errfd, inp[2] = { -1, -1 }, outp[2];

	c->pid = -1;
	c->len = 0;
	c->eof = 0;
	c->in = -1;
	c->errshown = 0;
	snprintf(c->errpath, sizeof(c->errpath), "%s/%s.err", tmpdir, name);
	path_add(c->errpath);
	if ((errfd = open(c->errpath, O_WRONLY | O_CREAT | O_TRUNC |
	    O_CLOEXEC, 0600)) == -1) {
		warn("%s", c->errpath);
		return (-1);
	}
	/* Close-on-exec, or the peer would hold its own input open. */
	if (pipe2(outp, O_CLOEXEC) == -1 ||
	    (usepipe && pipe2(inp, O_CLOEXEC) == -1))
		err(1, "pipe");
	if (!usepipe &&
	    (inp[0] = open("/dev/null", O_RDONLY | O_CLOEXEC)) == -1)
		err(1, "/dev/null");
	c->pid = spawn(argv, inp[0], outp[1], errfd);
	close(errfd);
	close(inp[0]);
	close(outp[1]);
	c->out = outp[0];
	c->in = inp[1];
	if (c->pid == -1) {
		child_kill(c);
		return (-1);
	}
	return (0);
}

/*
 * The next line of its output: 1, or 0 if none came by the deadline,
 * -1 at the end.
 */
static int
child_line(struct child *c, char *line, size_t size, long long deadline)
{
	char		*nl;
	ssize_t		 n;
	size_t		 len;

	while ((nl = memchr(c->buf, '\n', c->len)) == NULL) {
		if (c->eof || c->len == sizeof(c->buf))
			return (-1);
		if (fd_wait(c->out, POLLIN, deadline) != 1)
			return (0);
		n = read(c->out, c->buf + c->len, sizeof(c->buf) - c->len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			c->eof = 1;
		else
			c->len += n;
	}
	*nl = '\0';
	len = nl - c->buf;
	strlcpy(line, c->buf, size);
	c->len -= len + 1;
	memmove(c->buf, nl + 1, c->len);
	return (1);
}

/* Wait for its exit: its status, or -1 when it had to be killed. */
static int
child_finish(struct child *c, int ms)
{
	if (!reap(&c->pid, &c->status, ms)) {
		warnx("%s: still runs after %d ms, killing it", c->errpath,
		    ms);
		child_kill(c);
		return (-1);
	}
	child_kill(c);
	if (WIFEXITED(c->status))
		return (WEXITSTATUS(c->status));
	return (-1);
}

/* Kill it if it runs, and close its pipes. */
static void
child_kill(struct child *c)
{
	if (c->pid > 0) {
		kill(c->pid, SIGKILL);
		if (!reap(&c->pid, &c->status, IO_TIMEOUT))
			warnx("%s: survives SIGKILL", c->errpath);
	}
	if (c->in != -1)
		close(c->in);
	if (c->out != -1)
		close(c->out);
	c->in = c->out = -1;
}

/* The C peer on the server's socket, with the vectors of the VMs. */
static void
peer_argv(char **argv, int *argc)
{
	char	nbuf[16];

	snprintf(nbuf, sizeof(nbuf), "%u", nvectors);
	argv_add(argv, argc, peerbin);
	argv_add(argv, argc, "-s");
	argv_add(argv, argc, conf.sock);
	argv_add(argv, argc, "-n");
	argv_add(argv, argc, nbuf);
}

/*
 * Run the C peer with the arguments given, NULL-terminated, and return
 * its exit status with all it printed in out, lines joined by "; ".
 */
static int
peer_run(const char *name, char *out, size_t outsize, ...)
{
	char		 line[256];
	char		*argv[ARGV_MAX];
	const char	*a;
	va_list		 ap;
	long long	 deadline;
	int		 argc = 0, r, rv;

	peer_argv(argv, &argc);
	va_start(ap, outsize);
	while ((a = va_arg(ap, const char *)) != NULL)
		argv_add(argv, &argc, a);
	va_end(ap);
	out[0] = '\0';
	r = child_start(&runner, name, 0, argv);
	argv_free(argv, argc);
	if (r == -1)
		return (-1);
	deadline = now_ms() + PEER_TIMEOUT;
	while ((r = child_line(&runner, line, sizeof(line), deadline)) == 1) {
		if (out[0] != '\0')
			strlcat(out, "; ", outsize);
		strlcat(out, line, outsize);
	}
	if (r == 0)
		warnx("peer %s: no output in %d ms", name, PEER_TIMEOUT);
	rv = child_finish(&runner, r == 0 ? 0 : IO_TIMEOUT);
	if (rv != 0)
		showfile(runner.errpath, &runner.errshown, name);
	unlink(runner.errpath);
	return (rv);
}

/* A C peer that stays, rings on request and reports its interrupts. */
static int
watcher_start(const char *want)
{
	char	 line[256], ms[32];
	char	*argv[ARGV_MAX];
	int	 argc = 0, r, ok;

	snprintf(ms, sizeof(ms), "%d", WATCHDOG * 1000);
	peer_argv(argv, &argc);
	argv_add(argv, &argc, "-w");
	argv_add(argv, &argc, ms);
	r = child_start(&watcher, "watcher", 1, argv);
	argv_free(argv, argc);
	if (r == -1)
		return (-1);
	r = child_line(&watcher, line, sizeof(line), now_ms() + IO_TIMEOUT);
	ok = r == 1 && strcmp(line, want) == 0;
	check(ok, "the C peer joins as a watcher: \"%s\" (got \"%s\")", want,
	    r == 1 ? line : r == 0 ? "nothing in time" : "its end");
	if (r == 1)
		sscanf(line, "id %ld", &watcherid);
	if (!ok)
		showfile(watcher.errpath, &watcher.errshown, "watcher");
	return (r == 1 ? 0 : -1);
}

/* Give the watcher a command; its next line must be want. */
static int
watcher_cmd(const char *cmd, const char *want, int ms)
{
	size_t	len;

	len = strlen(cmd);
	if (watcher.in == -1 || write(watcher.in, cmd, len) != (ssize_t)len) {
		warn("watcher: \"%.*s\"", (int)len - 1, cmd);
		return (-1);
	}
	return (watcher_expect(want, ms));
}

/* The watcher's next line must be want. */
static int
watcher_expect(const char *want, int ms)
{
	char	line[256];
	int	r;

	if (watcher.pid == -1)
		return (-1);
	r = child_line(&watcher, line, sizeof(line), now_ms() + ms);
	if (r == 1 && strcmp(line, want) == 0)
		return (0);
	warnx("watcher: expected \"%s\", got \"%s\"", want, r == 1 ? line :
	    r == 0 ? "nothing in time" : "its end");
	showfile(watcher.errpath, &watcher.errshown, "watcher");
	return (-1);
}

/* Nothing more from the watcher after a pause for a stray line. */
static int
watcher_quiet(void)
{
	char	line[256];

	if (child_line(&watcher, line, sizeof(line), now_ms() + QUIET_MS) ==
	    0)
		return (0);
	warnx("watcher: unexpected \"%s\"", line);
	return (-1);
}

/*
 * Every VM rings the watcher on each vector, which must see exactly
 * that interrupt; the watcher rings every VM on each vector through
 * the fds the server gave it, which must go pending there only.  All
 * must know each other already: see settle().
 */
static void
ring_watcher(struct qvm **vms, int nvms, const char *when)
{
	char		cmd[64], want[64];
	unsigned int	v;
	int		i, ok;

	for (i = 0; i < nvms; i++) {
		ok = 1;
		for (v = 0; ok && v < nvectors; v++) {
			snprintf(want, sizeof(want), "irq %u", v);
			ok = doorbell(vms[i], watcherid, v) == 0 &&
			    watcher_expect(want, EVENT_TIMEOUT) == 0 &&
			    watcher_quiet() == 0 &&
			    others_quiet(vms, nvms, NULL);
		}
		qvm_check(ok, vms[i], "%sqemu %d rings the C peer (ID %ld) on "
		    "every vector: it gets each, VMs nothing", when, vms[i]->n,
		    watcherid);
	}
	for (i = 0; i < nvms; i++) {
		ok = 1;
		for (v = 0; ok && v < nvectors; v++) {
			snprintf(cmd, sizeof(cmd), "ring %ld %u\n", vms[i]->id,
			    v);
			snprintf(want, sizeof(want), "rang %ld %u", vms[i]->id,
			    v);
			ok = watcher_cmd(cmd, want, IO_TIMEOUT) == 0 &&
			    pba_expect(vms[i], v) == 0;
			if (ok) {
				sleep_ms(QUIET_MS);
				ok = others_quiet(vms, nvms, vms[i]) &&
				    watcher_quiet() == 0 &&
				    msix_deliver(vms[i], v) == 0;
			}
		}
		qvm_check(ok, vms[i], "%sthe C peer rings qemu %d (ID %ld) on "
		    "every vector: pending there only", when, vms[i]->n,
		    vms[i]->id);
	}
}

/*
 * C peers come and go while the VMs stay: the watcher follows every
 * join and leave, the server and the VMs end with the fds they had.
 * A C peer that prints its line has left for the server's part too:
 * the next one's handshake cannot name it.
 */
static void
peers_run(struct qvm **vms, int nvms)
{
	char		 out[512], want[512], count[32], now[128], cmd[64];
	char		 num[16];
	long long	 t0;
	long		 first;
	int		 base, i, n, qbase[NQEMU], rv;

	base = serverpid != -1 ? server_fds() : -1;
	for (i = 0; i < nvms; i++)
		qbase[i] = count_fds(vms[i]->pid);
	fprintf(stderr, "baseline: server %d fds, VMs", base);
	for (i = 0; i < nvms; i++)
		fprintf(stderr, " %d", qbase[i]);
	fprintf(stderr, "\n");

	/* The IDs go on from the highest VM's. */
	first = vms[nvms - 1]->id + 1;
	snprintf(want, sizeof(want), "id %ld peers %d", first, nvms);
	if (watcher_start(want) == -1)
		return;
	settle(vms, nvms, 1, "");
	ring_watcher(vms, nvms, "");

	snprintf(want, sizeof(want), "id %ld peers %d", first + 1, nvms + 1);
	rv = peer_run("peer-once", out, sizeof(out), (char *)NULL);
	check(rv == 0 && strcmp(out, want) == 0, "a C peer joins and leaves: "
	    "\"%s\" (got \"%s\", exit %d)", want, out, rv);

	snprintf(want, sizeof(want), "id %ld peers %d; dropped", first + 2,
	    nvms + 1);
	rv = peer_run("peer-byte", out, sizeof(out), "-b", (char *)NULL);
	check(rv == 0 && strcmp(out, want) == 0, "a C peer that sends a byte "
	    "is dropped: \"%s\" (got \"%s\", exit %d)", want, out, rv);

	snprintf(count, sizeof(count), "%ld", cycles);
	snprintf(want, sizeof(want), "cycles %ld first %ld last %ld wraps 0 "
	    "peers %d", cycles, first + 3, first + 2 + cycles, nvms + 1);
	t0 = now_ms();
	rv = peer_run("peer-cycles", out, sizeof(out), "-c", count,
	    (char *)NULL);
	fprintf(stderr, "%ld joins and leaves in %lld ms\n", cycles,
	    now_ms() - t0);
	check(rv == 0 && strcmp(out, want) == 0, "a C peer joins and leaves "
	    "%ld times, each time with the next ID: \"%s\" (got \"%s\", "
	    "exit %d)", cycles, want, out, rv);
	if (serverpid != -1)
		check(kill(serverpid, 0) == 0 && (serverchild == -1 ||
		    kill(serverchild, 0) == 0), "the server still runs");
	for (i = 0; i < nvms; i++)
		qvm_check(qvm_exited(vms[i]) == 0, vms[i], "qemu %d still runs",
		    vms[i]->n);

	/* The server sends the last leaves after the peers are gone. */
	snprintf(cmd, sizeof(cmd), "wait leaves %ld\n", cycles + 2);
	snprintf(want, sizeof(want), "leaves %ld", cycles + 2);
	check(watcher_cmd(cmd, want, SETTLE_TIMEOUT) == 0, "the watcher is "
	    "told of all %ld leaves", cycles + 2);
	settle(vms, nvms, 1, "afterwards: ");
	ring_watcher(vms, nvms, "afterwards: ");

	/* Its input ends: it says what it saw and leaves. */
	now[0] = '\0';
	for (i = 0; i < nvms; i++) {
		snprintf(num, sizeof(num), "%s%ld", i > 0 ? "," : "",
		    vms[i]->id);
		strlcat(now, num, sizeof(now));
	}
	snprintf(want, sizeof(want), "joins %ld leaves %ld now %s",
	    cycles + 2, cycles + 2, now);
	if (watcher.in != -1) {
		close(watcher.in);
		watcher.in = -1;
	}
	if (watcher.pid != -1) {
		if (child_line(&watcher, out, sizeof(out), now_ms() +
		    IO_TIMEOUT) != 1)
			strlcpy(out, "nothing", sizeof(out));
		rv = child_finish(&watcher, IO_TIMEOUT);
		check(rv == 0 && strcmp(out, want) == 0, "the watcher saw "
		    "every join and leave: \"%s\" (got \"%s\", exit %d)", want,
		    out, rv);
		if (rv != 0)
			showfile(watcher.errpath, &watcher.errshown,
			    "watcher");
	}

	if (base != -1) {
		n = wait_fds(serverpid, base, FD_TIMEOUT);
		check(n == base, "the server's fds are back to %d (%d)", base,
		    n);
	}
	for (i = 0; i < nvms; i++) {
		n = wait_fds(vms[i]->pid, qbase[i], FD_TIMEOUT);
		qvm_check(n == qbase[i], vms[i], "qemu %d: its fds are back to "
		    "%d, every leave was told (%d)", vms[i]->n, qbase[i], n);
	}
}

int
main(int argc, char *argv[])
{
	struct qvm	*vms[NQEMU];
	const char	*slash;
	int		 ch, i, n, f1, f3, ok;

	while ((ch = getopt(argc, argv, "C:c:l:n:p:Q:S:")) != -1) {
		switch (ch) {
		case 'C':
			if (strlcpy(peerbin, optarg, sizeof(peerbin)) >=
			    sizeof(peerbin))
				errx(1, "%s: path too long", optarg);
			break;
		case 'c':
			cycles = getnum(optarg, 1, 60000, "cycles");
			break;
		case 'l':
			conf.winsize = getnum(optarg, 4096, LLONG_MAX, "size");
			break;
		case 'n':
			nvectors = getnum(optarg, 1, MAXVEC, "vectors");
			break;
		case 'p':
			serverpid = getnum(optarg, 1, INT_MAX, "pid");
			break;
		case 'Q':
			conf.bin = optarg;
			break;
		case 'S':
			conf.sock = optarg;
			break;
		default:
			usage();
		}
	}
	if (conf.sock == NULL || optind != argc)
		usage();
	/* By default the peer program lies next to this one. */
	if (peerbin[0] == '\0') {
		slash = strrchr(argv[0], '/');
		snprintf(peerbin, sizeof(peerbin), "%.*speer",
		    slash != NULL ? (int)(slash - argv[0] + 1) : 2,
		    slash != NULL ? argv[0] : "./");
	}

	test_init("peertest", WATCHDOG);
	make_tmpdir(tmpdir, sizeof(tmpdir), "peertest");
	conf.dir = tmpdir;
	conf.vectors = nvectors;
	if (serverpid != -1) {
		serverchild = proc_child(serverpid, "qemu");
		fprintf(stderr, "server %ld, serving child %ld\n",
		    (long)serverpid, (long)serverchild);
		if (server_fds() == -1) {
			check(0, "the server's fds can be counted in "
			    "/proc/%ld/fd", (long)serverpid);
			serverpid = -1;
		}
	}

	/* Three VMs, one after the other: IDs 0, 1 and 2. */
	for (i = 0; i < 3; i++) {
		if (qvm_up(&qemus[i], i + 1, &conf, i) == -1)
			return (1);
		vms[i] = &qemus[i];
	}
	check(qemus[0].id != qemus[1].id && qemus[0].id != qemus[2].id &&
	    qemus[1].id != qemus[2].id, "the three VMs have distinct "
	    "IVPositions");
	settle(vms, 3, 0, "");
	vm_raw(&qemus[0]);
	vm_share(vms, 3);
	ring_all(vms, 3, "");

	/*
	 * VM 2 dies without a word.  The others are told: QEMU closes
	 * the eventfds of a peer that left, N of them.
	 */
	f1 = count_fds(qemus[0].pid);
	f3 = count_fds(qemus[2].pid);
	qvm_kill(&qemus[1]);
	qvm_check(qemus[1].pid == -1 && WIFSIGNALED(qemus[1].status) &&
	    WTERMSIG(qemus[1].status) == SIGKILL, &qemus[1], "qemu 2 (ID %ld) "
	    "killed", qemus[1].id);
	n = wait_fds(qemus[0].pid, f1 - nvectors, FD_TIMEOUT);
	ok = n == f1 - (int)nvectors;
	if (!ok)
		warnx("qemu 1: %d fds, then %d", f1, n);
	n = wait_fds(qemus[2].pid, f3 - nvectors, FD_TIMEOUT);
	if (n != f3 - (int)nvectors) {
		warnx("qemu 3: %d fds, then %d", f3, n);
		ok = 0;
	}
	check(ok, "qemu 1 and qemu 3 are told: each closes the %u eventfds "
	    "of ID %ld", nvectors, qemus[1].id);
	vms[0] = &qemus[0];
	vms[1] = &qemus[2];
	ring_gone(vms, 2, qemus[1].id, "");

	if (qvm_up(&qemus[3], 4, &conf, 3) == -1)
		return (1);
	vms[2] = &qemus[3];
	settle(vms, 3, 0, "with qemu 4: ");
	ring_gone(vms, 3, qemus[1].id, "with qemu 4: ");
	ring_all(vms, 3, "with qemu 4: ");

	peers_run(vms, 3);
	ring_all(vms, 3, "after the C peers: ");

	/* A VM that comes now gets the ID after the C peers'. */
	if (qvm_up(&qemus[4], 5, &conf, qemus[3].id + 3 + cycles + 1) == -1)
		return (1);
	vms[3] = &qemus[4];
	settle(vms, 4, 0, "with qemu 5: ");
	ring_all(vms, 4, "with qemu 5: ");
	return (check_failures() ? 1 : 0);
}
