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
 * Each check prints "ok - ..." or "not ok - ..."; details go to stderr.
 * Every wait has a deadline, every QEMU and peer is killed when it
 * overstays, and a watchdog ends the whole test.
 */

#include <sys/types.h>
#include <sys/stat.h>
#include <sys/wait.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include <dirent.h>
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qtest.h"

#define SETTLE		50		/* ms: for an event that must not come */
#define FD_TIMEOUT	10000		/* ms: fds closed after a leave */
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
static void	 check(int, struct qemu *, const char *, ...)
		    __attribute__((__format__(__printf__, 3, 4)));
static void	 kill_all(void);
static void	 on_alarm(int);
static void	 on_signal(int);
static void	 cleanup(void);
static int	 pci_setup(struct qemu *);
static int	 msix_setup(struct qemu *);
static int	 vm_start(struct qemu *, int, long);
static void	 vm_raw(struct qemu *);
static void	 vm_share(struct qemu **, int);
static int	 doorbell(struct qemu *, long, unsigned int);
static int	 others_quiet(struct qemu **, int, struct qemu *);
static int	 ring_vm(struct qemu **, int, struct qemu *, struct qemu *,
		    unsigned int);
static void	 ring_all(struct qemu **, int, const char *);
static void	 ring_gone(struct qemu **, int, long, const char *);
static int	 count_fds(pid_t);
static pid_t	 find_server_child(void);
static int	 server_fds(void);
static int	 wait_fds(pid_t, int, int);
static int	 wait_server_fds(int, int);
static int	 child_start(struct child *, const char *, int, char **);
static int	 child_line(struct child *, char *, size_t, int);
static int	 child_finish(struct child *, int);
static void	 child_kill(struct child *);
static int	 peer_run(const char *, char *, size_t, ...);
static int	 watcher_start(const char *);
static int	 watcher_expect(const char *, int);
static int	 watcher_quiet(void);
static void	 ring_watcher(struct qemu **, int, const char *);
static void	 peers_run(struct qemu **, int);

static struct qemu_conf		 conf = {
	"qemu-system-x86_64", NULL, NULL, 1, QEMU_LIFETIME, NULL
};
static char			 peerbin[PATH_MAX];
static unsigned int		 nvectors = 1;
static long long		 winsize = -1;
static long			 cycles = 10000;
static pid_t			 serverpid = -1;
static pid_t			 serverchild = -1;
static char			 tmpdir[256];	/* holds a socket: short */
static struct qemu		 qemus[NQEMU];
static volatile sig_atomic_t	 nqemus;	/* started, for the handlers */
static struct child		 watcher = { -1, 0, -1, -1, "", 0, 0, "", 0 };
static struct child		 runner = { -1, 0, -1, -1, "", 0, 0, "", 0 };
static long			 watcherid = -1;
static int			 failed;

static void
usage(void)
{
	fprintf(stderr, "usage: %s -S socket [-C peer] [-c cycles] [-l size] "
	    "[-n vectors]\n\t[-p serverpid] [-Q qemu]\n", getprogname());
	exit(1);
}

static void
check(int ok, struct qemu *q, const char *fmt, ...)
{
	va_list	ap;

	printf("%s - ", ok ? "ok" : "not ok");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (!ok) {
		failed++;
		if (q != NULL)
			qemu_showerr(q);
	}
}

/* From a signal handler, with async-signal-safe calls only. */
static void
kill_all(void)
{
	int	i;

	for (i = 0; i < nqemus; i++) {
		if (qemus[i].pid > 0)
			kill(qemus[i].pid, SIGKILL);
		unlink(qemus[i].errpath);
	}
	if (watcher.pid > 0)
		kill(watcher.pid, SIGKILL);
	if (runner.pid > 0)
		kill(runner.pid, SIGKILL);
	unlink(watcher.errpath);
	unlink(runner.errpath);
	rmdir(tmpdir);
}

static void
on_alarm(int sig)
{
	static const char	msg[] = "not ok - peertest ends within the "
				    "watchdog time\n";

	(void)sig;
	kill_all();
	write(STDOUT_FILENO, msg, sizeof(msg) - 1);
	_exit(1);
}

