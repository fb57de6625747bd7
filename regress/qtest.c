/*
 * qtest: drive a QEMU with no guest through the qtest line protocol,
 * for vmtest and peertest.  See qtest.h.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib.h"
#include "qtest.h"

#define PCI_ID		0x11101af4	/* 1af4:1110, ivshmem */
#define PCI_CMD_MEM	0x0002
#define PCI_CMD_MASTER	0x0004
#define PCI_STATUS_CAP	0x0010
#define PCI_CAP_MSIX	0x11
#define MSIX_ENABLE	0x8000
#define MSIX_FMASK	0x4000
#define MSIX_MASKED	0x1		/* in an entry's vector control */

/*
 * Where the BARs go: BAR0 and BAR1 in the 32-bit hole, BAR2 at 4G or
 * higher so that the 64-bit BAR really needs its high half.  Pending
 * MSI-X messages are sent to plain guest RAM at SCRATCH.
 */
#define BAR0_ADDR	0xe0000000ULL
#define BAR1_ADDR	0xe0100000ULL
#define BAR2_MIN	0x100000000ULL
#define SCRATCH		0x10000ULL

static const char *optescape(const char *);
static int	 listen_unix(const char *);
static int	 qvm_argv(char **, const struct qvm_conf *, int, const char *);
static int	 qvm_accept(struct qvm *, int);
static int	 cfg_read(struct qvm *, int, uint32_t *);
static int	 cfg_write(struct qvm *, int, uint32_t);
static int	 cfg_write16(struct qvm *, int, uint16_t);
static int	 bar_probe(struct qvm *, int, uint64_t *, int *);
static int	 bar_probe_all(struct qvm *, uint64_t *, int *);
static int	 bar_map(struct qvm *, uint64_t);
static int	 pci_setup(struct qvm *, const struct qvm_conf *);
static int	 msix_find(struct qvm *, int *, uint32_t *, uint32_t *,
		    uint32_t *);
static int	 msix_enable(struct qvm *, int, uint32_t, uint32_t, uint32_t,
		    int *);
static int	 msix_setup(struct qvm *, const struct qvm_conf *);
static int	 pba_read(struct qvm *, uint32_t *);

/*
 * -S: no guest CPU ever runs.  TCG, as KVM may be missing and some
 * builds (Debian's 7.2) have no qtest accelerator.
 */
