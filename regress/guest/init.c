/*
 * init.c: the guest side of the ivserver end-to-end test, run as PID 1
 * in a throw-away initramfs.  A thin user of libivshm's guest half
 * (ivshm_dev.c): everything about the device is the library's.
 *
 * It opens the ivshmem-doorbell device, reads IVPosition and the
 * region table of the window, and for every region writes a marker
 * into the region, rings the host on the region's vector and waits for
 * the host to answer on the same vector: a real MSI-X interrupt
 * through vfio-pci, or, when the library says why it cannot have one,
 * the pending bits it polls instead; then it rings itself.  It closes
 * the device and runs ivctl -D (/bin/ivctl): list, for the host to
 * compare, info, write, for the host to read back, and what ivctl must
 * refuse, a broken header among them.  One line "IVGUEST RESULT
 * pass|fail ..." on the console carries the outcome, and the exit code
 * of QEMU too where the machine has an isa-debug-exit port.
 *
 * Kernel command line:
 *	ivtest.boot=N		written next to the marker for the host
 *	ivtest.mode=bench	ping-pong on the first region instead
 *	ivtest.mode=example	run the guest program of libivshm(3),
 *				/bin/ping, instead
 *	ivtest.rounds=N		how many, in bench mode
 *	ivtest.irq=msix		MSI-X or fail (the default)
 *	ivtest.irq=fallback	MSI-X, else polling, saying why
 *	ivtest.irq=pba		polling only
 *	ivtest.wc=1		the window write-combining, if not through vfio
 */

#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#ifdef __x86_64__
#include <sys/io.h>
#endif

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ivshm.h"

#define MODULE_DIR	"/lib/modules"
#define IVCTL		"/bin/ivctl"
#define EXAMPLE		"/bin/ping"

/* Shared with host.c: the words at the start of every region. */
#define MSG_GMAGIC	UINT64_C(0x49564753)	/* "IVGS" */
#define MSG_HXOR	UINT64_C(0x5a5a5a5a00000000)
enum {
	MSG_GUEST,	/* GMAGIC << 32 | seq, written last */
	MSG_HOST,	/* the host's answer: the guest word ^ HXOR */
	MSG_BEGIN,	/* what the guest found in the header */
	MSG_END,
	MSG_VECTOR,
	MSG_BOOT,
	MSG_WORDS
};

#define WAIT_MS		20000	/* for one answer from the host */
#define IVCTL_OFF	256	/* where ivctl -D write writes */
#define BENCH_MAX	100000

static struct ivshm_dev	*dev;
static volatile char	*win;
static struct ivshm_region regions[IVSHM_REGIONS_MAX];
static unsigned int	 nregions;
static unsigned int	 boot, rounds = 1000;
static int		 bench, example, wc, irqflags = IVSHM_DEV_MSIX;
static char		 failmsg[IVSHM_ERRSIZE];

static void	 say(const char *, ...)
		    __attribute__((__format__(__printf__, 1, 2)));
static int	 fail(const char *, ...)
		    __attribute__((__format__(__printf__, 1, 2)));
static void	 finish(int) __attribute__((__noreturn__));
static long long now_ns(void);
static void	 setup(void);
static void	 cmdline(void);
static int	 load_modules(void);
static int	 open_device(void);
static int	 read_table(void);
static int	 exchange(const struct ivshm_region *, uint32_t, long long *);
static int	 run_ivctl(int, const char *, const char *, const char *,
		    const char *, const char *, const char *);
static int	 bad_header(void);
static int	 try_ivctl(void);
static int	 run_example(void);
static int	 cmp_ll(const void *, const void *);

static void
say(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	fputs("IVGUEST ", stdout);
	vprintf(fmt, ap);
	fputc('\n', stdout);
	fflush(stdout);
	va_end(ap);
}

/* Keep the first reason: later ones are usually its consequences. */
static int
fail(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	if (failmsg[0] == '\0')
		vsnprintf(failmsg, sizeof(failmsg), fmt, ap);
	va_end(ap);
	say("error: %s", failmsg);
	return (-1);
}

/*
 * PID 1 must not exit.  isa-debug-exit turns value v into QEMU's exit
 * status 2v+1, so 1 is a pass and 3 a failure; where there is no such
 * port (arm64) the host reads the result line and PSCI powers off.
 */