static void
on_signal(int sig)
{
	(void)sig;
	kill_all();
	_exit(1);
}

static void
cleanup(void)
{
	int	i;

	for (i = 0; i < nqemus; i++)
		qemu_remove(&qemus[i], tmpdir);
	child_kill(&watcher);
	child_kill(&runner);
	unlink(watcher.errpath);
	unlink(runner.errpath);
	if (tmpdir[0] != '\0')
		rmdir(tmpdir);
}

/*
 * Program the device as firmware would: BARs, memory decoding and bus
 * mastering (MSI-X messages are bus master writes), then MSI-X.
 */
static int
pci_setup(struct qemu *q)
{
	uint64_t	size[3];
	uint32_t	id;
	int		is64[3], ok;

	if (cfg_read(q, 0, &id) == -1) {
		check(0, q, "qemu %d: PCI 00:%02x.0 is 1af4:1110 (no answer)",
		    q->n, PCI_SLOT);
		return (-1);
	}
	if (id != PCI_ID) {
		check(0, q, "qemu %d: PCI 00:%02x.0 is 1af4:1110 (found "
		    "%04x:%04x)", q->n, PCI_SLOT, id & 0xffff, id >> 16);
		return (-1);
	}
	if (bar_probe_all(q, size, is64) == -1)
		return (-1);
	if (winsize != -1) {
		ok = is64[2] && size[2] == (uint64_t)winsize;
		check(ok, q, "qemu %d: BAR2 is a 64-bit BAR of %lld bytes (%ju)",
		    q->n, winsize, (uintmax_t)size[2]);
		if (!ok)
			return (-1);
	}
	if (!is64[2] || size[0] > BAR1_ADDR - BAR0_ADDR ||
	    size[1] > BAR1_ADDR - BAR0_ADDR) {
		check(0, q, "qemu %d: BARs of a known shape", q->n);
		return (-1);
	}

	if (bar_map(q, size[2]) == -1)
		return (-1);
	return (msix_setup(q));
}

/* Enable MSI-X, with every entry masked. */
static int
msix_setup(struct qemu *q)
{
	uint32_t	ctl, tab, pba;
	int		cap, on;

	if (msix_find(q, &cap, &ctl, &tab, &pba) == -1)
		return (-1);
	if (cap == 0) {
		check(0, q, "qemu %d: has an MSI-X capability", q->n);
		return (-1);
	}
	if (q->nvec != nvectors || (tab & 7) > 2 || (pba & 7) > 2) {
		check(0, q, "qemu %d: %u MSI-X vectors (has %u) with the "
		    "table and PBA in a known BAR", q->n, nvectors, q->nvec);
		return (-1);
	}
	if (msix_enable(q, cap, ctl, tab, pba, &on) == -1)
		return (-1);
	if (!on) {
		check(0, q, "qemu %d: MSI-X enabled", q->n);
		return (-1);
	}
	return (0);
}

/* Start VM n, set its device up and check its IVPosition. */
static int
vm_start(struct qemu *q, int n, long want)
{
	uint64_t	pos;
	int		nfailed, ok;

	ok = qemu_start(q, n, 1, &conf) == 0;
	check(ok, q, "qemu %d starts and connects to qtest", n);
	if (!ok)
		return (-1);
	/* Setup fails quietly only on qtest errors: say so then. */
	nfailed = failed;
	if (pci_setup(q) == -1) {
		if (failed == nfailed)
			check(0, q, "qemu %d: the PCI device is set up", n);
		return (-1);
	}
	if (qt_num(q, &pos, "readl 0x%jx", (uintmax_t)(q->bar[0] +
	    IVPOSITION)) == -1)
		return (-1);
	q->id = (long)pos;
	check(q->id == want, q, "qemu %d: IVPosition is %ld (read %ld)", n,
	    want, q->id);
	return (0);
}

