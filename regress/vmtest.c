/*
 * vmtest: check an ivserver against a real QEMU ivshmem-doorbell device,
 * with no guest OS.
 *
 * QEMU runs with -S, so no guest CPU ever runs, and with the qtest line
 * protocol on a private socket: this program plays the guest, programs
 * the PCI device through the 0xcf8/0xcfc config ports and reads and
 * writes its BARs.  It plays the host through the client library.  Each
 * check prints "ok - ..." or "not ok - ..."; details go to stderr.
 *
 * Every wait has a deadline and every QEMU is killed when it overstays,
 * and a watchdog ends the whole test: a broken server must fail the
 * test, never hang it.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include <endian.h>
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ivclient.h"

#define IO_TIMEOUT	5000		/* ms: a qtest reply */
#define EVENT_TIMEOUT	2000		/* ms: an eventfd or a PBA bit */
#define START_TIMEOUT	20000		/* ms: QEMU start to qtest */
#define EXIT_TIMEOUT	15000		/* ms: a refused QEMU to exit */
#define QEMU_LIFETIME	120000		/* ms: any one QEMU */
#define WATCHDOG	600		/* s: the whole test */
#define NQEMU		3
#define MAXARGS		32

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

/*
 * Where the BARs go: BAR0 and BAR1 in the 32-bit hole, BAR2 at 4G or
 * higher so that the 64-bit BAR really needs its high half.  Pending
 * MSI-X messages are sent to plain guest RAM at SCRATCH.
 */
#define BAR0_ADDR	0xe0000000ULL
#define BAR1_ADDR	0xe0100000ULL
#define BAR2_MIN	0x100000000ULL
#define SCRATCH		0x10000ULL