static const char *const	 qemu_args[] = {
	"-M", "pc", "-accel", "tcg", "-S", "-nodefaults", "-display", "none",
	"-m", "64", NULL
};

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

	if (unix_addr(&sun, path) == -1) {
		warn("%s", path);
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

/* QEMU's command line, with qtest on qtpath or without: argc. */
static int
qvm_argv(char **argv, const struct qvm_conf *c, int qtest,
    const char *qtpath)
{
	char	 chardev[3 * PATH_MAX], device[128], qtarg[3 * PATH_MAX];
	int	 argc = 0, i;

	snprintf(chardev, sizeof(chardev), "socket,path=%s,id=iv",
	    optescape(c->sock));
	snprintf(qtarg, sizeof(qtarg), "unix:%s", optescape(qtpath));
	snprintf(device, sizeof(device),
	    "ivshmem-doorbell,chardev=iv,vectors=%u,addr=%d", c->vectors,
	    PCI_SLOT);
	argv_add(argv, &argc, c->bin);
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
	return (argc);
}

/*
 * Start QEMU number n, with qtest or without: a QEMU the server should
 * refuse needs none.  Its stderr goes to a file, shown on failure.
 */
int
qvm_start(struct qvm *q, int n, int qtest, const struct qvm_conf *c)
{
	char	 qtpath[PATH_MAX];
	char	*argv[ARGV_MAX];
	int	 argc, errfd = -1, ls = -1, nullfd = -1, rv = -1;

	memset(q, 0, sizeof(*q));
	q->n = n;
	q->id = -1;
	q->pid = -1;
	q->qt = -1;
	if ((q->in = malloc(4096)) == NULL)
		err(1, NULL);
	q->insize = 4096;
	snprintf(q->errpath, sizeof(q->errpath), "%s/qemu-%d.err", c->dir, n);
	snprintf(qtpath, sizeof(qtpath), "%s/qtest-%d.sock", c->dir, n);
	argc = qvm_argv(argv, c, qtest, qtpath);

	path_add(q->errpath);
	if (qtest) {
		path_add(qtpath);
		if ((ls = listen_unix(qtpath)) == -1)
			goto done;
	}
	errfd = open(q->errpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0600);
	nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (errfd == -1 || nullfd == -1) {
		warn("%s", q->errpath);
		goto done;
	}
	if ((q->pid = spawn(argv, nullfd, errfd, errfd)) == -1)
		goto done;
	q->deadline = now_ms() + c->lifetime;
	if (qtest && qvm_accept(q, ls) == -1)
		qvm_kill(q);
	else
		rv = 0;
done:
	argv_free(argv, argc);
	if (errfd != -1)
		close(errfd);
	if (nullfd != -1)
		close(nullfd);
	if (ls != -1) {
		close(ls);
		unlink(qtpath);
	}
	return (rv);
}

/* Wait for QEMU's qtest connection, and notice if QEMU dies first. */
static int
qvm_accept(struct qvm *q, int ls)
{
	long long	deadline;

	deadline = now_ms() + START_TIMEOUT;
	while (ms_left(deadline) > 0) {
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
		if (qvm_exited(q)) {
			warnx("qemu %d exited before it spoke qtest", q->n);
			return (-1);
		}
	}
	warnx("qemu %d: no qtest connection in %d ms", q->n, START_TIMEOUT);
	return (-1);
}

int
qvm_exited(struct qvm *q)
{
	return (reap(&q->pid, &q->status, 0));
}

int
qvm_wait(struct qvm *q, int ms)
{
	return (reap(&q->pid, &q->status, ms));
}

void
qvm_kill(struct qvm *q)
{
	if (q->qt != -1) {
		close(q->qt);
		q->qt = -1;
	}
	if (q->pid <= 0)
		return;
	kill(q->pid, SIGKILL);
	if (!qvm_wait(q, IO_TIMEOUT))
		warnx("qemu %d (pid %ld) survives SIGKILL", q->n,
		    (long)q->pid);
}

/* Print what QEMU wrote to stderr since the last time. */
void
qvm_showerr(struct qvm *q)
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

/* Whether what QEMU wrote to stderr holds what. */
int
qvm_errhas(struct qvm *q, const char *what)
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

/* A check that shows what QEMU q said when it fails. */
int
qvm_check(int ok, struct qvm *q, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	vcheck(ok, fmt, ap);
	va_end(ap);
	if (!ok && q != NULL)
		qvm_showerr(q);
	return (ok);
}

/*
 * Send one qtest command and return its reply after "OK", or NULL.  A
 * QEMU that does not answer in time or has lived too long is killed.
 */
const char *
qt_cmd(struct qvm *q, const char *fmt, ...)
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
		if (fd_wait(q->qt, POLLOUT, deadline) != 1)
			goto timeout;
		if ((n = write(q->qt, cmd + off, len - off)) != -1)
			continue;
		if (errno != EAGAIN && errno != EINTR) {
			warn("qemu %d: qtest write", q->n);
			goto dead;
		}
		n = 0;
	}
	cmd[len - 1] = '\0';

	while ((nl = memchr(q->in, '\n', q->inlen)) == NULL) {
		if (q->inlen == q->insize) {
			if ((q->in = realloc(q->in, q->insize + 4096)) == NULL)
				err(1, NULL);
			q->insize += 4096;
		}
		if (fd_wait(q->qt, POLLIN, deadline) != 1)
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
	qvm_kill(q);
	return (NULL);
}

int
qt_num(struct qvm *q, uint64_t *v, const char *fmt, ...)
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
cfg_read(struct qvm *q, int reg, uint32_t *v)
{
	uint64_t	x;

	if (qt_cmd(q, "outl 0xcf8 0x%x", CFG_ADDR(reg)) == NULL ||
	    qt_num(q, &x, "inl 0xcfc") == -1)
		return (-1);
	*v = x;
	return (0);
}

static int
cfg_write(struct qvm *q, int reg, uint32_t v)
{
	if (qt_cmd(q, "outl 0xcf8 0x%x", CFG_ADDR(reg)) == NULL ||
	    qt_cmd(q, "outl 0xcfc 0x%x", v) == NULL)
		return (-1);
	return (0);
}

static int
cfg_write16(struct qvm *q, int reg, uint16_t v)
{
	if (qt_cmd(q, "outl 0xcf8 0x%x", CFG_ADDR(reg)) == NULL ||
	    qt_cmd(q, "outw 0x%x 0x%x", 0xcfc + (reg & 2), v) == NULL)
		return (-1);
	return (0);
}

/* Size a memory BAR the usual way: write all ones, see what sticks. */
static int
bar_probe(struct qvm *q, int bar, uint64_t *size, int *is64)
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