/* Without -f the window is bare: nothing but zeroes at first. */
static void
vm_raw(struct qemu *q)
{
	const char	*hex;
	size_t		 i;
	int		 ok;

	hex = qt_cmd(q, "read 0x%jx 0x1000", (uintmax_t)q->bar[2]);
	ok = hex != NULL && strncmp(hex, "0x", 2) == 0 &&
	    strlen(hex) == 2 + 2 * 0x1000;
	for (i = 2; ok && hex[i] != '\0'; i++)
		ok = hex[i] == '0';
	check(ok, q, "qemu %d: the window is raw, its first page all zero",
	    q->n);
}

/* What one VM writes the others read, and the other way round. */
static void
vm_share(struct qemu **vms, int nvms)
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
		check(ok, vms[i], "qemu %d: what it writes to the window the "
		    "other VMs read", vms[i]->n);
	}
}

static int
doorbell(struct qemu *src, long dest, unsigned int vec)
{
	return (qt_cmd(src, "writel 0x%jx 0x%lx",
	    (uintmax_t)(src->bar[0] + DOORBELL), (unsigned long)dest << 16 |
	    vec) == NULL ? -1 : 0);
}

/* No VM but the one named (NULL: none) has anything pending. */
static int
others_quiet(struct qemu **vms, int nvms, struct qemu *except)
{
	int	i, ok = 1;

	for (i = 0; i < nvms; i++)
		if (vms[i] != except && pba_expect(vms[i], -1) == -1)
			ok = 0;
	return (ok);
}

/*
 * src rings dst's vector: it goes pending in dst, then in no VM but
 * dst, not even in src.  The pause lets a stray event show.
 */
static int
ring_vm(struct qemu **vms, int nvms, struct qemu *src, struct qemu *dst,
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
	sleep_ms(SETTLE);
	if (!others_quiet(vms, nvms, dst))
		return (-1);
	return (msix_deliver(dst, vec));
}

static void
ring_all(struct qemu **vms, int nvms, const char *when)
{
	unsigned int	v;
	int		i, j;

	for (i = 0; i < nvms; i++)
		for (j = 0; j < nvms; j++)
			for (v = 0; j != i && v < nvectors; v++)
				check(ring_vm(vms, nvms, vms[i], vms[j], v) ==
				    0, vms[j], "%sqemu %d (ID %ld) rings qemu "
				    "%d (ID %ld) on vector %u: pending there "
				    "only", when, vms[i]->n, vms[i]->id,
				    vms[j]->n, vms[j]->id, v);
}

/* Ringing a peer that left must reach nobody. */
static void
ring_gone(struct qemu **vms, int nvms, long gone, const char *when)
{
	unsigned int	v;
	int		i, ok;

	for (i = 0; i < nvms; i++) {
		ok = 1;
		for (v = 0; ok && v < nvectors; v++)
			if (doorbell(vms[i], gone, v) == -1)
				ok = 0;
		if (ok) {
			sleep_ms(4 * SETTLE);
			ok = others_quiet(vms, nvms, NULL);
		}
		check(ok, vms[i], "%sqemu %d rings the gone ID %ld on every "
		    "vector: nothing pending anywhere", when, vms[i]->n, gone);
	}
}

static int
count_fds(pid_t pid)
{
	char		 path[64];
	DIR		*d;
	struct dirent	*e;
	int		 n = 0;

	snprintf(path, sizeof(path), "/proc/%ld/fd", (long)pid);
	if ((d = opendir(path)) == NULL)
		return (-1);
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return (n);
}

/* The serving process: the child of the server that is not QEMU. */
static pid_t
find_server_child(void)
{
	char		 path[32 + NAME_MAX], buf[512], *p;
	DIR		*d;
	struct dirent	*e;
	FILE		*f;
	pid_t		 found = -1;
	long		 ppid;

	if ((d = opendir("/proc")) == NULL)
		return (-1);
	while (found == -1 && (e = readdir(d)) != NULL) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		if ((f = fopen(path, "r")) == NULL)
			continue;
		p = fgets(buf, sizeof(buf), f);
		fclose(f);
		/* pid (comm) state ppid: comm may hold anything. */
		if (p == NULL || (p = strrchr(buf, ')')) == NULL ||
		    sscanf(p + 1, " %*c %ld", &ppid) != 1 ||
		    ppid != (long)serverpid)
			continue;
		if (strncmp(strchr(buf, '(') + 1, "qemu", 4) != 0)
			found = (pid_t)strtol(e->d_name, NULL, 10);
	}
	closedir(d);
	return (found);
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