static void
finish(int ok)
{
	(void)ok;
	fflush(stdout);
	sync();
#ifdef __x86_64__
	if (ioperm(0xf4, 4, 1) == 0)
		outl(ok ? 0 : 1, 0xf4);
#endif
	reboot(RB_POWER_OFF);
	for (;;)
		pause();
}

static long long
now_ns(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((long long)ts.tv_sec * 1000000000 + ts.tv_nsec);
}

/* The kernel leaves devtmpfs unmounted (no DEVTMPFS_MOUNT). */
static void
setup(void)
{
	int	fd;

	mkdir("/dev", 0755);
	mkdir("/proc", 0555);
	mkdir("/sys", 0555);
	mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
	mount("proc", "/proc", "proc", 0, NULL);
	mount("sysfs", "/sys", "sysfs", 0, NULL);
	/*
	 * The initramfs has no dev/console (making one needs root), so
	 * PID 1 starts without stdio: take the console from devtmpfs.
	 */
	if ((fd = open("/dev/console", O_RDWR)) != -1) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
}

static void
cmdline(void)
{
	char		 buf[4096], *p, *last;
	ssize_t		 n;
	int		 fd;

	if ((fd = open("/proc/cmdline", O_RDONLY)) == -1)
		return;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	for (p = strtok_r(buf, " \n", &last); p != NULL;
	    p = strtok_r(NULL, " \n", &last)) {
		if (strncmp(p, "ivtest.boot=", 12) == 0)
			boot = strtoul(p + 12, NULL, 10);
		else if (strncmp(p, "ivtest.rounds=", 14) == 0)
			rounds = strtoul(p + 14, NULL, 10);
		else if (strcmp(p, "ivtest.mode=bench") == 0)
			bench = 1;
		else if (strcmp(p, "ivtest.mode=example") == 0)
			example = 1;
		else if (strcmp(p, "ivtest.irq=pba") == 0)
			irqflags = IVSHM_DEV_POLL;
		else if (strcmp(p, "ivtest.irq=fallback") == 0)
			irqflags = IVSHM_DEV_MSIX | IVSHM_DEV_POLL;
		else if (strcmp(p, "ivtest.wc=1") == 0)
			wc = IVSHM_DEV_WC;
	}
	if (rounds == 0 || rounds > BENCH_MAX)
		rounds = 1000;
	say("boot %u mode %s irq %s", boot, bench ? "bench" : example ?
	    "example" : "test",
	    irqflags == IVSHM_DEV_POLL ? "pba" : irqflags == IVSHM_DEV_MSIX ?
	    "msix" : "fallback");
}

/*
 * What modprobe does on a real system: the initramfs holds the vfio
 * modules of the running kernel, in load order in /lib/modules/order.
 */
static int
load_modules(void)
{
	char	 list[1024], path[PATH_MAX], *p, *last;
	ssize_t	 n;
	int	 fd;

	if ((fd = open(MODULE_DIR "/order", O_RDONLY)) == -1)
		return (fail("no " MODULE_DIR "/order"));
	n = read(fd, list, sizeof(list) - 1);
	close(fd);
	if (n < 0)
		return (fail("read " MODULE_DIR "/order"));
	list[n] = '\0';
	for (p = strtok_r(list, " \n", &last); p != NULL;
	    p = strtok_r(NULL, " \n", &last)) {
		snprintf(path, sizeof(path), "%s/%s", MODULE_DIR, p);
		if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
			return (fail("open %s: %s", path, strerror(errno)));
		if (syscall(SYS_finit_module, fd, "", 0) == -1 &&
		    errno != EEXIST) {
			close(fd);
			return (fail("finit_module %s: %s", p,
			    strerror(errno)));
		}
		close(fd);
	}
	return (0);
}