struct qemu {
	int		 n;		/* 1, 2, 3, for messages */
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
static int	 qemu_start(struct qemu *, int, int);
static int	 qemu_accept(struct qemu *, int);
static int	 qemu_exited(struct qemu *);
static int	 qemu_wait(struct qemu *, int);
static void	 qemu_kill(struct qemu *);
static void	 qemu_showerr(struct qemu *);
static int	 qemu_errhas(struct qemu *, const char *);
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
static int	 vm_start(struct qemu *, int);
static void	 vm_header(struct qemu *);
static void	 drain_g2h(void);
static int	 ring_g2h(struct qemu *, int);
static int	 ring_h2g(struct qemu *, int);
static int	 share_mem(struct qemu *, int);
static void	 vm_regions(struct qemu *);
static void	 vm_refused(struct qemu *, struct qemu *);
static void	 vm_restart(struct qemu *, struct qemu *);
static int	 client_setup(int, char **);

/*
 * -S: no guest CPU ever runs.  TCG, as KVM may be missing and some
 * builds (Debian's 7.2) have no qtest accelerator.
 */
static const char *const	  qemu_args[] = {
	"-M", "pc", "-accel", "tcg", "-S", "-nodefaults", "-display", "none",
	"-m", "64", NULL
};
static const char		 *qemubin = "qemu-system-x86_64";
static const char		 *qemusock;
static const char		 *clientsock;
static struct ivclient_region	 *regions;
static unsigned char		**maps;
static int			  nregions;
static unsigned int		  nvectors;	/* regions in the layout */
static unsigned char		 *header;	/* as read from the shm fd */
static size_t			  hdrsize;
static char			  tmpdir[256];	/* holds a socket: short */
static struct qemu		  qemus[NQEMU];
static volatile sig_atomic_t	  nqemus;	/* started, for the handlers */
static int			  failed;

static void
usage(void)
{
	fprintf(stderr, "usage: %s [-Q qemu] -q qemu-socket -s client-socket "
	    "region ...\n", getprogname());
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

/*
 * From a signal handler: kill every QEMU and remove what they leave,
 * with async-signal-safe calls only.  A qtest socket is gone already.
 */
static void
kill_all(void)
{
	int	i;

	for (i = 0; i < nqemus; i++) {
		if (qemus[i].pid > 0)
			kill(qemus[i].pid, SIGKILL);
		unlink(qemus[i].errpath);
	}
	rmdir(tmpdir);
}

static void
on_alarm(int sig)
{
	static const char	msg[] = "not ok - vmtest ends within the "
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

/* execvp(3) takes writable strings: hand it copies. */
static void
argv_add(char **argv, int *argc, const char *s)
{
	if (*argc >= MAXARGS - 1)
		errx(1, "too many QEMU arguments");
	if ((argv[(*argc)++] = strdup(s)) == NULL)
		err(1, NULL);
	argv[*argc] = NULL;
}

/*
 * Start QEMU number n, with qtest or without: a QEMU the server should
 * refuse needs none.  Its stderr goes to a file, shown on failure.
 */
static int
qemu_start(struct qemu *q, int n, int qtest)
{
	char	 chardev[3 * PATH_MAX], device[128], qtpath[PATH_MAX];
	char	 qtarg[3 * PATH_MAX];
	char	*argv[MAXARGS];
	int	 argc = 0, errfd = -1, i, ls = -1, nullfd = -1;
	pid_t	 pid;

	memset(q, 0, sizeof(*q));
	q->n = n;
	q->pid = -1;
	q->qt = -1;
	if ((q->in = malloc(4096)) == NULL)
		err(1, NULL);
	q->insize = 4096;
	snprintf(q->errpath, sizeof(q->errpath), "%s/qemu-%d.err", tmpdir, n);
	nqemus = n;	/* for cleanup, from now on */
	snprintf(qtpath, sizeof(qtpath), "%s/qtest-%d.sock", tmpdir, n);
	snprintf(chardev, sizeof(chardev), "socket,path=%s,id=iv",
	    optescape(qemusock));
	snprintf(qtarg, sizeof(qtarg), "unix:%s", optescape(qtpath));
	snprintf(device, sizeof(device),
	    "ivshmem-doorbell,chardev=iv,vectors=%u,addr=%d", nvectors,
	    PCI_SLOT);

	argv_add(argv, &argc, qemubin);
	for (i = 0; qemu_args[i] != NULL; i++)
		argv_add(argv, &argc, qemu_args[i]);
	if (qtest) {
		argv_add(argv, &argc, "-qtest");
		argv_add(argv, &argc, qtarg);
		argv_add(argv, &argc, "-qtest-log");
		argv_add(argv, &argc, "none");
	}
	argv_add(argv, &argc, "-chardev");
	argv_add(argv, &argc, chardev);
	argv_add(argv, &argc, "-device");
	argv_add(argv, &argc, device);

	if (qtest && (ls = listen_unix(qtpath)) == -1)
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
		/* Should vmtest die, QEMU dies with it. */
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
	if (!qtest)
		return (0);
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

/* Print what QEMU wrote to stderr since the last time. */
static void
qemu_showerr(struct qemu *q)
{
	char	 buf[4096];
	ssize_t	 n;
	int	 fd;

	if (q->errpath[0] == '\0' ||
	    (fd = open(q->errpath, O_RDONLY)) == -1)
		return;
	if (lseek(fd, q->errshown, SEEK_SET) != -1) {
		while ((n = read(fd, buf, sizeof(buf))) > 0) {
			fprintf(stderr, "--- qemu %d stderr:\n", q->n);
			fwrite(buf, 1, n, stderr);
			q->errshown += n;
		}
	}
	close(fd);
	if (q->pid == -1 && WIFEXITED(q->status))
		fprintf(stderr, "--- qemu %d exited %d\n", q->n,
		    WEXITSTATUS(q->status));
	else if (q->pid == -1 && WIFSIGNALED(q->status))
		fprintf(stderr, "--- qemu %d killed by signal %d\n", q->n,
		    WTERMSIG(q->status));
}

static int
qemu_errhas(struct qemu *q, const char *what)
{
	char	 buf[8192];
	ssize_t	 n;
	int	 fd;

	if ((fd = open(q->errpath, O_RDONLY)) == -1)
		return (0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return (0);
	buf[n] = '\0';
	return (strstr(buf, what) != NULL);
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
	int		i, is64[3];

	if (cfg_read(q, 0, &id) == -1) {
		check(0, q, "qemu %d: PCI 00:%02x.0 is 1af4:1110 (no answer)",
		    q->n, PCI_SLOT);
		return (-1);
	}
	check(id == PCI_ID, q, "qemu %d: PCI 00:%02x.0 is 1af4:1110 "
	    "(found %04x:%04x)", q->n, PCI_SLOT, id & 0xffff, id >> 16);
	if (id != PCI_ID)
		return (-1);

	for (i = 0; i < 3; i++)
		if (bar_probe(q, i, &size[i], &is64[i]) == -1)
			return (-1);
	fprintf(stderr, "qemu %d: BAR0 %ju bytes, BAR1 %ju bytes, "
	    "BAR2 %ju bytes%s\n", q->n, (uintmax_t)size[0],
	    (uintmax_t)size[1], (uintmax_t)size[2], is64[2] ? ", 64-bit" : "");
	check(is64[2] && size[2] == regions[0].size, q, "qemu %d: BAR2 is a "
	    "64-bit BAR of the window's size, %ju bytes", q->n,
	    (uintmax_t)regions[0].size);
	if (!is64[2] || size[0] > BAR1_ADDR - BAR0_ADDR ||
	    size[1] > BAR1_ADDR - BAR0_ADDR)
		return (-1);

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
	int		cap = 0, guard;

	if (cfg_read(q, 0x04, &v) == -1)
		return (-1);
	if (v >> 16 & PCI_STATUS_CAP) {
		if (cfg_read(q, 0x34, &v) == -1)
			return (-1);
		for (cap = v & 0xfc, guard = 0; cap != 0 && guard < 48;
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
	if (q->nvec > IVSHM_REGIONS_MAX) {
		check(0, q, "qemu %d: at most %d MSI-X vectors (has %u)",
		    q->n, IVSHM_REGIONS_MAX, q->nvec);
		return (-1);
	}
	if ((tab & 7) > 2 || (pba & 7) > 2) {
		check(0, q, "qemu %d: MSI-X table and PBA in a known BAR",
		    q->n);
		return (-1);
	}
	q->table = q->bar[tab & 7] + (tab & ~7U);
	q->pba = q->bar[pba & 7] + (pba & ~7U);
	fprintf(stderr, "qemu %d: MSI-X capability at 0x%x, %u vectors, "
	    "table BAR%u+0x%x, PBA BAR%u+0x%x\n", q->n, cap, q->nvec,
	    tab & 7, tab & ~7U, pba & 7, pba & ~7U);

	if (cfg_write16(q, cap + 2, (ctl | MSIX_ENABLE) & ~MSIX_FMASK) == -1 ||
	    cfg_read(q, cap, &v) == -1)
		return (-1);
	check((v >> 16 & (MSIX_ENABLE | MSIX_FMASK)) == MSIX_ENABLE &&
	    q->nvec == nvectors, q, "qemu %d: MSI-X enabled with one vector "
	    "per region (%u, expected %u)", q->n, q->nvec, nvectors);
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
	uint32_t	words[IVSHM_REGIONS_MAX / 32];
	char		list[IVSHM_REGIONS_MAX * 5 + 1], num[16];
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
		warnx("qemu %d: expected no vector pending, PBA has%s", q->n,
		    list);
	else
		warnx("qemu %d: expected only vector %d pending, PBA has%s",
		    q->n, vec, list[0] == '\0' ? " none" : list);
	return (-1);
}

/*
 * Unmask the vector with its message aimed at guest RAM.  QEMU sends
 * the pending message, a plain memory write when the address is not
 * the local APIC's, and clears the pending bit: that shows the vector
 * works and readies it for the next test.  Then mask it again.
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

static int
vm_start(struct qemu *q, int n)
{
	uint64_t	pos;
	int		nfailed, ok;

	ok = qemu_start(q, n, 1) == 0;
	check(ok, q, "qemu %d starts and answers qtest", n);
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
		pos = UINT64_MAX;
	check(pos == 1, q, "qemu %d: IVPosition is 1 (read %jd)", n,
	    (intmax_t)pos);
	return (0);
}

/*
 * The guest sees the header through BAR2: it must be the bytes in the
 * shm fd, and name each region where the client socket said.
 */
static void
vm_header(struct qemu *q)
{
	struct ivshm_header	 h;
	struct ivshm_region	 e;
	const char		*hex;
	unsigned char		*guest;
	unsigned int		 v, k;
	size_t			 i;
	int			 ok, r, valid;

	if ((guest = malloc(hdrsize)) == NULL)
		err(1, NULL);
	hex = qt_cmd(q, "read 0x%jx 0x%zx", (uintmax_t)q->bar[2], hdrsize);
	valid = hex != NULL && strncmp(hex, "0x", 2) == 0 &&
	    strlen(hex) == 2 + 2 * hdrsize;
	for (i = 0; valid && i < hdrsize; i++) {
		if (sscanf(hex + 2 + 2 * i, "%2x", &v) != 1)
			valid = 0;
		guest[i] = v;
	}
	ok = valid;
	if (ok && memcmp(guest, header, hdrsize) != 0) {
		for (i = 0; guest[i] == header[i]; i++)
			;
		warnx("qemu %d: header differs at byte %zu", q->n, i);
		ok = 0;
	}
	check(ok, q, "qemu %d: the header through BAR2 is the shm fd's, "
	    "%zu bytes", q->n, hdrsize);

	memcpy(&h, header, sizeof(h));
	for (r = 0; r < nregions; r++) {
		ok = 0;
		for (k = 0; valid && k < le32toh(h.region_count); k++) {
			memcpy(&e, guest + le32toh(h.region_offset) +
			    k * sizeof(e), sizeof(e));
			if (strncmp(e.name, regions[r].name,
			    sizeof(e.name)) == 0) {
				ok = le64toh(e.begin) == regions[r].begin &&
				    le64toh(e.end) == regions[r].end;
				break;
			}
		}
		check(ok, q, "qemu %d: region %s in the guest's header at "
		    "0x%jx-0x%jx as the client socket said", q->n,
		    regions[r].name, (uintmax_t)regions[r].begin,
		    (uintmax_t)regions[r].end);
	}
	free(guest);
}

static void
drain_g2h(void)
{
	uint64_t	v;
	int		r;

	for (r = 0; r < nregions; r++)
		while (readable(regions[r].g2h, 0) &&
		    read(regions[r].g2h, &v, sizeof(v)) == sizeof(v))
			;
}

/* The guest rings region r's doorbell: only r's g2h eventfd fires. */
static int
ring_g2h(struct qemu *q, int r)
{
	uint64_t	v;
	int		i, ok = 1;

	drain_g2h();
	if (qt_cmd(q, "writel 0x%jx 0x%x", (uintmax_t)(q->bar[0] + DOORBELL),
	    0 << 16 | regions[r].vector) == NULL)
		return (-1);
	if (!readable(regions[r].g2h, EVENT_TIMEOUT)) {
		warnx("qemu %d: doorbell %u: %s's g2h eventfd stays quiet",
		    q->n, regions[r].vector, regions[r].name);
		ok = 0;
	} else if (read(regions[r].g2h, &v, sizeof(v)) != sizeof(v) ||
	    v == 0) {
		warnx("qemu %d: %s's g2h eventfd readable but empty",
		    q->n, regions[r].name);
		ok = 0;
	}
	for (i = 0; i < nregions; i++) {
		if (i != r && readable(regions[i].g2h, 0)) {
			warnx("qemu %d: doorbell %u for %s also fired %s's "
			    "g2h eventfd", q->n, regions[r].vector,
			    regions[r].name, regions[i].name);
			ok = 0;
		}
	}
	drain_g2h();
	return (ok ? 0 : -1);
}

/* The host writes region r's h2g eventfd: only r's vector is pending. */
static int
ring_h2g(struct qemu *q, int r)
{
	uint64_t	one = 1;

	if (pba_expect(q, -1) == -1) {
		warnx("qemu %d: vectors pending before the test", q->n);
		return (-1);
	}
	if (write(regions[r].h2g, &one, sizeof(one)) != sizeof(one)) {
		warn("%s: write h2g eventfd", regions[r].name);
		return (-1);
	}
	if (pba_expect(q, regions[r].vector) == -1) {
		warnx("qemu %d: h2g of %s did not make exactly vector %u "
		    "pending", q->n, regions[r].name, regions[r].vector);
		return (-1);
	}
	if (readable(regions[r].h2g, 0)) {
		warnx("qemu %d: vector %u pending, yet %s's h2g eventfd "
		    "still holds a count", q->n, regions[r].vector,
		    regions[r].name);
		return (-1);
	}
	return (msix_deliver(q, regions[r].vector));
}

/* A write on either side is seen on the other, at both region ends. */
static int
share_mem(struct qemu *q, int r)
{
	volatile uint64_t	*first, *last;
	uint64_t		 tag, got, len;

	len = regions[r].end - regions[r].begin;
	first = (volatile uint64_t *)maps[r];
	last = (volatile uint64_t *)(maps[r] + len - 8);
	tag = 0x4956534800000000ULL | (uint64_t)q->n << 16 | (uint64_t)r;

	*first = 0;
	if (qt_cmd(q, "writeq 0x%jx 0x%jx", (uintmax_t)(q->bar[2] +
	    regions[r].begin), (uintmax_t)tag) == NULL)
		return (-1);
	if (*first != tag) {
		warnx("qemu %d: guest wrote 0x%jx at %s+0, host reads 0x%jx",
		    q->n, (uintmax_t)tag, regions[r].name,
		    (uintmax_t)*first);
		return (-1);
	}
	*last = ~tag;
	if (qt_num(q, &got, "readq 0x%jx", (uintmax_t)(q->bar[2] +
	    regions[r].end - 8)) == -1)
		return (-1);
	if (got != ~tag) {
		warnx("qemu %d: host wrote 0x%jx at the end of %s, guest "
		    "reads 0x%jx", q->n, (uintmax_t)~tag, regions[r].name,
		    (uintmax_t)got);
		return (-1);
	}
	return (0);
}

static void
vm_regions(struct qemu *q)
{
	int	r;

	for (r = 0; r < nregions; r++) {
		check(ring_g2h(q, r) == 0, q, "qemu %d: doorbell %u fires "
		    "only %s's g2h eventfd", q->n, regions[r].vector,
		    regions[r].name);
		check(ring_h2g(q, r) == 0, q, "qemu %d: %s's h2g eventfd "
		    "makes only MSI-X vector %u pending", q->n,
		    regions[r].name, regions[r].vector);
		check(share_mem(q, r) == 0, q, "qemu %d: %s memory is shared "
		    "both ways", q->n, regions[r].name);
	}
}

/*
 * A second VM while the first is attached must be refused with a
 * message QEMU finds fatal, not left hanging; the first carries on.
 */
static void
vm_refused(struct qemu *q1, struct qemu *q2)
{
	int	exited = 0, ok, r;

	if (qemu_start(q2, 2, 0) == 0) {
		if (!(exited = qemu_wait(q2, EXIT_TIMEOUT))) {
			warnx("qemu 2 still runs after %d ms", EXIT_TIMEOUT);
			qemu_kill(q2);
		}
	}
	ok = exited && WIFEXITED(q2->status) && WEXITSTATUS(q2->status) != 0 &&
	    qemu_errhas(q2, "invalid ID");
	check(ok, q2, "qemu 2, a second VM, exits non-zero saying "
	    "\"invalid ID\"");
	if (ok)
		qemu_showerr(q2);	/* to show the message in the log */

	check(!qemu_exited(q1), q1, "qemu 1 still runs");
	for (r = 0; r < nregions; r++)
		check(ring_g2h(q1, r) == 0 && ring_h2g(q1, r) == 0, q1,
		    "qemu 1: %s rings both ways after qemu 2 was refused",
		    regions[r].name);
}

/*
 * The VM dies without warning and another takes its place: the server
 * must notice, accept the new one as peer 1 and give it the same
 * eventfds, so the client's fds work on with no reconnect.
 */
static void
vm_restart(struct qemu *q1, struct qemu *q3)
{
	if (q1->pid != -1) {
		qemu_kill(q1);
		check(q1->pid == -1 && WIFSIGNALED(q1->status) &&
		    WTERMSIG(q1->status) == SIGKILL, q1, "qemu 1 killed");
	}
	fprintf(stderr, "qemu 3: the client keeps its connection and fds\n");
	if (vm_start(q3, 3) == -1)
		return;
	vm_header(q3);
	vm_regions(q3);
}

/*
 * Get every region on one connection and check what came.  Without
 * that there is nothing to test, so a failure here ends the test.
 */
static int
client_setup(int argc, char *argv[])
{
	struct ivshm_header	h;
	struct stat		st, st0;
	int			i, ok, rv, s;

	if ((regions = calloc(argc, sizeof(*regions))) == NULL ||
	    (maps = calloc(argc, sizeof(*maps))) == NULL)
		err(1, NULL);
	s = ivclient_connect(clientsock, IO_TIMEOUT);
	check(s != -1, NULL, "client connects to the client socket");
	if (s == -1)
		return (-1);
	for (i = 0; i < argc; i++) {
		rv = ivclient_request(s, argv[i], &regions[i], IO_TIMEOUT);
		ok = rv == 1 && ivclient_check(&regions[i]) == 0 &&
		    (maps[i] = ivclient_map(&regions[i])) != NULL;
		if (rv == 0)
			warnx("%s: unknown region", argv[i]);
		check(ok, NULL, "client gets region %s, its fds and header "
		    "entry check out", argv[i]);
		if (!ok)
			return (-1);
		nregions = i + 1;
	}
	close(s);

	ok = fstat(regions[0].shm, &st0) == 0;
	for (i = 1; ok && i < nregions; i++)
		ok = fstat(regions[i].shm, &st) == 0 &&
		    st.st_dev == st0.st_dev && st.st_ino == st0.st_ino;
	check(ok, NULL, "every region comes with the same shm");

	/* The largest table is some 10K: more is not an ivserver header. */
	nvectors = regions[0].nregions;
	ok = pread(regions[0].shm, &h, sizeof(h), 0) == (ssize_t)sizeof(h) &&
	    (hdrsize = le32toh(h.header_size)) <= 65536 &&
	    (header = malloc(hdrsize)) != NULL &&
	    pread(regions[0].shm, header, hdrsize, 0) == (ssize_t)hdrsize;
	check(ok, NULL, "the header is read from the shm, %zu bytes", hdrsize);
	return (ok ? 0 : -1);
}

int
main(int argc, char *argv[])
{
	struct sigaction	 sa;
	const char		*tmp;
	int			 ch;

	while ((ch = getopt(argc, argv, "Q:q:s:")) != -1) {
		switch (ch) {
		case 'Q':
			qemubin = optarg;
			break;
		case 'q':
			qemusock = optarg;
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
	if (qemusock == NULL || clientsock == NULL || argc == 0)
		usage();

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (ch = 0; ch < NQEMU; ch++) {
		qemus[ch].pid = -1;
		qemus[ch].qt = -1;
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
	if ((size_t)snprintf(tmpdir, sizeof(tmpdir), "%s/vmtest.XXXXXXXX",
	    tmp) >= sizeof(tmpdir))
		errx(1, "TMPDIR %s too long", tmp);
	if (mkdtemp(tmpdir) == NULL)
		err(1, "mkdtemp %s", tmpdir);
	atexit(cleanup);

	if (client_setup(argc, argv) == -1)
		return (1);
	if (vm_start(&qemus[0], 1) == 0) {
		vm_header(&qemus[0]);
		vm_regions(&qemus[0]);
		vm_refused(&qemus[0], &qemus[1]);
	}
	vm_restart(&qemus[0], &qemus[2]);
	return (failed ? 1 : 0);
}