/* Size BAR0 to BAR2 and say what they are. */
static int
bar_probe_all(struct qvm *q, uint64_t *size, int *is64)
{
	int	i;

	for (i = 0; i < 3; i++)
		if (bar_probe(q, i, &size[i], &is64[i]) == -1)
			return (-1);
	fprintf(stderr, "qemu %d: BAR0 %ju bytes, BAR1 %ju bytes, "
	    "BAR2 %ju bytes%s\n", q->n, (uintmax_t)size[0],
	    (uintmax_t)size[1], (uintmax_t)size[2], is64[2] ? ", 64-bit" : "");
	return (0);
}

/*
 * Program the BARs as firmware would, BAR2 of size2 bytes, and turn on
 * memory decoding and bus mastering (MSI-X messages are bus master
 * writes).
 */
static int
bar_map(struct qvm *q, uint64_t size2)
{
	q->bar[0] = BAR0_ADDR;
	q->bar[1] = BAR1_ADDR;
	q->bar[2] = size2 > BAR2_MIN ? size2 : BAR2_MIN;
	if (cfg_write(q, 0x10, q->bar[0]) == -1 ||
	    cfg_write(q, 0x14, q->bar[1]) == -1 ||
	    cfg_write(q, 0x18, q->bar[2] & 0xffffffff) == -1 ||
	    cfg_write(q, 0x1c, q->bar[2] >> 32) == -1 ||
	    cfg_write16(q, 0x04, PCI_CMD_MEM | PCI_CMD_MASTER) == -1)
		return (-1);
	return (0);
}

/*
 * Find the MSI-X capability: its offset in *cap, 0 if there is none,
 * else its message control, table and PBA registers, and q->nvec.
 */
static int
msix_find(struct qvm *q, int *cap, uint32_t *ctl, uint32_t *tab,
    uint32_t *pba)
{
	uint32_t	v;
	int		guard = 0;

	*cap = 0;
	if (cfg_read(q, 0x04, &v) == -1)
		return (-1);
	if (v >> 16 & PCI_STATUS_CAP) {
		if (cfg_read(q, 0x34, &v) == -1)
			return (-1);
		for (*cap = v & 0xfc; *cap != 0 && guard < 48;
		    *cap = v >> 8 & 0xfc, guard++) {
			if (cfg_read(q, *cap, &v) == -1)
				return (-1);
			if ((v & 0xff) == PCI_CAP_MSIX)
				break;
		}
	}
	if (*cap == 0 || guard == 48) {
		*cap = 0;
		return (0);
	}
	*ctl = v >> 16;
	if (cfg_read(q, *cap + 4, tab) == -1 ||
	    cfg_read(q, *cap + 8, pba) == -1)
		return (-1);
	q->nvec = (*ctl & 0x7ff) + 1;
	return (0);
}

/*
 * Enable MSI-X with the function unmasked but every entry masked, as
 * at reset: an event then sets the vector's bit in the PBA, which can
 * be read, instead of sending a message.  The table and PBA must be in
 * BAR0 to BAR2.  *on tells whether MSI-X reads back enabled.
 */
static int
msix_enable(struct qvm *q, int cap, uint32_t ctl, uint32_t tab,
    uint32_t pba, int *on)
{
	uint32_t	v;

	q->table = q->bar[tab & 7] + (tab & ~7U);
	q->pba = q->bar[pba & 7] + (pba & ~7U);
	if (cfg_write16(q, cap + 2, (ctl | MSIX_ENABLE) & ~MSIX_FMASK) == -1 ||
	    cfg_read(q, cap, &v) == -1)
		return (-1);
	*on = (v >> 16 & (MSIX_ENABLE | MSIX_FMASK)) == MSIX_ENABLE;
	return (0);
}

/*
 * Program the device as firmware would: BARs, memory decoding and bus
 * mastering (MSI-X messages are bus master writes), then MSI-X.  What
 * the device must be is checked on the way.
 */
