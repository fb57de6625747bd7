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
#include <sys/stat.h>
#include <sys/wait.h>

#include <endian.h>
#include <err.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ivclient.h"
#include "lib.h"
#include "qtest.h"

#define EXIT_TIMEOUT	15000		/* ms: a refused QEMU to exit */
#define QEMU_LIFETIME	120000		/* ms: any one QEMU */
#define WATCHDOG	600		/* s: the whole test */
#define NQEMU		3

static void	 usage(void);
static int	 vm_start(struct qvm *, int);
static void	 vm_header(struct qvm *);
static void	 drain_g2h(void);
static int	 ring_g2h(struct qvm *, int);
static int	 ring_h2g(struct qvm *, int);
static int	 share_mem(struct qvm *, int);
static void	 vm_regions(struct qvm *);
static void	 vm_refused(struct qvm *, struct qvm *);
static void	 vm_restart(struct qvm *, struct qvm *);
static int	 client_setup(int, char **);

static struct qvm_conf		  conf = {
	"qemu-system-x86_64", NULL, NULL, 0, 0, QEMU_LIFETIME
};
static const char		 *clientsock;
static struct ivclient_region	 *regions;
static unsigned char		**maps;
static int			  nregions;
static unsigned char		 *header;	/* as read from the shm fd */
static size_t			  hdrsize;
static char			  tmpdir[256];	/* holds a socket: short */
static struct qvm		  qemus[NQEMU];

static void
usage(void)
{
	fprintf(stderr, "usage: %s [-Q qemu] -q qemu-socket -s client-socket "
	    "region ...\n", getprogname());
	exit(1);
}

/*
 * Start VM n, set its device up, and wait until it holds every g2h and
 * h2g eventfd the client holds: the server's handshake has then been
 * taken whole, and a doorbell reaches the host.
 */
static int
vm_start(struct qvm *q, int n)
{
	pid_t	pids[2];

	if (qvm_up(q, n, &conf, 1) == -1)
		return (-1);
	pids[0] = q->pid;
	pids[1] = getpid();
	qvm_check(wait_shared(pids, 2, 2 * nregions, EVENT_TIMEOUT) == 0, q,
	    "qemu %d holds the g2h and h2g eventfds of the %d regions", n,
	    nregions);
	return (0);
}

/*
 * The guest sees the header through BAR2: it must be the bytes in the
 * shm fd, and name each region where the client socket said.
 */
