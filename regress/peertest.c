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
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include <dirent.h>
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
#include <time.h>
#include <unistd.h>

#define IO_TIMEOUT	5000		/* ms: a qtest reply, a peer line */
#define EVENT_TIMEOUT	2000		/* ms: a PBA bit, an irq line */
#define SETTLE		50		/* ms: for an event that must not come */
#define FD_TIMEOUT	10000		/* ms: fds closed after a leave */
#define START_TIMEOUT	20000		/* ms: QEMU start to qtest */
#define PEER_TIMEOUT	120000		/* ms: any one peer run */
#define QEMU_LIFETIME	280000		/* ms: any one QEMU */
#define WATCHDOG	300		/* s: the whole test */
#define NQEMU		5
#define MAXARGS		32
#define MAXVEC		256		/* the doorbell has 8 bits of vector */

#define PCI_SLOT	4
#define PCI_ID		0x11101af4	/* 1af4:1110, ivshmem */
#define PCI_CMD_MEM	0x0002
#define PCI_CMD_MASTER	0x0004
#define PCI_STATUS_CAP	0x0010
#define PCI_CAP_MSIX	0x11
#define MSIX_ENABLE	0x8000
#define MSIX_FMASK	0x4000
#define MSIX_MASKED	0x1		/* in an entry's vector control */

#define IVPOSITION	8		/* BAR0 registers */
#define DOORBELL	12

/* As in vmtest: BAR2 above 4G, MSI-X messages to plain RAM. */
#define BAR0_ADDR	0xe0000000ULL
#define BAR1_ADDR	0xe0100000ULL
#define BAR2_MIN	0x100000000ULL
#define SCRATCH		0x10000ULL

struct qemu {
	int		 n;		/* 1, 2, ..., for messages */
	long		 id;		/* IVPosition */
	pid_t		 pid;		/* -1 once reaped */
	int		 status;	/* from waitpid */
	int		 qt;		/* qtest connection, or -1 */
	char		*in;		/* qtest input */
	size_t		 inlen;
	size_t		 insize;
	size_t		 used;		/* bytes of the last reply */
	char		 errpath[PATH_MAX];
	off_t		 errshown;	/* stderr printed so far */
	long long	 deadline;	/* killed after this */
	uint64_t	 bar[3];
	uint64_t	 table;		/* MSI-X, guest physical */
	uint64_t	 pba;
	unsigned int	 nvec;
};

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
static long long now_ms(void);
static void	 sleep_ms(int);
static int	 readable(int, int);
static void	 check(int, struct qemu *, const char *, ...)
		    __attribute__((__format__(__printf__, 3, 4)));
static void	 kill_all(void);
static void	 on_alarm(int);
static void	 on_signal(int);
static void	 cleanup(void);
static const char *optescape(const char *);
static int	 listen_unix(const char *);
static void	 argv_add(char **, int *, const char *);
static int	 qemu_start(struct qemu *, int);
static int	 qemu_accept(struct qemu *, int);
static int	 qemu_exited(struct qemu *);
static int	 qemu_wait(struct qemu *, int);
static void	 qemu_kill(struct qemu *);
static void	 showfile(const char *, off_t *, const char *);
static void	 qemu_showerr(struct qemu *);
static const char *qt_cmd(struct qemu *, const char *, ...)
		    __attribute__((__format__(__printf__, 2, 3)));
static int	 qt_num(struct qemu *, uint64_t *, const char *, ...)
		    __attribute__((__format__(__printf__, 3, 4)));
static int	 cfg_read(struct qemu *, int, uint32_t *);
static int	 cfg_write(struct qemu *, int, uint32_t);
static int	 cfg_write16(struct qemu *, int, uint16_t);
static int	 bar_probe(struct qemu *, int, uint64_t *, int *);
static int	 pci_setup(struct qemu *);
static int	 msix_setup(struct qemu *);
static int	 pba_read(struct qemu *, uint32_t *);
static int	 pba_expect(struct qemu *, int);
static int	 msix_deliver(struct qemu *, unsigned int);
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

/* -S: no guest CPU ever runs; TCG, as KVM may be missing. */
static const char *const	 qemu_args[] = {
	"-M", "pc", "-accel", "tcg", "-S", "-nodefaults", "-display", "none",
	"-m", "64", NULL
};
static const char		*qemubin = "qemu-system-x86_64";
static const char		*sockpath;
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

static long long
now_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