/* Wait until pid has want fds; the count seen last. */
static int
wait_fds(pid_t pid, int want, int ms)
{
	long long	deadline;
	int		n;

	deadline = now_ms() + ms;
	while ((n = count_fds(pid)) != want && now_ms() < deadline)
		sleep_ms(10);
	return (n);
}

static int
wait_server_fds(int want, int ms)
{
	long long	deadline;
	int		n;

	deadline = now_ms() + ms;
	while ((n = server_fds()) != want && now_ms() < deadline)
		sleep_ms(10);
	return (n);
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
	if ((errfd = open(c->errpath, O_WRONLY | O_CREAT | O_TRUNC |
	    O_CLOEXEC, 0600)) == -1) {
		warn("%s", c->errpath);
		return (-1);
	}
	/* Close-on-exec, or the peer would hold its own input open. */
	if (pipe2(outp, O_CLOEXEC) == -1 ||
	    (usepipe && pipe2(inp, O_CLOEXEC) == -1))
		err(1, "pipe");
	switch (c->pid = fork()) {
	case -1:
		err(1, "fork");
	case 0:
#ifdef __linux__
		prctl(PR_SET_PDEATHSIG, SIGKILL);
#endif
		if (!usepipe &&
		    (inp[0] = open("/dev/null", O_RDONLY | O_CLOEXEC)) == -1)
			_exit(127);
		if (dup2(inp[0], STDIN_FILENO) == -1 ||
		    dup2(outp[1], STDOUT_FILENO) == -1 ||
		    dup2(errfd, STDERR_FILENO) == -1)
			_exit(127);
		execv(argv[0], argv);
		dprintf(STDERR_FILENO, "exec %s: %s\n", argv[0],
		    strerror(errno));
		_exit(127);
	}
	close(errfd);
	close(outp[1]);
	c->out = outp[0];
	if (usepipe) {
		close(inp[0]);
		c->in = inp[1];
	}
	return (0);
}