static void
vm_header(struct qvm *q)
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
	/* The generation moves as VMs come and go: the shm as it is now. */
	ok = valid && pread(regions[0].shm, header, hdrsize, 0) ==
	    (ssize_t)hdrsize;
	memcpy(&h, header, sizeof(h));
	qvm_check(ok && (le32toh(h.flags) & IVSHM_HEADER_GENERATION) &&
	    le64toh(h.generation) % 2 == 1, q, "qemu %d: the header's "
	    "generation, %ju, is odd while a VM is attached", q->n,
	    (uintmax_t)le64toh(h.generation));
	if (ok && memcmp(guest, header, hdrsize) != 0) {
		for (i = 0; guest[i] == header[i]; i++)
			;
		warnx("qemu %d: header differs at byte %zu", q->n, i);
		ok = 0;
	}
	qvm_check(ok, q, "qemu %d: the header through BAR2 is the shm fd's, "
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
		qvm_check(ok, q, "qemu %d: region %s in the guest's header at "
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
ring_g2h(struct qvm *q, int r)
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
ring_h2g(struct qvm *q, int r)
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
share_mem(struct qvm *q, int r)
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
vm_regions(struct qvm *q)
{
	int	r;

	for (r = 0; r < nregions; r++) {
		qvm_check(ring_g2h(q, r) == 0, q, "qemu %d: doorbell %u fires "
		    "only %s's g2h eventfd", q->n, regions[r].vector,
		    regions[r].name);
		qvm_check(ring_h2g(q, r) == 0, q, "qemu %d: %s's h2g eventfd "
		    "makes only MSI-X vector %u pending", q->n,
		    regions[r].name, regions[r].vector);
		qvm_check(share_mem(q, r) == 0, q, "qemu %d: %s memory is "
		    "shared both ways", q->n, regions[r].name);
	}
}

/*
 * A second VM while the first is attached must be refused with a
 * message QEMU finds fatal, not left hanging; the first carries on.
 */
static void
vm_refused(struct qvm *q1, struct qvm *q2)
{
	int	exited = 0, ok, r;

	if (qvm_start(q2, 2, 0, &conf) == 0) {
		if (!(exited = qvm_wait(q2, EXIT_TIMEOUT))) {
			warnx("qemu 2 still runs after %d ms", EXIT_TIMEOUT);
			qvm_kill(q2);
		}
	}
	ok = exited && WIFEXITED(q2->status) && WEXITSTATUS(q2->status) != 0 &&
	    qvm_errhas(q2, "invalid ID");
	qvm_check(ok, q2, "qemu 2, a second VM, exits non-zero saying "
	    "\"invalid ID\"");
	if (ok)
		qvm_showerr(q2);	/* to show the message in the log */

	qvm_check(!qvm_exited(q1), q1, "qemu 1 still runs");
	for (r = 0; r < nregions; r++)
		qvm_check(ring_g2h(q1, r) == 0 && ring_h2g(q1, r) == 0, q1,
		    "qemu 1: %s rings both ways after qemu 2 was refused",
		    regions[r].name);
}

/*
 * The VM dies without warning and another takes its place: the server
 * must notice, accept the new one as peer 1 and give it the same
 * eventfds, so the client's fds work on with no reconnect.
 */
static void
vm_restart(struct qvm *q1, struct qvm *q3)
{
	struct ivshm_conn	*s;

	if (q1->pid != -1) {
		qvm_kill(q1);
		qvm_check(q1->pid == -1 && WIFSIGNALED(q1->status) &&
		    WTERMSIG(q1->status) == SIGKILL, q1, "qemu 1 killed");
	}
	/*
	 * QEMU 1's socket was closed when it was reaped.  The server polls
	 * every socket each round, so once a client has had the version
	 * it sends on accept, it has seen that end of file: qemu 3 cannot
	 * be taken for a second VM.
	 */
	s = ivclient_connect(clientsock, IO_TIMEOUT);
	if (!check(s != NULL, "a client is served after qemu 1 is gone"))
		return;
	ivshm_close(s);
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
	struct ivshm_conn	*s;
	int			i, ok, rv;

	if ((regions = calloc(argc, sizeof(*regions))) == NULL ||
	    (maps = calloc(argc, sizeof(*maps))) == NULL)
		err(1, NULL);
	s = ivclient_connect(clientsock, IO_TIMEOUT);
	check(s != NULL, "client connects to the client socket");
	if (s == NULL)
		return (-1);
	for (i = 0; i < argc; i++) {
		rv = ivclient_request(s, argv[i], &regions[i], IO_TIMEOUT);
		ok = rv == 1 && ivclient_check(&regions[i]) == 0 &&
		    (maps[i] = ivclient_map(&regions[i])) != NULL;
		if (rv == 0)
			warnx("%s: unknown region", argv[i]);
		check(ok, "client gets region %s, its fds and header "
		    "entry check out", argv[i]);
		if (!ok)
			return (-1);
		nregions = i + 1;
	}
	ivshm_close(s);

	ok = fstat(regions[0].shm, &st0) == 0;
	for (i = 1; ok && i < nregions; i++)
		ok = fstat(regions[i].shm, &st) == 0 &&
		    st.st_dev == st0.st_dev && st.st_ino == st0.st_ino;
	check(ok, "every region comes with the same shm");

	/* The largest table is some 10K: more is not an ivserver header. */
	conf.vectors = regions[0].nregions;
	conf.winsize = regions[0].size;
	ok = pread(regions[0].shm, &h, sizeof(h), 0) == (ssize_t)sizeof(h) &&
	    (hdrsize = le32toh(h.header_size)) <= 65536 &&
	    (header = malloc(hdrsize)) != NULL &&
	    pread(regions[0].shm, header, hdrsize, 0) == (ssize_t)hdrsize;
	check(ok, "the header is read from the shm, %zu bytes", hdrsize);
	return (ok ? 0 : -1);
}

int
main(int argc, char *argv[])
{
	int	ch;

	while ((ch = getopt(argc, argv, "Q:q:s:")) != -1) {
		switch (ch) {
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
	if (conf.sock == NULL || clientsock == NULL || argc == 0)
		usage();

	test_init("vmtest", WATCHDOG);
	make_tmpdir(tmpdir, sizeof(tmpdir), "vmtest");
	conf.dir = tmpdir;

	if (client_setup(argc, argv) == -1)
		return (1);
	if (vm_start(&qemus[0], 1) == 0) {
		vm_header(&qemus[0]);
		vm_regions(&qemus[0]);
		vm_refused(&qemus[0], &qemus[1]);
	}
	vm_restart(&qemus[0], &qemus[2]);
	return (check_failures() ? 1 : 0);
}