static void
sleep_ms(int ms)
{
	long long	deadline;

	/* poll(2) ends early on a signal: SIGCHLD comes often here. */
	deadline = now_ms() + ms;
	while ((ms = deadline - now_ms()) > 0)
		poll(NULL, 0, ms);
}

/* Whether fd becomes readable within ms, 0 to look without waiting. */
static int
readable(int fd, int ms)
{
	struct pollfd	pfd;
	long long	deadline;
	int		n;

	pfd.fd = fd;
	pfd.events = POLLIN;
	deadline = now_ms() + ms;
	for (;;) {
		n = poll(&pfd, 1, ms);
		if (n >= 0)
			return (n == 1);
		if (errno != EINTR)
			return (0);
		if ((ms = deadline - now_ms()) < 0)
			ms = 0;
	}
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
	char	path[PATH_MAX];
	int	i;

	for (i = 0; i < nqemus; i++) {
		qemu_kill(&qemus[i]);
		unlink(qemus[i].errpath);
		snprintf(path, sizeof(path), "%s/qtest-%d.sock", tmpdir,
		    qemus[i].n);
		unlink(path);
	}
	child_kill(&watcher);
	child_kill(&runner);
	unlink(watcher.errpath);
	unlink(runner.errpath);
	if (tmpdir[0] != '\0')
		rmdir(tmpdir);
}

/* QEMU's option syntax takes a comma as ",,". */
static const char *
optescape(const char *s)
{
	static char	buf[2 * PATH_MAX];
	size_t		i = 0;

	for (; *s != '\0' && i < sizeof(buf) - 2; s++) {
		if (*s == ',')
			buf[i++] = ',';
		buf[i++] = *s;
	}
	buf[i] = '\0';
	return (buf);
}

static int
listen_unix(const char *path)
{
	struct sockaddr_un	sun;
	int			s;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlcpy(sun.sun_path, path, sizeof(sun.sun_path)) >=
	    sizeof(sun.sun_path)) {
		warnx("%s: socket path too long", path);
		return (-1);
	}
	if ((s = socket(AF_UNIX, SOCK_STREAM, 0)) == -1) {
		warn("socket");
		return (-1);
	}
	if (fcntl(s, F_SETFD, FD_CLOEXEC) == -1 ||
	    fcntl(s, F_SETFL, O_NONBLOCK) == -1 ||
	    bind(s, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    listen(s, 1) == -1) {
		warn("%s", path);
		close(s);
		return (-1);
	}
	return (s);
}

/* execv(3) takes writable strings: hand it copies. */
static void
argv_add(char **argv, int *argc, const char *s)
{
	if (*argc >= MAXARGS - 1)
		errx(1, "too many arguments");
	if ((argv[(*argc)++] = strdup(s)) == NULL)
		err(1, NULL);
	argv[*argc] = NULL;
}