static int
open_device(void)
{
	char		 err[IVSHM_ERRSIZE];
	uint64_t	 size, drain;
	unsigned int	 v;

	if ((irqflags & IVSHM_DEV_MSIX) && load_modules() == -1)
		return (-1);
	if ((dev = ivshm_dev_open(NULL, irqflags | wc, err,
	    sizeof(err))) == NULL)
		return (fail("%s", err));
	if (ivshm_dev_strerror(dev)[0] != '\0')
		say("%s", ivshm_dev_strerror(dev));
	win = ivshm_dev_window(dev, &size);
	say("device %s window 0x%" PRIx64 " vectors %u irq %s%s",
	    ivshm_dev_addr(dev), size, ivshm_dev_vectors(dev),
	    ivshm_dev_irq(dev) == IVSHM_IRQ_MSIX ? "vfio-msix" : "pba",
	    wc && ivshm_dev_irq(dev) != IVSHM_IRQ_MSIX ?
	    " write-combining" : "");
	if (ivshm_dev_irq(dev) != IVSHM_IRQ_MSIX)
		return (0);
	/*
	 * A vector the host signalled while MSI-X was off may arrive the
	 * moment it is enabled; the host signals only in answer, so it is
	 * a stray and must not pass for an answer.
	 */
	poll(NULL, 0, 50);
	for (v = 0; v < ivshm_dev_vectors(dev); v++)
		while (read(ivshm_dev_eventfd(dev, v), &drain,
		    sizeof(drain)) == sizeof(drain))
			say("vector %u: drained a stale interrupt", v);
	return (0);
}

/* The table as the guest sees it, after the library checked it. */
static int
read_table(void)
{
	struct ivshm_header	 h;
	char			 err[IVSHM_ERRSIZE];
	uint64_t		 size;
	unsigned int		 i;

	(void)ivshm_dev_window(dev, &size);
	if (ivshm_window_check(win, size, err, sizeof(err)) == -1)
		return (fail("window header: %s", err));
	ivshm_copy_in(&h, win, sizeof(h));
	if (h.region_count == 0)
		return (fail("no region in the window"));
	/* The host's count of VM attaches and detaches: this boot's mark. */
	if ((h.flags & IVSHM_HEADER_GENERATION) && h.region_offset >= 48)
		say("generation %" PRIu64, h.generation);
	for (i = 0; i < h.region_count; i++) {
		struct ivshm_region	*r = &regions[i];

		if (ivshm_window_region(win, size, i, r, err,
		    sizeof(err)) == -1)
			return (fail("region %u: %s", i, err));
		if (r->end - r->begin < MSG_WORDS * 8)
			return (fail("region %s too small", r->name));
		say("region %s begin 0x%" PRIx64 " end 0x%" PRIx64
		    " vector %u", r->name, r->begin, r->end, r->vector);
	}
	nregions = h.region_count;
	/* The library's own lookup by name finds the same. */
	if (nregions > 0) {
		struct ivshm_region	 r;

		i = nregions - 1;
		if (ivshm_dev_find(dev, regions[i].name, &r) == -1)
			return (fail("ivshm_dev_find %s: %s", regions[i].name,
			    ivshm_dev_strerror(dev)));
		if (r.begin != regions[i].begin || r.vector != i)
			return (fail("ivshm_dev_find %s: wrong entry",
			    r.name));
	}
	return (0);
}

/*
 * One ping-pong on region r: the guest's words, the doorbell, the
 * interrupt, the host's word.  *ns gets the round trip.
 */
static int
exchange(const struct ivshm_region *r, uint32_t seq, long long *ns)
{
	uint64_t	msg[MSG_WORDS], answer;
	long long	t0;
	int		n;

	msg[MSG_GUEST] = MSG_GMAGIC << 32 | seq;
	msg[MSG_HOST] = 0;
	msg[MSG_BEGIN] = r->begin;
	msg[MSG_END] = r->end;
	msg[MSG_VECTOR] = r->vector;
	msg[MSG_BOOT] = boot;
	/* The marker last: ivshm_dev_ring orders the stores before it. */
	ivshm_copy_out(win + r->begin + 8, &msg[1], (MSG_WORDS - 1) * 8);
	ivshm_copy_out(win + r->begin, &msg[0], 8);
	t0 = now_ns();
	if (ivshm_dev_ring(dev, IVSHM_HOST_PEER, r->vector) == -1)
		return (fail("ring %s: %s", r->name, ivshm_dev_strerror(dev)));
	if ((n = ivshm_dev_wait(dev, r->vector, WAIT_MS)) <= 0)
		return (fail("region %s: %s", r->name,
		    ivshm_dev_strerror(dev)));
	*ns = now_ns() - t0;
	ivshm_copy_in(&answer, win + r->begin + MSG_HOST * 8, 8);
	if (answer != (msg[MSG_GUEST] ^ MSG_HXOR))
		return (fail("region %s: host wrote 0x%016" PRIx64
		    ", expected 0x%016" PRIx64, r->name, answer,
		    msg[MSG_GUEST] ^ MSG_HXOR));
	return (0);
}

