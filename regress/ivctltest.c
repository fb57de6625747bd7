/*
 * ivctltest: ivctl against a live ivserver and real QEMUs (qtest).
 *
 *	ivctltest -c ivctl -q qemu-socket -s client-socket -n vectors
 *	    [-Q qemu] [-x example] region vector
 *	ivctltest -P -c ivctl -q qemu-socket -n vectors [-Q qemu]
 *
 * Host mode: ivctl watch sees a VM attach, die of SIGKILL and another
 * attach, in order, with the pids and generations status reports;
 * ivctl ring raises the region's MSI-X vector in QEMU; a doorbell the
 * guest rings wakes ivctl wait; what ivctl writes the guest reads in
 * BAR 2, and the other way round; the example program of libivshm(3)
 * (-x) answers a doorbell with "pong" and a ring.  Peer mode (the server must be fresh,
 * so that ivctl gets ID 0): ivctl -P peer sees two QEMUs join, rings
 * their vectors, one or all, hears their doorbells and sees one leave.
 *
 * As in vmtest, QEMU runs with -S and this program plays the guest.
 */

#include <sys/types.h>
#include <sys/wait.h>

#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../ivshm.h"
#include "lib.h"
#include "qtest.h"

#define WATCHDOG	240		/* s: the whole test */
#define QEMU_LIFETIME	200000		/* ms: any one QEMU */
#define LINE_TIMEOUT	20000		/* ms: a line from ivctl */

/* An ivctl run: its stdin and stdout on pipes. */
struct child {
	pid_t		 pid;
	int		 status;
	int		 in;
	int		 out;
	char		 buf[8192];
	size_t		 len;
};

static void	 usage(void);
static int	 child_start(struct child *, char **);
static int	 child_line(struct child *, char *, size_t);
static int	 child_end(struct child *, int);
static int	 ivctl(char *, size_t, const char *, size_t, ...);
static int	 has_line(const char *, const char *);
static int	 doorbell(struct qvm *, long, unsigned int);
static int	 holds_eventfd(pid_t);
static void	 host_watch_attach(struct child *, struct qvm *, uint64_t *);
static void	 host_ring(struct qvm *);
static void	 host_wait(struct qvm *);
static void	 host_rw(struct qvm *);
static void	 host_example(struct qvm *);
static void	 host_main(void);
static void	 peer_main(void);

static struct qvm_conf		 conf = {
	"qemu-system-x86_64", NULL, NULL, 1, 0, QEMU_LIFETIME
};
static const char		*ivctlbin, *clientsock, *region, *example;
static struct ivshm_port	*port;
static unsigned int		 vector;
static char			 tmpdir[256];

static void
usage(void)
{
	fprintf(stderr, "usage: %s [-P] -c ivctl -q qemu-socket "
	    "[-s client-socket] -n vectors [-Q qemu] [-x example]\n"
	    "\t[region vector]\n",
	    getprogname());
	exit(1);
}

static int
child_start(struct child *c, char **argv)
{
	int	 in[2], out[2];

	memset(c, 0, sizeof(*c));
	if (pipe2(in, O_CLOEXEC) == -1 || pipe2(out, O_CLOEXEC) == -1)
		err(1, "pipe");
	c->pid = spawn(argv, in[0], out[1], STDERR_FILENO);
	close(in[0]);
	close(out[1]);
	c->in = in[1];
	c->out = out[0];
	return (c->pid == -1 ? -1 : 0);
}