/* The next line of its output: 1, or 0 on a timeout, -1 at the end. */
static int
child_line(struct child *c, char *line, size_t size, int ms)
{
	long long	 deadline;
	char		*nl;
	ssize_t		 n;
	size_t		 len;

	deadline = now_ms() + ms;
	while ((nl = memchr(c->buf, '\n', c->len)) == NULL) {
		if (c->eof || c->len == sizeof(c->buf))
			return (-1);
		if (!readable(c->out, deadline - now_ms() > 0 ?
		    (int)(deadline - now_ms()) : 0))
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
	long long	deadline;

	deadline = now_ms() + ms;
	while (c->pid != -1) {
		if (waitpid(c->pid, &c->status, WNOHANG) == c->pid) {
			c->pid = -1;
			break;
		}
		if (now_ms() >= deadline) {
			warnx("%s: still runs after %d ms, killing it",
			    c->errpath, ms);
			child_kill(c);
			return (-1);
		}
		sleep_ms(5);
	}
	if (c->in != -1)
		close(c->in);
	if (c->out != -1)
		close(c->out);
	c->in = c->out = -1;
	if (WIFEXITED(c->status))
		return (WEXITSTATUS(c->status));
	return (-1);
}

static void
child_kill(struct child *c)
{
	if (c->pid > 0) {
		kill(c->pid, SIGKILL);
		waitpid(c->pid, &c->status, 0);
		c->pid = -1;
	}
	if (c->in != -1)
		close(c->in);
	if (c->out != -1)
		close(c->out);
	c->in = c->out = -1;
}

/*
 * Run the C peer with the arguments given, NULL-terminated, and return
 * its exit status with all it printed in out, lines joined by "; ".
 */
static int
peer_run(const char *name, char *out, size_t outsize, ...)
{
	char		 line[256], nbuf[16];
	char		*argv[MAXARGS];
	const char	*a;
	va_list		 ap;
	long long	 deadline;
	int		 argc = 0, i, r, rv;

	snprintf(nbuf, sizeof(nbuf), "%u", nvectors);
	argv_add(argv, &argc, peerbin);
	argv_add(argv, &argc, "-s");
	argv_add(argv, &argc, conf.sock);
	argv_add(argv, &argc, "-n");
	argv_add(argv, &argc, nbuf);
	va_start(ap, outsize);
	while ((a = va_arg(ap, const char *)) != NULL)
		argv_add(argv, &argc, a);
	va_end(ap);
	out[0] = '\0';
	r = child_start(&runner, name, 0, argv);
	for (i = 0; i < argc; i++)
		free(argv[i]);
	if (r == -1)
		return (-1);
	deadline = now_ms() + PEER_TIMEOUT;
	while ((r = child_line(&runner, line, sizeof(line),
	    (int)(deadline - now_ms()))) == 1) {
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
	char	 line[256], ms[32], nbuf[16];
	char	*argv[MAXARGS];
	int	 argc = 0, i, r, ok;

	snprintf(nbuf, sizeof(nbuf), "%u", nvectors);
	snprintf(ms, sizeof(ms), "%d", WATCHDOG * 1000);
	argv_add(argv, &argc, peerbin);
	argv_add(argv, &argc, "-s");
	argv_add(argv, &argc, conf.sock);
	argv_add(argv, &argc, "-n");
	argv_add(argv, &argc, nbuf);
	argv_add(argv, &argc, "-w");
	argv_add(argv, &argc, ms);
	r = child_start(&watcher, "watcher", 1, argv);
	for (i = 0; i < argc; i++)
		free(argv[i]);
	if (r == -1)
		return (-1);
	r = child_line(&watcher, line, sizeof(line), IO_TIMEOUT);
	ok = r == 1 && strcmp(line, want) == 0;
	check(ok, NULL, "the C peer joins as a watcher: \"%s\" (got \"%s\")",
	    want, r == 1 ? line : r == 0 ? "nothing in time" : "its end");
	if (r == 1)
		sscanf(line, "id %ld", &watcherid);
	if (!ok)
		showfile(watcher.errpath, &watcher.errshown, "watcher");
	return (r == 1 ? 0 : -1);
}

/* The watcher's next line must be want. */
static int
watcher_expect(const char *want, int ms)
{
	char	line[256];
	int	r;

	if (watcher.pid == -1)
		return (-1);
	r = child_line(&watcher, line, sizeof(line), ms);
	if (r == 1 && strcmp(line, want) == 0)
		return (0);
	warnx("watcher: expected \"%s\", got \"%s\"", want, r == 1 ? line :
	    r == 0 ? "nothing in time" : "its end");
	showfile(watcher.errpath, &watcher.errshown, "watcher");
	return (-1);
}

/* Nothing more from the watcher after a pause. */
static int
watcher_quiet(void)
{
	char	line[256];

	if (child_line(&watcher, line, sizeof(line), SETTLE) == 0)
		return (0);
	warnx("watcher: unexpected \"%s\"", line);
	return (-1);
}

/*
 * Every VM rings the watcher on each vector, which must see exactly
 * that interrupt; the watcher rings every VM on each vector through
 * the fds the server gave it, which must go pending there only.
 */
static void
ring_watcher(struct qemu **vms, int nvms, const char *when)
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
		check(ok, vms[i], "%sqemu %d rings the C peer (ID %ld) on "
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
			ok = write(watcher.in, cmd, strlen(cmd)) ==
			    (ssize_t)strlen(cmd) &&
			    watcher_expect(want, IO_TIMEOUT) == 0 &&
			    pba_expect(vms[i], v) == 0;
			if (ok) {
				sleep_ms(SETTLE);
				ok = others_quiet(vms, nvms, vms[i]) &&
				    watcher_quiet() == 0 &&
				    msix_deliver(vms[i], v) == 0;
			}
		}
		check(ok, vms[i], "%sthe C peer rings qemu %d (ID %ld) on every "
		    "vector: pending there only", when, vms[i]->n, vms[i]->id);
	}
}