/* Start QEMU number n, a peer, with qtest; its stderr goes to a file. */
static int
qemu_start(struct qemu *q, int n)
{
	char	 chardev[3 * PATH_MAX], device[128], qtpath[PATH_MAX];
	char	 qtarg[3 * PATH_MAX];
	char	*argv[MAXARGS];
	int	 argc = 0, errfd = -1, i, ls = -1, nullfd = -1;
	pid_t	 pid;

	memset(q, 0, sizeof(*q));
	q->n = n;
	q->id = -1;
	q->pid = -1;
	q->qt = -1;
	if ((q->in = malloc(4096)) == NULL)
		err(1, NULL);
	q->insize = 4096;
	snprintf(q->errpath, sizeof(q->errpath), "%s/qemu-%d.err", tmpdir, n);
	nqemus = n;	/* for cleanup, from now on */
	snprintf(qtpath, sizeof(qtpath), "%s/qtest-%d.sock", tmpdir, n);
	snprintf(chardev, sizeof(chardev), "socket,path=%s,id=iv",
	    optescape(sockpath));
	snprintf(qtarg, sizeof(qtarg), "unix:%s", optescape(qtpath));
	snprintf(device, sizeof(device),
	    "ivshmem-doorbell,chardev=iv,vectors=%u,addr=%d", nvectors,
	    PCI_SLOT);

	argv_add(argv, &argc, qemubin);
	for (i = 0; qemu_args[i] != NULL; i++)
		argv_add(argv, &argc, qemu_args[i]);
	argv_add(argv, &argc, "-qtest");
	argv_add(argv, &argc, qtarg);
	argv_add(argv, &argc, "-qtest-log");
	argv_add(argv, &argc, "none");
	argv_add(argv, &argc, "-chardev");
	argv_add(argv, &argc, chardev);
	argv_add(argv, &argc, "-device");
	argv_add(argv, &argc, device);

	if ((ls = listen_unix(qtpath)) == -1)
		goto fail;
	errfd = open(q->errpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	nullfd = open("/dev/null", O_RDONLY);
	if (errfd == -1 || nullfd == -1) {
		warn("%s", q->errpath);
		goto fail;
	}
	switch (pid = fork()) {
	case -1:
		warn("fork");
		goto fail;
	case 0:
#ifdef __linux__
		/* Should peertest die, QEMU dies with it. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
#endif
		if (dup2(nullfd, STDIN_FILENO) == -1 ||
		    dup2(errfd, STDOUT_FILENO) == -1 ||
		    dup2(errfd, STDERR_FILENO) == -1)
			_exit(127);
		execvp(qemubin, argv);
		dprintf(STDERR_FILENO, "exec %s: %s\n", qemubin,
		    strerror(errno));
		_exit(127);
	}
	close(errfd);
	close(nullfd);
	for (i = 0; i < argc; i++)
		free(argv[i]);
	q->pid = pid;
	q->deadline = now_ms() + QEMU_LIFETIME;
	if (qemu_accept(q, ls) == -1) {
		close(ls);
		unlink(qtpath);
		qemu_kill(q);
		return (-1);
	}
	close(ls);
	unlink(qtpath);
	return (0);
fail:
	for (i = 0; i < argc; i++)
		free(argv[i]);
	if (errfd != -1)
		close(errfd);
	if (nullfd != -1)
		close(nullfd);
	if (ls != -1) {
		close(ls);
		unlink(qtpath);
	}
	return (-1);
}

/* Wait for QEMU's qtest connection, and notice if QEMU dies first. */
static int
qemu_accept(struct qemu *q, int ls)
{
	long long	deadline;

	deadline = now_ms() + START_TIMEOUT;
	while (now_ms() < deadline) {
		if (readable(ls, 50)) {
			if ((q->qt = accept(ls, NULL, NULL)) == -1) {
				warn("qemu %d: accept", q->n);
				return (-1);
			}
			if (fcntl(q->qt, F_SETFD, FD_CLOEXEC) == -1 ||
			    fcntl(q->qt, F_SETFL, O_NONBLOCK) == -1) {
				warn("qemu %d: fcntl", q->n);
				return (-1);
			}
			return (0);
		}
		if (qemu_exited(q)) {
			warnx("qemu %d exited before it spoke qtest", q->n);
			return (-1);
		}
	}
	warnx("qemu %d: no qtest connection in %d ms", q->n, START_TIMEOUT);
	return (-1);
}

static int
qemu_exited(struct qemu *q)
{
	if (q->pid == -1)
		return (1);
	if (waitpid(q->pid, &q->status, WNOHANG) != q->pid)
		return (0);
	q->pid = -1;
	return (1);
}

static int
qemu_wait(struct qemu *q, int ms)
{
	long long	deadline;

	deadline = now_ms() + ms;
	for (;;) {
		if (qemu_exited(q))
			return (1);
		if (now_ms() >= deadline)
			return (0);
		sleep_ms(10);
	}
}

static void
qemu_kill(struct qemu *q)
{
	if (q->qt != -1) {
		close(q->qt);
		q->qt = -1;
	}
	if (q->pid <= 0)
		return;
	kill(q->pid, SIGKILL);
	if (!qemu_wait(q, IO_TIMEOUT))
		warnx("qemu %d (pid %ld) survives SIGKILL", q->n,
		    (long)q->pid);
}

/* Copy to stderr what a child wrote to path since the last time. */
static void
showfile(const char *path, off_t *shown, const char *what)
{
	char	 buf[4096];
	ssize_t	 n;
	int	 fd;

	if (path[0] == '\0' || (fd = open(path, O_RDONLY)) == -1)
		return;
	if (lseek(fd, *shown, SEEK_SET) != -1) {
		while ((n = read(fd, buf, sizeof(buf))) > 0) {
			fprintf(stderr, "--- %s stderr:\n", what);
			fwrite(buf, 1, n, stderr);
			*shown += n;
		}
	}
	close(fd);
}

static void
qemu_showerr(struct qemu *q)
{
	char	what[32];

	snprintf(what, sizeof(what), "qemu %d", q->n);
	showfile(q->errpath, &q->errshown, what);
	if (q->pid == -1 && WIFEXITED(q->status))
		fprintf(stderr, "--- qemu %d exited %d\n", q->n,
		    WEXITSTATUS(q->status));
	else if (q->pid == -1 && WIFSIGNALED(q->status))
		fprintf(stderr, "--- qemu %d killed by signal %d\n", q->n,
		    WTERMSIG(q->status));
}

/*
 * Send one qtest command and return its reply after "OK", or NULL.  A
 * QEMU that does not answer in time or has lived too long is killed.
 */
static const char *
qt_cmd(struct qemu *q, const char *fmt, ...)
{
	char		 cmd[128], *nl;
	va_list		 ap;
	long long	 deadline;
	size_t		 len, off;
	ssize_t		 n;

	if (q->qt == -1)
		return (NULL);
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd) - 1, fmt, ap);
	va_end(ap);
	len = strlen(cmd);
	cmd[len++] = '\n';

	/* Drop the previous reply. */
	memmove(q->in, q->in + q->used, q->inlen - q->used);
	q->inlen -= q->used;
	q->used = 0;

	deadline = now_ms() + IO_TIMEOUT;
	if (deadline > q->deadline)
		deadline = q->deadline;
	for (off = 0; off < len; off += n) {
		if ((n = write(q->qt, cmd + off, len - off)) != -1)
			continue;
		if (errno != EAGAIN && errno != EINTR) {
			warn("qemu %d: qtest write", q->n);
			goto dead;
		}
		if (now_ms() >= deadline)
			goto timeout;
		n = 0;
		sleep_ms(1);
	}
	cmd[len - 1] = '\0';

	while ((nl = memchr(q->in, '\n', q->inlen)) == NULL) {
		if (q->inlen == q->insize) {
			if ((q->in = realloc(q->in, q->insize + 4096)) == NULL)
				err(1, NULL);
			q->insize += 4096;
		}
		if (!readable(q->qt, deadline - now_ms() > 0 ?
		    (int)(deadline - now_ms()) : 0))
			goto timeout;
		n = read(q->qt, q->in + q->inlen, q->insize - q->inlen);
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0) {
			warnx("qemu %d: qtest connection lost at \"%s\"",
			    q->n, cmd);
			goto dead;
		}
		q->inlen += n;
	}
	*nl = '\0';
	q->used = nl + 1 - q->in;
	if (strncmp(q->in, "OK", 2) != 0 ||
	    (q->in[2] != '\0' && q->in[2] != ' ')) {
		warnx("qemu %d: \"%s\": %s", q->n, cmd, q->in);
		return (NULL);
	}
	return (q->in[2] == ' ' ? q->in + 3 : q->in + 2);
timeout:
	warnx("qemu %d: no qtest reply to \"%s\" in time, killing it",
	    q->n, cmd);
dead:
	qemu_kill(q);
	return (NULL);
}