/* The next line, without its newline, within LINE_TIMEOUT: 1, or 0. */
static int
child_line(struct child *c, char *line, size_t size)
{
	long long	 deadline = now_ms() + LINE_TIMEOUT;
	char		*nl;
	size_t		 k;
	ssize_t		 n;

	for (;;) {
		if ((nl = memchr(c->buf, '\n', c->len)) != NULL) {
			k = nl - c->buf;
			snprintf(line, size, "%.*s", (int)k, c->buf);
			memmove(c->buf, nl + 1, c->len - k - 1);
			c->len -= k + 1;
			return (1);
		}
		if (c->len == sizeof(c->buf) ||
		    fd_wait(c->out, POLLIN, deadline) != 1)
			break;
		n = read(c->out, c->buf + c->len, sizeof(c->buf) - c->len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		c->len += n;
	}
	warnx("ivctl pid %ld: no line within %d ms", (long)c->pid,
	    LINE_TIMEOUT);
	line[0] = '\0';
	return (0);
}

/* Its exit status, once it has exited within ms, or -1 (killed). */
static int
child_end(struct child *c, int ms)
{
	if (c->in != -1)
		close(c->in);
	c->in = -1;
	if (reap(&c->pid, &c->status, ms) != 1) {
		kill(c->pid, SIGKILL);
		reap(&c->pid, &c->status, LINE_TIMEOUT);
		close(c->out);
		return (-1);
	}
	close(c->out);
	return (WIFEXITED(c->status) ? WEXITSTATUS(c->status) : -1);
}

/*
 * Run ivctl -s clientsock with the arguments that follow, up to NULL,
 * with input on its stdin: its exit status, and its output in out.
 */
static int
ivctl(char *out, size_t outsize, const char *input, size_t inlen, ...)
{
	struct child	 c;
	char		*argv[16];
	const char	*a;
	va_list		 ap;
	size_t		 len = 0;
	ssize_t		 n;
	int		 argc = 0;

	argv[argc++] = (char *)(uintptr_t)ivctlbin;
	argv[argc++] = (char *)(uintptr_t)"-s";
	argv[argc++] = (char *)(uintptr_t)clientsock;
	va_start(ap, inlen);
	while ((a = va_arg(ap, const char *)) != NULL && argc < 15)
		argv[argc++] = (char *)(uintptr_t)a;
	va_end(ap);
	argv[argc] = NULL;
	if (child_start(&c, argv) == -1)
		return (-1);
	if (inlen > 0 && write(c.in, input, inlen) != (ssize_t)inlen)
		warn("ivctl stdin");
	close(c.in);
	c.in = -1;
	while (len + 1 < outsize &&
	    fd_wait(c.out, POLLIN, now_ms() + LINE_TIMEOUT) == 1 &&
	    (n = read(c.out, out + len, outsize - 1 - len)) > 0)
		len += n;
	out[len] = '\0';
	return (child_end(&c, LINE_TIMEOUT));
}

static int
has_line(const char *out, const char *line)
{
	const char	*p = out;
	size_t		 n = strlen(line);

	for (; p != NULL && *p != '\0'; p = strchr(p, '\n'), p = p ? p + 1 : p)
		if (strncmp(p, line, n) == 0 && (p[n] == '\n' || p[n] == '\0'))
			return (1);
	return (0);
}

static int
doorbell(struct qvm *src, long dest, unsigned int vec)
{
	return (qt_cmd(src, "writel 0x%jx 0x%lx",
	    (uintmax_t)(src->bar[0] + DOORBELL), (unsigned long)dest << 16 |
	    vec) == NULL ? -1 : 0);
}

/* Whether the process holds an eventfd: ivctl wait has its region. */
static int
holds_eventfd(pid_t pid)
{
	char	 path[64], link[64];
	ssize_t	 n;
	int	 fd;

	for (fd = 0; fd < 64; fd++) {
		snprintf(path, sizeof(path), "/proc/%ld/fd/%d", (long)pid, fd);
		if ((n = readlink(path, link, sizeof(link) - 1)) <= 0)
			continue;
		link[n] = '\0';
		if (strcmp(link, "anon_inode:[eventfd]") == 0)
			return (1);
	}
	return (0);
}

/* A VM attaches: watch says so, with its pid, and status agrees. */
static void
host_watch_attach(struct child *w, struct qvm *q, uint64_t *gen)
{
	char		 line[256], out[1024], want[64];
	uintmax_t	 pid = 0, g = 0;
	unsigned int	 peer = 0;
	int		 ok;

	ok = child_line(w, line, sizeof(line)) &&
	    sscanf(line, "attach peer %u pid %ju generation %ju", &peer, &pid,
	    &g) == 3;
	check(ok && peer == 1 && pid == (uintmax_t)q->pid &&
	    g == *gen + 1 && g % 2 == 1, "watch sees qemu %d attach "
	    "as peer 1, pid %ld, generation %ju (\"%s\")", q->n, (long)q->pid,
	    (uintmax_t)*gen + 1, line);
	*gen = g;
	ok = ivctl(out, sizeof(out), NULL, 0, "status", NULL) == 0;
	snprintf(want, sizeof(want), "vm_pid %ld", (long)q->pid);
	check(ok && has_line(out, "vm attached") &&
	    has_line(out, "vm_peer 1") && has_line(out, want),
	    "status says qemu %d is attached, %s", q->n, want);
	if (!ok)
		fprintf(stderr, "%s", out);
}

static void
host_ring(struct qvm *q)
{
	char	 out[256], v[16];

	check(pba_expect(q, -1) == 0, "nothing pending before a ring");
	check(ivctl(out, sizeof(out), NULL, 0, "ring", region, NULL) == 0,
	    "ivctl ring %s exits 0", region);
	check(pba_expect(q, (int)vector) == 0, "it pends vector %u in "
	    "QEMU, and no other", vector);
	check(msix_deliver(q, vector) == 0, "which QEMU delivers");
	snprintf(v, sizeof(v), "%u", vector);
	check(ivctl(out, sizeof(out), NULL, 0, "ring", region, "2", NULL) ==
	    0 && pba_expect(q, (int)vector) == 0 && msix_deliver(q,
	    vector) == 0, "ivctl ring %s 2 pends it again", region);
}

static void
host_wait(struct qvm *q)
{
	struct child	 c;
	char		 line[64], out[256], *argv[8];
	long long	 deadline;
	int		 rv;

	argv[0] = (char *)(uintptr_t)ivctlbin;
	argv[1] = (char *)(uintptr_t)"-s";
	argv[2] = (char *)(uintptr_t)clientsock;
	argv[3] = (char *)(uintptr_t)"wait";
	argv[4] = (char *)(uintptr_t)region;
	argv[5] = (char *)(uintptr_t)"-t";
	argv[6] = (char *)(uintptr_t)"60000";
	argv[7] = NULL;
	if (child_start(&c, argv) == -1)
		return;
	deadline = now_ms() + LINE_TIMEOUT;
	while (!holds_eventfd(c.pid) && ms_left(deadline) > 0)
		sleep_ms(5);
	check(!readable(c.out, 50), "ivctl wait waits");
	check(doorbell(q, 0, vector) == 0, "qemu %d rings vector %u",
	    q->n, vector);
	check(child_line(&c, line, sizeof(line)) && strcmp(line, "1") == 0,
	    "the doorbell wakes ivctl wait, which prints 1 (\"%s\")",
	    line);
	check(child_end(&c, LINE_TIMEOUT) == 0, "and exits 0");

	rv = ivctl(out, sizeof(out), NULL, 0, "wait", region, "-t", "100",
	    NULL);
	check(rv == 1 && out[0] == '\0', "ivctl wait -t 100 with no "
	    "ring exits 1 (%d)", rv);

	/* Rings while no one waits are counted, not lost. */
	out[0] = '\0';
	rv = doorbell(q, 0, vector) == 0 && doorbell(q, 0, vector) == 0 &&
	    doorbell(q, 0, vector) == 0 && ivctl(out, sizeof(out), NULL, 0,
	    "wait", region, "-t", "20000", NULL) == 0;
	check(rv && strcmp(out, "3\n") == 0, "three doorbells before ivctl "
	    "wait: it prints 3 (\"%.*s\")", (int)strcspn(out, "\n"), out);
}

/* ivctl writes, the guest reads; the guest writes, ivctl reads. */
static void
host_rw(struct qvm *q)
{
	char		 out[256], data[32], hex[64], off[32];
	const char	*got;
	size_t		 i;
	int		 rv;

	snprintf(data, sizeof(data), "ivctl %010ld", (long)getpid());
	rv = ivctl(out, sizeof(out), data, 16, "write", region, "0x100",
	    NULL);
	check(rv == 0, "ivctl write %s 0x100 exits 0", region);
	got = qt_cmd(q, "read 0x%jx 16", (uintmax_t)(q->bar[2] +
	    port->begin + 0x100));
	strlcpy(hex, "0x", sizeof(hex));
	for (i = 0; i < 16; i++)
		snprintf(hex + 2 + 2 * i, sizeof(hex) - 2 - 2 * i, "%02x",
		    (unsigned char)data[i]);
	check(got != NULL && strcmp(got, hex) == 0, "the guest reads "
	    "what it wrote in BAR2 (%s)", got ? got : "no answer");

	snprintf(data, sizeof(data), "guest %010ld", (long)q->pid);
	for (i = 0; i < 16; i++)
		snprintf(hex + 2 + 2 * i, sizeof(hex) - 2 - 2 * i, "%02x",
		    (unsigned char)data[i]);
	check(qt_cmd(q, "write 0x%jx 16 %s", (uintmax_t)(q->bar[2] +
	    port->begin + 0x200), hex) != NULL, "the guest writes "
	    "BAR2");
	rv = ivctl(out, sizeof(out), NULL, 0, "read", region, "0x200", "16",
	    NULL);
	check(rv == 0 && memcmp(out, data, 16) == 0, "ivctl read %s "
	    "0x200 16 gets it, raw", region);

	snprintf(off, sizeof(off), "%zu", port->len);
	rv = ivctl(out, sizeof(out), NULL, 0, "read", region, off, "1",
	    NULL);
	check(rv == 1, "ivctl read past the region's end exits 1");
	rv = ivctl(out, sizeof(out), "xy", 2, "write", region, off, NULL);
	check(rv == 1, "so does ivctl write");
}

/* The program of libivshm(3)'s EXAMPLES, as a user would paste it. */
static void
host_example(struct qvm *q)
{
	struct child	 c;
	char		*argv[3];
	const char	*got;
	long long	 deadline;
	int		 i;

	argv[0] = (char *)(uintptr_t)example;
	argv[1] = (char *)(uintptr_t)clientsock;
	argv[2] = NULL;
	if (child_start(&c, argv) == -1)
		return;
	deadline = now_ms() + LINE_TIMEOUT;
	while (!holds_eventfd(c.pid) && ms_left(deadline) > 0)
		sleep_ms(5);
	for (i = 1; i <= 2; i++) {
		check(pba_expect(q, -1) == 0 && doorbell(q, 0, vector) == 0 &&
		    pba_expect(q, (int)vector) == 0, "the example answers "
		    "doorbell %d with a ring of vector %u", i, vector);
		got = qt_cmd(q, "read 0x%jx 5", (uintmax_t)(q->bar[2] +
		    port->begin + 2048));
		check(got != NULL && strcmp(got, "0x706f6e6700") == 0,
		    "and \"pong\" at 2048 in BAR2 (%s)", got ? got :
		    "no answer");
		check(msix_deliver(q, vector) == 0, "which QEMU delivers");
		qt_cmd(q, "write 0x%jx 5 0x0000000000", (uintmax_t)(q->bar[2] +
		    port->begin + 2048));
	}
	kill(c.pid, SIGTERM);
	child_end(&c, LINE_TIMEOUT);
}

static void
host_main(void)
{
	static struct qvm	 q1, q2;	/* reachable, for leak checks */
	struct ivshm_conn	*c;
	struct child		 w;
	char			 err[IVSHM_ERRSIZE], line[256], *argv[5];
	uintmax_t		 pid = 0, g = 0;
	uint64_t		 gen;
	unsigned int		 peer = 0;
	pid_t			 pid1;
	int			 ok;

	c = ivshm_connect(clientsock, err, sizeof(err));
	port = c != NULL ? ivshm_open(c, region) : NULL;
	if (!check(port != NULL, "libivshm gets region %s", region)) {
		warnx("%s", c ? ivshm_error(c) : err);
		return;
	}
	ivshm_close(c);

	argv[0] = (char *)(uintptr_t)ivctlbin;
	argv[1] = (char *)(uintptr_t)"-s";
	argv[2] = (char *)(uintptr_t)clientsock;
	argv[3] = (char *)(uintptr_t)"watch";
	argv[4] = NULL;
	if (child_start(&w, argv) == -1)
		return;
	ok = child_line(&w, line, sizeof(line)) &&
	    sscanf(line, "state detached generation %ju", &g) == 1;
	check(ok, "watch starts with the state: detached (\"%s\")",
	    line);
	gen = g;

	if (qvm_up(&q1, 1, &conf, 1) == -1)
		return;
	host_watch_attach(&w, &q1, &gen);
	host_ring(&q1);
	host_wait(&q1);
	host_rw(&q1);
	if (example != NULL)
		host_example(&q1);

	pid1 = q1.pid;
	qvm_kill(&q1);
	ok = child_line(&w, line, sizeof(line)) &&
	    sscanf(line, "detach peer %u pid %ju generation %ju", &peer, &pid,
	    &g) == 3;
	check(ok && peer == 1 && pid == (uintmax_t)pid1 &&
	    g == gen + 1, "watch sees qemu 1 go after kill -9 "
	    "(\"%s\")", line);
	gen = g;
	if (qvm_up(&q2, 2, &conf, 1) == 0) {
		host_watch_attach(&w, &q2, &gen);
		host_ring(&q2);
		qvm_kill(&q2);
	}
	kill(w.pid, SIGTERM);
	child_end(&w, LINE_TIMEOUT);
	ivshm_port_close(port);
}

static void
peer_main(void)
{
	static struct qvm q1, q2;	/* reachable, for leak checks */
	struct child	 p;
	char		 line[256], *argv[6];
	uint64_t	 w;
	int		 ok, i;

	argv[0] = (char *)(uintptr_t)ivctlbin;
	argv[1] = (char *)(uintptr_t)"-P";
	argv[2] = (char *)(uintptr_t)"-S";
	argv[3] = (char *)(uintptr_t)conf.sock;
	argv[4] = (char *)(uintptr_t)"peer";
	argv[5] = NULL;
	if (child_start(&p, argv) == -1)
		return;
	child_line(&p, line, sizeof(line));
	check(strncmp(line, "self 0 vectors ", 15) == 0 &&
	    strstr(line, "peers -") != NULL, "ivctl -P peer joins as "
	    "peer 0, alone (\"%s\")", line);
	if (qvm_up(&q1, 1, &conf, 1) == -1)
		goto done;
	check(child_line(&p, line, sizeof(line)) && strcmp(line, "join 1") ==
	    0, "it sees qemu 1 join (\"%s\")", line);
	if (qvm_up(&q2, 2, &conf, 2) == -1)
		goto done;
	check(child_line(&p, line, sizeof(line)) && strcmp(line, "join 2") ==
	    0, "it sees qemu 2 join (\"%s\")", line);

	dprintf(p.in, "list\n");
	check(child_line(&p, line, sizeof(line)) && strstr(line,
	    "peers 1,2") != NULL, "list names both (\"%s\")", line);

	dprintf(p.in, "ring 1 1\n");
	check(child_line(&p, line, sizeof(line)) && strcmp(line,
	    "rang 1 1") == 0 && pba_expect(&q1, 1) == 0 &&
	    pba_expect(&q2, -1) == 0 && msix_deliver(&q1, 1) == 0,
	    "ring 1 1 pends vector 1 of qemu 1 only");

	dprintf(p.in, "ring all\n");
	ok = 1;
	for (i = 0; i < 5; i++)
		ok &= child_line(&p, line, sizeof(line));
	ok &= strcmp(line, "done") == 0;
	check(ok && qt_num(&q1, &w, "readl 0x%jx", (uintmax_t)q1.pba) == 0 &&
	    (w & 3) == 3 && qt_num(&q2, &w, "readl 0x%jx",
	    (uintmax_t)q2.pba) == 0 && (w & 3) == 3, "ring all pends "
	    "vectors 0 and 1 of both");
	for (i = 0; i < 2; i++) {
		(void)msix_deliver(i ? &q2 : &q1, 1);
		check(msix_deliver(i ? &q2 : &q1, 0) == 0, "qemu %d "
		    "delivers them", i + 1);
	}

	check(doorbell(&q1, 0, 1) == 0 && child_line(&p, line,
	    sizeof(line)) && strcmp(line, "irq 1 count 1") == 0,
	    "qemu 1 rings peer 0 vector 1: ivctl prints it (\"%s\")",
	    line);
	check(doorbell(&q2, 0, 0) == 0 && child_line(&p, line,
	    sizeof(line)) && strcmp(line, "irq 0 count 1") == 0,
	    "qemu 2 rings peer 0 vector 0: ivctl prints it (\"%s\")",
	    line);
	qvm_kill(&q1);
	check(child_line(&p, line, sizeof(line)) && strcmp(line, "leave 1") ==
	    0, "it sees qemu 1 leave after kill -9 (\"%s\")", line);
	dprintf(p.in, "ring 1 0\n");
	check(child_line(&p, line, sizeof(line)) && strcmp(line,
	    "noring 1 0") == 0, "and rings it no more (\"%s\")", line);
	qvm_kill(&q2);
 done:
	dprintf(p.in, "quit\n");
	check(child_end(&p, LINE_TIMEOUT) == 0, "quit ends it, exit 0");
}

int
main(int argc, char *argv[])
{
	int	 ch, pflag = 0;

	while ((ch = getopt(argc, argv, "Pc:n:Q:q:s:x:")) != -1) {
		switch (ch) {
		case 'P':
			pflag = 1;
			break;
		case 'c':
			ivctlbin = optarg;
			break;
		case 'n':
			conf.vectors = getnum(optarg, 1, MAXVEC, "vectors");
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
		case 'x':
			example = optarg;
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (ivctlbin == NULL || conf.sock == NULL ||
	    (!pflag && (clientsock == NULL || argc != 2)) ||
	    (pflag && argc != 0))
		usage();
	if (!pflag) {
		region = argv[0];
		vector = getnum(argv[1], 0, MAXVEC - 1, "vector");
	}

	test_init("ivctltest", WATCHDOG);
	make_tmpdir(tmpdir, sizeof(tmpdir), "ivctltest");
	conf.dir = tmpdir;
	if (pflag)
		peer_main();
	else
		host_main();
	return (check_failures() ? 1 : 0);
}