/*
 * C peers come and go while the VMs stay: the watcher follows every
 * join and leave, the server and the VMs end with the fds they had.
 */
static void
peers_run(struct qemu **vms, int nvms)
{
	char		 out[512], want[512], alt[512], count[32], now[128];
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
	ring_watcher(vms, nvms, "");

	snprintf(want, sizeof(want), "id %ld peers %d", first + 1, nvms + 1);
	rv = peer_run("peer-once", out, sizeof(out), (char *)NULL);
	check(rv == 0 && strcmp(out, want) == 0, NULL, "a C peer joins and "
	    "leaves: \"%s\" (got \"%s\", exit %d)", want, out, rv);

	/*
	 * The peer before it may not be gone yet from the server's view
	 * (its end of file is read in the same round): both are right.
	 */
	snprintf(want, sizeof(want), "id %ld peers %d; dropped", first + 2,
	    nvms + 1);
	snprintf(alt, sizeof(alt), "id %ld peers %d; dropped", first + 2,
	    nvms + 2);
	rv = peer_run("peer-byte", out, sizeof(out), "-b", (char *)NULL);
	check(rv == 0 && (strcmp(out, want) == 0 || strcmp(out, alt) == 0),
	    NULL, "a C peer that sends a byte is dropped: \"%s\" (got \"%s\", "
	    "exit %d)", want, out, rv);

	snprintf(count, sizeof(count), "%ld", cycles);
	snprintf(want, sizeof(want), "cycles %ld first %ld last %ld wraps 0 "
	    "peers %d", cycles, first + 3, first + 2 + cycles, nvms + 1);
	t0 = now_ms();
	rv = peer_run("peer-cycles", out, sizeof(out), "-c", count,
	    (char *)NULL);
	fprintf(stderr, "%ld joins and leaves in %lld ms\n", cycles,
	    now_ms() - t0);
	check(rv == 0 && strcmp(out, want) == 0, NULL, "a C peer joins and "
	    "leaves %ld times, each time with the next ID: \"%s\" (got "
	    "\"%s\", exit %d)", cycles, want, out, rv);
	if (serverpid != -1)
		check(kill(serverpid, 0) == 0 && (serverchild == -1 ||
		    kill(serverchild, 0) == 0), NULL, "the server still runs");
	for (i = 0; i < nvms; i++)
		check(qemu_exited(vms[i]) == 0, vms[i], "qemu %d still runs",
		    vms[i]->n);

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
		if (child_line(&watcher, out, sizeof(out), IO_TIMEOUT) != 1)
			strlcpy(out, "nothing", sizeof(out));
		rv = child_finish(&watcher, IO_TIMEOUT);
		check(rv == 0 && strcmp(out, want) == 0, NULL, "the watcher "
		    "saw every join and leave: \"%s\" (got \"%s\", exit %d)",
		    want, out, rv);
		if (rv != 0)
			showfile(watcher.errpath, &watcher.errshown,
			    "watcher");
	}

	if (base != -1) {
		n = wait_server_fds(base, FD_TIMEOUT);
		check(n == base, NULL, "the server's fds are back to %d (%d)",
		    base, n);
	}
	for (i = 0; i < nvms; i++) {
		n = wait_fds(vms[i]->pid, qbase[i], FD_TIMEOUT);
		check(n == qbase[i], vms[i], "qemu %d: its fds are back to %d, "
		    "every leave was told (%d)", vms[i]->n, qbase[i], n);
	}
}