/*
 * ivctl -D cmd [arg], its standard input from the file in (or none),
 * its lines on the console between two markers named tag; it must exit
 * with status want.
 */
static int
run_ivctl(int want, const char *tag, const char *cmd, const char *in,
    const char *a1, const char *a2, const char *a3)
{
	pid_t	pid;
	int	st, fd;

	say("ivctl %s begin", tag);
	if ((pid = fork()) == -1)
		return (fail("fork: %s", strerror(errno)));
	if (pid == 0) {
		if (in != NULL && ((fd = open(in, O_RDONLY)) == -1 ||
		    dup2(fd, 0) == -1)) {
			fprintf(stderr, "%s: %s\n", in, strerror(errno));
			_exit(127);
		}
		execl(IVCTL, "ivctl", "-D", cmd, a1, a2, a3, (char *)NULL);
		fprintf(stderr, "exec %s: %s\n", IVCTL, strerror(errno));
		_exit(127);
	}
	while (waitpid(pid, &st, 0) == -1)
		if (errno != EINTR)
			return (fail("waitpid: %s", strerror(errno)));
	say("ivctl %s end status %d", tag, WIFEXITED(st) ?
	    WEXITSTATUS(st) : -1);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != want)
		return (fail("ivctl -D %s (%s): status %d, expected %d", cmd,
		    tag, WIFEXITED(st) ? WEXITSTATUS(st) : -1, want));
	return (0);
}

/*
 * The tool on the device the test has just used: its table for the
 * host to compare, its info, and a line written into the last region
 * at IVCTL_OFF for the host to read back (host.c uses only the first
 * words of a region).
 */
static int
try_ivctl(void)
{
	FILE	*f;
	char	 off[16];

	if (run_ivctl(0, "list", "list", NULL, NULL, NULL, NULL) == -1 ||
	    run_ivctl(0, "info", "info", NULL, NULL, NULL, NULL) == -1)
		return (-1);
	/* Refused: a vector QEMU would take for another, a bad offset. */
	if (run_ivctl(2, "ring", "ring", NULL, "256", NULL, NULL) == -1 ||
	    run_ivctl(1, "read", "read", NULL, regions[0].name,
	    "0x100000000", NULL) == -1 || bad_header() == -1)
		return (-1);
	/* Interrupts set up and torn down by the tool; nobody rings. */
	if (run_ivctl(1, "wait", "wait", NULL, regions[0].name, "-t",
	    "100") == -1)
		return (-1);
	if ((f = fopen("/ivctl.in", "w")) == NULL)
		return (fail("/ivctl.in: %s", strerror(errno)));
	fprintf(f, "written by ivctl -D in boot %u\n", boot);
	if (fclose(f) == EOF)
		return (fail("/ivctl.in: %s", strerror(errno)));
	snprintf(off, sizeof(off), "%u", IVCTL_OFF);
	return (run_ivctl(0, "write", "write", "/ivctl.in",
	    regions[nregions - 1].name, off, NULL));
}

/*
 * The guest can write the header, so ivctl must refuse a bad one with
 * its reason: a region count past the limit, then a first name with no
 * NUL.  Each is put back before the next, and the host never reads the
 * header back.
 */
static int
bad_header(void)
{
	struct ivshm_dev	*d;
	volatile char		*w;
	char			 err[IVSHM_ERRSIZE], bad[IVSHM_NAME_SIZE];
	uint64_t		 save[2], word;
	size_t			 cnt, name;
	int			 rc;

	if ((d = ivshm_dev_open(NULL, 0, err, sizeof(err))) == NULL)
		return (fail("%s", err));
	w = ivshm_dev_window(d, NULL);
	/* region_count and region_offset share an aligned word. */
	cnt = offsetof(struct ivshm_header, region_count);
	ivshm_copy_in(&word, w + cnt, 8);
	save[0] = word;
	word |= UINT32_MAX;
	ivshm_copy_out(w + cnt, &word, 8);
	rc = run_ivctl(1, "badcount", "list", NULL, NULL, NULL, NULL);
	ivshm_copy_out(w + cnt, &save[0], 8);
	name = (size_t)(save[0] >> 32);
	ivshm_copy_in(save, w + name, sizeof(save));
	memset(bad, 'x', sizeof(bad));
	ivshm_copy_out(w + name, bad, sizeof(bad));
	if (rc == 0)
		rc = run_ivctl(1, "badname", "list", NULL, NULL, NULL, NULL);
	ivshm_copy_out(w + name, save, sizeof(save));
	ivshm_dev_close(d);
	return (rc);
}