static int
qt_num(struct qemu *q, uint64_t *v, const char *fmt, ...)
{
	char		 cmd[128];
	const char	*r;
	char		*end;
	va_list		 ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if ((r = qt_cmd(q, "%s", cmd)) == NULL)
		return (-1);
	errno = 0;
	*v = strtoull(r, &end, 0);
	if (errno != 0 || end == r || *end != '\0') {
		warnx("qemu %d: \"%s\": bad number \"%s\"", q->n, cmd, r);
		return (-1);
	}
	return (0);
}

/* Configuration mechanism #1: address to 0xcf8, data at 0xcfc. */
#define CFG_ADDR(reg)	(0x80000000U | PCI_SLOT << 11 | ((reg) & 0xfc))

static int
cfg_read(struct qemu *q, int reg, uint32_t *v)
{
	uint64_t	x;

	if (qt_cmd(q, "outl 0xcf8 0x%x", CFG_ADDR(reg)) == NULL ||
	    qt_num(q, &x, "inl 0xcfc") == -1)
		return (-1);
	*v = x;
	return (0);
}

static int
cfg_write(struct qemu *q, int reg, uint32_t v)
{
	if (qt_cmd(q, "outl 0xcf8 0x%x", CFG_ADDR(reg)) == NULL ||
	    qt_cmd(q, "outl 0xcfc 0x%x", v) == NULL)
		return (-1);
	return (0);
}

static int
cfg_write16(struct qemu *q, int reg, uint16_t v)
{
	if (qt_cmd(q, "outl 0xcf8 0x%x", CFG_ADDR(reg)) == NULL ||
	    qt_cmd(q, "outw 0x%x 0x%x", 0xcfc + (reg & 2), v) == NULL)
		return (-1);
	return (0);
}