int
main(int argc, char *argv[])
{
	struct sigaction	 sa;
	struct qemu		*vms[NQEMU];
	const char		*errstr, *tmp, *slash;
	char			 when[64];
	int			 ch, i, n, f1, f3, ok;

	while ((ch = getopt(argc, argv, "C:c:l:n:p:Q:S:")) != -1) {
		switch (ch) {
		case 'C':
			if (strlcpy(peerbin, optarg, sizeof(peerbin)) >=
			    sizeof(peerbin))
				errx(1, "%s: path too long", optarg);
			break;
		case 'c':
			cycles = strtonum(optarg, 1, 60000, &errstr);
			if (errstr != NULL)
				errx(1, "cycles %s: %s", optarg, errstr);
			break;
		case 'l':
			winsize = strtonum(optarg, 4096, LLONG_MAX, &errstr);
			if (errstr != NULL)
				errx(1, "size %s: %s", optarg, errstr);
			break;
		case 'n':
			nvectors = strtonum(optarg, 1, MAXVEC, &errstr);
			if (errstr != NULL)
				errx(1, "vectors %s: %s", optarg, errstr);
			break;
		case 'p':
			serverpid = strtonum(optarg, 1, INT_MAX, &errstr);
			if (errstr != NULL)
				errx(1, "pid %s: %s", optarg, errstr);
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

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (i = 0; i < NQEMU; i++) {
		qemus[i].pid = -1;
		qemus[i].qt = -1;
	}
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = on_signal;
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = on_alarm;
	sigaction(SIGALRM, &sa, NULL);
	alarm(WATCHDOG);

	if ((tmp = getenv("TMPDIR")) == NULL || *tmp == '\0')
		tmp = "/tmp";
	if ((size_t)snprintf(tmpdir, sizeof(tmpdir), "%s/peertest.XXXXXXXX",
	    tmp) >= sizeof(tmpdir))
		errx(1, "TMPDIR %s too long", tmp);
	if (mkdtemp(tmpdir) == NULL)
		err(1, "mkdtemp %s", tmpdir);
	atexit(cleanup);
	conf.dir = tmpdir;
	conf.vectors = nvectors;
	conf.started = &nqemus;
	if (serverpid != -1) {
		serverchild = find_server_child();
		fprintf(stderr, "server %ld, serving child %ld\n",
		    (long)serverpid, (long)serverchild);
		if (server_fds() == -1) {
			check(0, NULL, "the server's fds can be counted in "
			    "/proc/%ld/fd", (long)serverpid);
			serverpid = -1;
		}
	}

	/* Three VMs, one after the other: IDs 0, 1 and 2. */
	for (i = 0; i < 3; i++) {
		if (vm_start(&qemus[i], i + 1, i) == -1)
			return (1);
		vms[i] = &qemus[i];
	}
	check(qemus[0].id != qemus[1].id && qemus[0].id != qemus[2].id &&
	    qemus[1].id != qemus[2].id, NULL, "the three VMs have distinct "
	    "IVPositions");
	vm_raw(&qemus[0]);
	vm_share(vms, 3);
	ring_all(vms, 3, "");

	/*
	 * VM 2 dies without a word.  The others are told: QEMU closes
	 * the eventfds of a peer that left, N of them.
	 */
	f1 = count_fds(qemus[0].pid);
	f3 = count_fds(qemus[2].pid);
	qemu_kill(&qemus[1]);
	check(qemus[1].pid == -1 && WIFSIGNALED(qemus[1].status) &&
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
	check(ok, NULL, "qemu 1 and qemu 3 are told: each closes the %u "
	    "eventfds of ID %ld", nvectors, qemus[1].id);
	vms[0] = &qemus[0];
	vms[1] = &qemus[2];
	ring_gone(vms, 2, qemus[1].id, "");

	if (vm_start(&qemus[3], 4, 3) == -1)
		return (1);
	vms[2] = &qemus[3];
	snprintf(when, sizeof(when), "with qemu 4: ");
	ring_gone(vms, 3, qemus[1].id, when);
	ring_all(vms, 3, when);

	peers_run(vms, 3);
	ring_all(vms, 3, "after the C peers: ");

	/* A VM that comes now gets the ID after the C peers'. */
	if (vm_start(&qemus[4], 5, qemus[3].id + 3 + cycles + 1) == -1)
		return (1);
	vms[3] = &qemus[4];
	ring_all(vms, 4, "with qemu 5: ");
	return (failed ? 1 : 0);
}