/* The program a user would write, from libivshm(3): its exit status. */
static int
run_example(void)
{
	pid_t	pid;
	int	st;

	if ((pid = fork()) == -1)
		return (fail("fork: %s", strerror(errno)));
	if (pid == 0) {
		execl(EXAMPLE, "ping", (char *)NULL);
		fprintf(stderr, "exec %s: %s\n", EXAMPLE, strerror(errno));
		_exit(127);
	}
	while (waitpid(pid, &st, 0) == -1)
		if (errno != EINTR)
			return (fail("waitpid: %s", strerror(errno)));
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return (fail("%s: status %d", EXAMPLE, WIFEXITED(st) ?
		    WEXITSTATUS(st) : -1));
	return (0);
}

static int
cmp_ll(const void *a, const void *b)
{
	long long	x = *(const long long *)a, y = *(const long long *)b;

	return (x < y ? -1 : x > y);
}

int
main(void)
{
	const char	*irq = "none";
	long long	*lat, ns;
	uint32_t	 pos, seq;
	unsigned int	 i;
	int		 ok;

	setup();
	cmdline();
	if (example) {
		irq = "example";
		if (load_modules() == 0)
			(void)run_example();
		goto out;
	}
	/* Before the modules are there: the tool must say so. */
	if (irqflags == (IVSHM_DEV_MSIX | IVSHM_DEV_POLL) &&
	    run_ivctl(1, "nomodule", "wait", NULL, "0", "-t", "100") == -1)
		goto out;
	if (open_device() == -1)
		goto out;
	irq = ivshm_dev_irq(dev) == IVSHM_IRQ_MSIX ? "vfio-msix" : "pba";
	if (ivshm_dev_position(dev, &pos) == -1) {
		fail("IVPosition: %s", ivshm_dev_strerror(dev));
		goto out;
	}
	say("ivposition %u", pos);
	if (pos != 1) {
		fail("IVPosition %u, expected 1 (ivserver's VM)", pos);
		goto out;
	}
	if (read_table() == -1)
		goto out;

	seq = boot << 20;
	if (!bench) {
		for (i = 0; i < nregions; i++) {
			if (exchange(&regions[i], seq++, &ns) == -1)
				goto out;
			say("answer %s in %lld us", regions[i].name,
			    ns / 1000);
		}
		/*
		 * A VM may ring its own vectors: QEMU sets its own eventfd,
		 * which raises the interrupt, and no host program sees it.
		 */
		if (ivshm_dev_ring(dev, pos, regions[0].vector) == -1 ||
		    ivshm_dev_wait(dev, regions[0].vector, WAIT_MS) <= 0) {
			fail("ring itself: %s", ivshm_dev_strerror(dev));
			goto out;
		}
		say("rang itself on vector %u", regions[0].vector);
		/* vfio holds the BARs while open: ivctl maps them anew. */
		ivshm_dev_close(dev);
		dev = NULL;
		if (try_ivctl() == -1)
			goto out;
	} else {
		if ((lat = calloc(rounds, sizeof(*lat))) == NULL) {
			fail("out of memory");
			goto out;
		}
		for (i = 0; i < rounds; i++)
			if (exchange(&regions[0], seq++, &lat[i]) == -1)
				goto out;
		qsort(lat, rounds, sizeof(*lat), cmp_ll);
		say("bench %s region %s rounds %u min %lld median %lld "
		    "p99 %lld max %lld us", irq, regions[0].name, rounds,
		    lat[0] / 1000, lat[rounds / 2] / 1000,
		    lat[(rounds * 99 + 99) / 100 - 1] / 1000,
		    lat[rounds - 1] / 1000);
	}

out:
	ok = failmsg[0] == '\0';
	if (ok)
		say("RESULT pass boot=%u irq=%s regions=%u", boot, irq,
		    nregions);
	else
		say("RESULT fail boot=%u: %s", boot, failmsg);
	finish(ok);
}