/* Size a memory BAR the usual way: write all ones, see what sticks. */
static int
bar_probe(struct qemu *q, int bar, uint64_t *size, int *is64)
{
	uint64_t	mask;
	uint32_t	lo, hi = 0xffffffff;
	int		reg = 0x10 + 4 * bar;

	if (cfg_write(q, reg, 0xffffffff) == -1 ||
	    cfg_read(q, reg, &lo) == -1)
		return (-1);
	*is64 = (lo & 0x7) == 0x4;
	if (*is64 && (cfg_write(q, reg + 4, 0xffffffff) == -1 ||
	    cfg_read(q, reg + 4, &hi) == -1))
		return (-1);
	mask = (uint64_t)hi << 32 | (lo & ~0xfU);
	if (mask == 0 || (lo & 1) != 0) {
		warnx("qemu %d: BAR%d reads 0x%08x: no memory BAR", q->n,
		    bar, lo);
		return (-1);
	}
	*size = ~mask + 1;
	return (0);
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
	int		i, is64[3], ok;

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
	for (i = 0; i < 3; i++)
		if (bar_probe(q, i, &size[i], &is64[i]) == -1)
			return (-1);
	fprintf(stderr, "qemu %d: BAR0 %ju bytes, BAR1 %ju bytes, "
	    "BAR2 %ju bytes%s\n", q->n, (uintmax_t)size[0],
	    (uintmax_t)size[1], (uintmax_t)size[2], is64[2] ? ", 64-bit" : "");
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

	q->bar[0] = BAR0_ADDR;
	q->bar[1] = BAR1_ADDR;
	q->bar[2] = size[2] > BAR2_MIN ? size[2] : BAR2_MIN;
	if (cfg_write(q, 0x10, q->bar[0]) == -1 ||
	    cfg_write(q, 0x14, q->bar[1]) == -1 ||
	    cfg_write(q, 0x18, q->bar[2] & 0xffffffff) == -1 ||
	    cfg_write(q, 0x1c, q->bar[2] >> 32) == -1 ||
	    cfg_write16(q, 0x04, PCI_CMD_MEM | PCI_CMD_MASTER) == -1)
		return (-1);
	return (msix_setup(q));
}

/*
 * Enable MSI-X with the function unmasked but every entry masked, as
 * at reset: an event then sets the vector's bit in the PBA, which can
 * be read, instead of sending a message.
 */
static int
msix_setup(struct qemu *q)
{
	uint32_t	v, ctl, tab, pba;
	int		cap = 0, guard = 0;

	if (cfg_read(q, 0x04, &v) == -1)
		return (-1);
	if (v >> 16 & PCI_STATUS_CAP) {
		if (cfg_read(q, 0x34, &v) == -1)
			return (-1);
		for (cap = v & 0xfc; cap != 0 && guard < 48;
		    cap = v >> 8 & 0xfc, guard++) {
			if (cfg_read(q, cap, &v) == -1)
				return (-1);
			if ((v & 0xff) == PCI_CAP_MSIX)
				break;
		}
	}
	if (cap == 0 || guard == 48) {
		check(0, q, "qemu %d: has an MSI-X capability", q->n);
		return (-1);
	}
	ctl = v >> 16;
	if (cfg_read(q, cap + 4, &tab) == -1 ||
	    cfg_read(q, cap + 8, &pba) == -1)
		return (-1);
	q->nvec = (ctl & 0x7ff) + 1;
	if (q->nvec != nvectors || (tab & 7) > 2 || (pba & 7) > 2) {
		check(0, q, "qemu %d: %u MSI-X vectors (has %u) with the "
		    "table and PBA in a known BAR", q->n, nvectors, q->nvec);
		return (-1);
	}
	q->table = q->bar[tab & 7] + (tab & ~7U);
	q->pba = q->bar[pba & 7] + (pba & ~7U);
	if (cfg_write16(q, cap + 2, (ctl | MSIX_ENABLE) & ~MSIX_FMASK) == -1 ||
	    cfg_read(q, cap, &v) == -1)
		return (-1);
	if ((v >> 16 & (MSIX_ENABLE | MSIX_FMASK)) != MSIX_ENABLE) {
		check(0, q, "qemu %d: MSI-X enabled", q->n);
		return (-1);
	}
	return (0);
}