static int
pci_setup(struct qvm *q, const struct qvm_conf *c)
{
	uint64_t	size[3];
	uint32_t	id;
	int		is64[3], ok;

	if (cfg_read(q, 0, &id) == -1) {
		qvm_check(0, q, "qemu %d: PCI 00:%02x.0 is 1af4:1110 (no "
		    "answer)", q->n, PCI_SLOT);
		return (-1);
	}
	if (!qvm_check(id == PCI_ID, q, "qemu %d: PCI 00:%02x.0 is 1af4:1110 "
	    "(found %04x:%04x)", q->n, PCI_SLOT, id & 0xffff, id >> 16))
		return (-1);

	if (bar_probe_all(q, size, is64) == -1)
		return (-1);
	if (c->winsize != 0)
		ok = qvm_check(is64[2] && size[2] == c->winsize, q, "qemu %d: "
		    "BAR2 is a 64-bit BAR of the window's size, %ju bytes",
		    q->n, (uintmax_t)c->winsize);
	else
		ok = qvm_check(is64[2], q, "qemu %d: BAR2 is a 64-bit BAR "
		    "(%ju bytes)", q->n, (uintmax_t)size[2]);
	if (!ok)
		return (-1);
	/* Where BAR0 and BAR1 go, there is room for so much. */
	if (size[0] > BAR1_ADDR - BAR0_ADDR ||
	    size[1] > BAR1_ADDR - BAR0_ADDR) {
		qvm_check(0, q, "qemu %d: BAR0 and BAR1 of at most %ju bytes",
		    q->n, (uintmax_t)(BAR1_ADDR - BAR0_ADDR));
		return (-1);
	}

	if (bar_map(q, size[2]) == -1)
		return (-1);
	return (msix_setup(q, c));
}

/* Enable MSI-X, with every entry masked, and check it. */
static int
msix_setup(struct qvm *q, const struct qvm_conf *c)
{
	uint32_t	ctl, tab, pba;
	int		cap, on = 0;

	if (msix_find(q, &cap, &ctl, &tab, &pba) == -1)
		return (-1);
	if (cap == 0) {
		qvm_check(0, q, "qemu %d: has an MSI-X capability", q->n);
		return (-1);
	}
	if ((tab & 7) > 2 || (pba & 7) > 2) {
		qvm_check(0, q, "qemu %d: MSI-X table and PBA in a known BAR",
		    q->n);
		return (-1);
	}
	fprintf(stderr, "qemu %d: MSI-X capability at 0x%x, %u vectors, "
	    "table BAR%u+0x%x, PBA BAR%u+0x%x\n", q->n, cap, q->nvec,
	    tab & 7, tab & ~7U, pba & 7, pba & ~7U);

	/* The PBA is read into MAXVEC bits: never enable more. */
	if (q->nvec == c->vectors &&
	    msix_enable(q, cap, ctl, tab, pba, &on) == -1)
		return (-1);
	if (!qvm_check(on, q, "qemu %d: MSI-X enabled with %u vectors (has "
	    "%u)", q->n, c->vectors, q->nvec))
		return (-1);
	return (0);
}

/*
 * Start QEMU number n with qtest, set its device up and check that its
 * IVPosition is want.  Each step is a check; -1 if the VM is unusable.
 */
int
qvm_up(struct qvm *q, int n, const struct qvm_conf *c, long want)
{
	uint64_t	pos;
	int		nfailed;

	if (!qvm_check(qvm_start(q, n, 1, c) == 0, q, "qemu %d starts and "
	    "answers qtest", n))
		return (-1);
	/* Setup fails quietly only on qtest errors: say so then. */
	nfailed = check_failures();
	if (pci_setup(q, c) == -1) {
		if (check_failures() == nfailed)
			qvm_check(0, q, "qemu %d: the PCI device is set up", n);
		return (-1);
	}
	if (qt_num(q, &pos, "readl 0x%jx", (uintmax_t)(q->bar[0] +
	    IVPOSITION)) == -1) {
		qvm_check(0, q, "qemu %d: IVPosition is %ld (no answer)", n,
		    want);
		return (-1);
	}
	q->id = (long)pos;
	qvm_check(q->id == want, q, "qemu %d: IVPosition is %ld (read %ld)", n,
	    want, q->id);
	return (0);
}

/* Read the pending bits of all vectors, 32 to a word. */
static int
pba_read(struct qvm *q, uint32_t *words)
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
int
pba_expect(struct qvm *q, int vec)
{
	uint32_t	words[MAXVEC / 32];
	char		list[MAXVEC * 5 + 1], num[16], who[64];
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
	if (q->id != -1)
		snprintf(who, sizeof(who), "qemu %d (ID %ld)", q->n, q->id);
	else
		snprintf(who, sizeof(who), "qemu %d", q->n);
	if (vec == -1)
		warnx("%s: expected no vector pending, PBA has%s", who, list);
	else
		warnx("%s: expected only vector %d pending, PBA has%s", who,
		    vec, list[0] == '\0' ? " none" : list);
	return (-1);
}

/*
 * Unmask the vector with its message aimed at guest RAM.  QEMU sends
 * the pending message, a plain memory write when the address is not
 * the local APIC's, and clears the pending bit: that shows the vector
 * works and readies it for the next test.  Then mask it again.
 */
int
msix_deliver(struct qvm *q, unsigned int vec)
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