/* Read the pending bits of all vectors, 32 to a word. */
static int
pba_read(struct qemu *q, uint32_t *words)
{
	uint64_t	v;
	unsigned int	i;

	for (i = 0; i < (q->nvec + 31) / 32; i++) {
		if (qt_num(q, &v, "readl 0x%jx", (uintmax_t)(q->pba + 4 * i))
		    == -1)
			return (-1);
		words[i] = v;
	}
	return (0);
}

/*
 * Wait until the PBA shows exactly vector vec pending, or none if vec
 * is -1, and say what it shows otherwise.
 */
static int
pba_expect(struct qemu *q, int vec)
{
	uint32_t	words[MAXVEC / 32];
	char		list[MAXVEC * 5 + 1], num[16];
	long long	deadline;
	unsigned int	i, bad;

	deadline = now_ms() + EVENT_TIMEOUT;
	for (;;) {
		if (pba_read(q, words) == -1)
			return (-1);
		for (bad = 0, i = 0; i < q->nvec; i++)
			if ((int)(words[i / 32] >> (i % 32) & 1) !=
			    ((int)i == vec))
				bad++;
		if (bad == 0)
			return (0);
		if (now_ms() >= deadline)
			break;
		sleep_ms(10);
	}
	list[0] = '\0';
	for (i = 0; i < q->nvec; i++) {
		if (words[i / 32] >> (i % 32) & 1) {
			snprintf(num, sizeof(num), " %u", i);
			strlcat(list, num, sizeof(list));
		}
	}
	if (vec == -1)
		warnx("qemu %d (ID %ld): expected no vector pending, PBA has%s",
		    q->n, q->id, list);
	else
		warnx("qemu %d (ID %ld): expected only vector %d pending, PBA "
		    "has%s", q->n, q->id, vec, list[0] == '\0' ? " none" : list);
	return (-1);
}

/*
 * Unmask the vector with its message aimed at guest RAM.  QEMU sends
 * the pending message, a plain memory write, and clears the pending
 * bit: that shows the vector works and readies it for the next test.
 * Then mask it again.
 */
static int
msix_deliver(struct qemu *q, unsigned int vec)
{
	uint64_t	entry, addr, data, got;

	entry = q->table + 16 * vec;
	addr = SCRATCH + 4 * vec;
	data = 0x49560000 | vec;
	if (qt_cmd(q, "writel 0x%jx 0", (uintmax_t)addr) == NULL ||
	    qt_cmd(q, "writel 0x%jx 0x%jx", (uintmax_t)entry,
	    (uintmax_t)addr) == NULL ||
	    qt_cmd(q, "writel 0x%jx 0", (uintmax_t)(entry + 4)) == NULL ||
	    qt_cmd(q, "writel 0x%jx 0x%jx", (uintmax_t)(entry + 8),
	    (uintmax_t)data) == NULL ||
	    qt_cmd(q, "writel 0x%jx 0", (uintmax_t)(entry + 12)) == NULL ||
	    qt_num(q, &got, "readl 0x%jx", (uintmax_t)addr) == -1 ||
	    qt_cmd(q, "writel 0x%jx %d", (uintmax_t)(entry + 12),
	    MSIX_MASKED) == NULL)
		return (-1);
	if (got != data) {
		warnx("qemu %d: vector %u unmasked, but its message did not "
		    "arrive (0x%jx at 0x%jx)", q->n, vec, (uintmax_t)got,
		    (uintmax_t)addr);
		return (-1);
	}
	return (pba_expect(q, -1));
}

/* Start VM n, set its device up and check its IVPosition. */
static int
vm_start(struct qemu *q, int n, long want)
{
	uint64_t	pos;
	int		nfailed, ok;

	ok = qemu_start(q, n) == 0;
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
	argv_add(argv, &argc, sockpath);
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
	argv_add(argv, &argc, sockpath);
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
	char		 out[512], want[512], count[32], now[128], num[16];
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

	snprintf(want, sizeof(want), "id %ld peers %d; dropped", first + 2,
	    nvms + 1);
	rv = peer_run("peer-byte", out, sizeof(out), "-b", (char *)NULL);
	check(rv == 0 && strcmp(out, want) == 0, NULL, "a C peer that sends "
	    "a byte is dropped: \"%s\" (got \"%s\", exit %d)", want, out, rv);

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
			qemubin = optarg;
			break;
		case 'S':
			sockpath = optarg;
			break;
		default:
			usage();
		}
	}
	if (sockpath == NULL || optind != argc)
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
