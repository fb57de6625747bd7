/*
 * init.c: the guest side of the ivserver end-to-end test, run as PID 1
 * in a throw-away initramfs.
 *
 * It finds the ivshmem-doorbell device (1af4:1110), reads IVPosition
 * from BAR0 and the ivserver header at the start of BAR2, and for every
 * region in the header writes a marker into the region, rings the
 * host's doorbell on the region's vector and waits for the host to
 * answer on the same vector.  The answer arrives as a real MSI-X
 * interrupt when vfio-pci works (it needs an emulated IOMMU, since the
 * Debian kernel has no VFIO_NOIOMMU), otherwise by polling the MSI-X
 * pending-bit array.  One line "IVGUEST RESULT pass|fail ..." on the
 * console carries the outcome, and the exit code of QEMU too where the
 * machine has an isa-debug-exit port.
 *
 * Kernel command line:
 *	ivtest.boot=N		written next to the marker for the host
 *	ivtest.mode=bench	ping-pong on the first region instead
 *	ivtest.rounds=N		how many, in bench mode
 *	ivtest.irq=pba		do not try vfio
 *
 * Each region starts with the words of struct msg.  Device memory gets
 * naturally aligned 32-bit and 64-bit accesses only.
 */

#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#ifdef __x86_64__
#include <sys/io.h>
#endif

#include <linux/vfio.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../ivshm.h"

#define PCI_DEVICES	"/sys/bus/pci/devices"
#define MODULE_DIR	"/lib/modules"
#define IV_VENDOR	0x1af4
#define IV_DEVICE	0x1110

/* BAR0 registers of ivshmem-doorbell. */
#define REG_IVPOSITION	8
#define REG_DOORBELL	12
#define HOST_PEER	0

#define PCI_COMMAND		0x04
#define PCI_COMMAND_MEMORY	0x2
#define PCI_COMMAND_MASTER	0x4
#define PCI_STATUS		0x06
#define PCI_STATUS_CAPLIST	0x10
#define PCI_CAP_PTR		0x34
#define PCI_CAP_MSIX		0x11
#define MSIX_ENABLE		0x8000
#define MSIX_MASKALL		0x4000

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
#define BENCH_MAX	100000

struct region {
	char		 name[IVSHM_NAME_SIZE];
	uint64_t	 begin;
	uint64_t	 end;
	uint32_t	 vector;
};

struct dev {
	char		 addr[64];	/* PCI address, 0000:00:03.0 */
	char		 path[128];
	uint64_t	 bar2size;
	int		 config;	/* sysfs config, or -1 */
	/* The vfio path. */
	int		 vfio;		/* device fd, or -1 */
	uint64_t	 cfgoff;	/* vfio config region offset */
	uint64_t	 bar0off;	/* vfio BAR0 region offset */
	int		*efd;		/* one eventfd per vector */
	unsigned int	 nefd;
	/* The sysfs path. */
	volatile uint32_t *bar0;
	volatile uint32_t *bar1;
	unsigned int	 msix;		/* capability offset */
	uint32_t	 tableoff;	/* in BAR1 */
	uint32_t	 pbaoff;
	unsigned int	 nvec;
	volatile unsigned char *bar2;
};

static struct dev	 dev;
static struct region	 regions[IVSHM_REGIONS_MAX];
static unsigned int	 nregions;
static unsigned int	 boot, rounds = 1000;
static int		 bench, forcepba;
static char		 failmsg[256];

static void	 say(const char *, ...)
		    __attribute__((__format__(__printf__, 1, 2)));
static int	 fail(const char *, ...)
		    __attribute__((__format__(__printf__, 1, 2)));
static void	 finish(int) __attribute__((__noreturn__));
static long long now_ns(void);
static void	 setup(void);
static void	 cmdline(void);
static int	 readfile(const char *, char *, size_t);
static int	 writefile(const char *, const char *);
static int	 find_device(void);
static int	 load_modules(void);
static int	 vfio_open(void);
static void	 vfio_undo(void);
static void	*map_resource(unsigned int, size_t *);
static int	 sysfs_open(void);
static int	 cfg_read(unsigned int, void *, size_t);
static int	 cfg_write(unsigned int, const void *, size_t);
static uint32_t	 bar0_read(unsigned int);
static void	 bar0_write(unsigned int, uint32_t);
static uint64_t	 shm_read64(uint64_t);
static uint32_t	 shm_read32(uint64_t);
static void	 shm_write64(uint64_t, uint64_t);
static int	 read_header(void);
static int	 wait_vector(unsigned int, int);
static int	 rearm(unsigned int);
static int	 exchange(const struct region *, uint32_t, long long *);
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

static int
readfile(const char *path, char *buf, size_t len)
{
	ssize_t	n;
	int	fd;

	if ((fd = open(path, O_RDONLY)) == -1)
		return (-1);
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return (-1);
	buf[n] = '\0';
	return (0);
}

static int
writefile(const char *path, const char *s)
{
	ssize_t	n;
	int	fd;

	if ((fd = open(path, O_WRONLY)) == -1)
		return (-1);
	n = write(fd, s, strlen(s));
	close(fd);
	return (n == (ssize_t)strlen(s) ? 0 : -1);
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
	const char	*e;

	if (readfile("/proc/cmdline", buf, sizeof(buf)) == -1)
		return;
	for (p = strtok_r(buf, " \n", &last); p != NULL;
	    p = strtok_r(NULL, " \n", &last)) {
		if (strncmp(p, "ivtest.boot=", 12) == 0)
			boot = strtoul(p + 12, NULL, 10);
		else if (strncmp(p, "ivtest.rounds=", 14) == 0)
			rounds = strtoul(p + 14, NULL, 10);
		else if (strcmp(p, "ivtest.mode=bench") == 0)
			bench = 1;
		else if (strcmp(p, "ivtest.irq=pba") == 0)
			forcepba = 1;
	}
	if (rounds == 0 || rounds > BENCH_MAX)
		rounds = 1000;
	e = bench ? "bench" : "test";
	say("boot %u mode %s irq %s", boot, e, forcepba ? "pba" : "auto");
}

static int
find_device(void)
{
	struct dirent	*de;
	DIR		*d;
	char		 path[PATH_MAX], buf[256], *p;
	unsigned long	 v, id;
	int		 line;
	unsigned long long start, end, flags;

	if ((d = opendir(PCI_DEVICES)) == NULL)
		return (fail("opendir %s: %s", PCI_DEVICES, strerror(errno)));
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s/vendor", PCI_DEVICES,
		    de->d_name);
		if (readfile(path, buf, sizeof(buf)) == -1)
			continue;
		v = strtoul(buf, NULL, 16);
		snprintf(path, sizeof(path), "%s/%s/device", PCI_DEVICES,
		    de->d_name);
		if (readfile(path, buf, sizeof(buf)) == -1)
			continue;
		id = strtoul(buf, NULL, 16);
		if (v == IV_VENDOR && id == IV_DEVICE &&
		    strlen(de->d_name) < sizeof(dev.addr)) {
			memcpy(dev.addr, de->d_name, strlen(de->d_name) + 1);
			break;
		}
	}
	closedir(d);
	if (dev.addr[0] == '\0')
		return (fail("no %04x:%04x device", IV_VENDOR, IV_DEVICE));
	snprintf(dev.path, sizeof(dev.path), "%s/%s", PCI_DEVICES, dev.addr);

	/* The third line of "resource" is BAR2: start end flags. */
	snprintf(path, sizeof(path), "%s/resource", dev.path);
	if (readfile(path, buf, sizeof(buf)) == -1)
		return (fail("read %s", path));
	for (p = buf, line = 0; line < 2 && p != NULL; line++)
		if ((p = strchr(p, '\n')) != NULL)
			p++;
	if (p == NULL || sscanf(p, "%llx %llx %llx", &start, &end,
	    &flags) != 3 || end <= start)
		return (fail("cannot parse BAR2 in %s", path));
	dev.bar2size = end - start + 1;
	say("device %s BAR2 0x%llx size 0x%" PRIx64, dev.addr, start,
	    dev.bar2size);
	return (0);
}

/*
 * The initramfs holds the vfio modules of the running kernel, in load
 * order as listed in /lib/modules/order (dependencies first, since there
 * is no modprobe).  A module already loaded is fine.
 */
static int
load_modules(void)
{
	char	 list[1024], path[PATH_MAX], *p, *last;
	int	 fd;

	if (readfile(MODULE_DIR "/order", list, sizeof(list)) == -1)
		return (fail("no " MODULE_DIR "/order"));
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

/*
 * Bind vfio-pci, open the device through its IOMMU group, map BAR2 and
 * give every MSI-X vector an eventfd.
 */
static int
vfio_open(void)
{
	struct vfio_group_status	 gs;
	struct vfio_region_info		 ri;
	struct vfio_irq_info		 ii;
	struct vfio_irq_set		*set;
	char				 path[PATH_MAX], link[PATH_MAX], *g;
	uint64_t			 drain;
	uint16_t			 cmd;
	ssize_t				 n;
	size_t				 len;
	unsigned int			 i;
	int				 container, group;
	void				*p;

	if (load_modules() == -1)
		return (-1);
	snprintf(path, sizeof(path), "%s/driver_override", dev.path);
	if (writefile(path, "vfio-pci") == -1)
		return (fail("write %s: %s", path, strerror(errno)));
	if (writefile("/sys/bus/pci/drivers_probe", dev.addr) == -1)
		return (fail("drivers_probe: %s", strerror(errno)));

	/* The group appears only once a driver has probed the device. */
	snprintf(path, sizeof(path), "%s/iommu_group", dev.path);
	if ((n = readlink(path, link, sizeof(link) - 1)) == -1)
		return (fail("no IOMMU group for %s", dev.addr));
	link[n] = '\0';
	g = strrchr(link, '/') != NULL ? strrchr(link, '/') + 1 : link;

	if ((container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC)) == -1)
		return (fail("open /dev/vfio/vfio: %s", strerror(errno)));
	if (ioctl(container, VFIO_GET_API_VERSION) != VFIO_API_VERSION ||
	    ioctl(container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU) != 1)
		return (fail("vfio lacks API %d or type1v2", VFIO_API_VERSION));
	if (strlen(g) > 16)
		return (fail("IOMMU group name %s", g));
	snprintf(path, sizeof(path), "/dev/vfio/%s", g);
	if ((group = open(path, O_RDWR | O_CLOEXEC)) == -1)
		return (fail("open %s: %s", path, strerror(errno)));
	memset(&gs, 0, sizeof(gs));
	gs.argsz = sizeof(gs);
	if (ioctl(group, VFIO_GROUP_GET_STATUS, &gs) == -1 ||
	    (gs.flags & VFIO_GROUP_FLAGS_VIABLE) == 0)
		return (fail("IOMMU group %s is not viable", g));
	if (ioctl(group, VFIO_GROUP_SET_CONTAINER, &container) == -1 ||
	    ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) == -1)
		return (fail("vfio container: %s", strerror(errno)));
	if ((dev.vfio = ioctl(group, VFIO_GROUP_GET_DEVICE_FD,
	    dev.addr)) == -1)
		return (fail("vfio device fd: %s", strerror(errno)));

	memset(&ri, 0, sizeof(ri));
	ri.argsz = sizeof(ri);
	ri.index = VFIO_PCI_CONFIG_REGION_INDEX;
	if (ioctl(dev.vfio, VFIO_DEVICE_GET_REGION_INFO, &ri) == -1)
		return (fail("vfio config region: %s", strerror(errno)));
	dev.cfgoff = ri.offset;
	ri.index = VFIO_PCI_BAR0_REGION_INDEX;
	if (ioctl(dev.vfio, VFIO_DEVICE_GET_REGION_INFO, &ri) == -1 ||
	    ri.size < 16)
		return (fail("vfio BAR0 region: %s", strerror(errno)));
	dev.bar0off = ri.offset;
	ri.index = VFIO_PCI_BAR2_REGION_INDEX;
	if (ioctl(dev.vfio, VFIO_DEVICE_GET_REGION_INFO, &ri) == -1 ||
	    (ri.flags & VFIO_REGION_INFO_FLAG_MMAP) == 0)
		return (fail("vfio BAR2 region cannot be mapped"));
	if (ri.size != dev.bar2size)
		return (fail("vfio says BAR2 has 0x%llx bytes, sysfs 0x%"
		    PRIx64, (unsigned long long)ri.size, dev.bar2size));
	p = mmap(NULL, ri.size, PROT_READ | PROT_WRITE, MAP_SHARED,
	    dev.vfio, ri.offset);
	if (p == MAP_FAILED)
		return (fail("mmap BAR2 through vfio: %s", strerror(errno)));
	dev.bar2 = p;

	/* QEMU sends the MSI as a bus-master write. */
	if (cfg_read(PCI_COMMAND, &cmd, sizeof(cmd)) == -1)
		return (-1);
	cmd |= PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
	if (cfg_write(PCI_COMMAND, &cmd, sizeof(cmd)) == -1)
		return (-1);

	memset(&ii, 0, sizeof(ii));
	ii.argsz = sizeof(ii);
	ii.index = VFIO_PCI_MSIX_IRQ_INDEX;
	if (ioctl(dev.vfio, VFIO_DEVICE_GET_IRQ_INFO, &ii) == -1 ||
	    ii.count == 0)
		return (fail("no MSI-X through vfio"));
	dev.nefd = ii.count;
	if ((dev.efd = calloc(dev.nefd, sizeof(int))) == NULL)
		return (fail("out of memory"));
	len = sizeof(*set) + dev.nefd * sizeof(int32_t);
	if ((set = calloc(1, len)) == NULL)
		return (fail("out of memory"));
	set->argsz = len;
	set->flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
	set->index = VFIO_PCI_MSIX_IRQ_INDEX;
	set->start = 0;
	set->count = dev.nefd;
	for (i = 0; i < dev.nefd; i++) {
		if ((dev.efd[i] = syscall(SYS_eventfd2, 0,
		    O_NONBLOCK | O_CLOEXEC)) == -1)
			return (fail("eventfd: %s", strerror(errno)));
		((int32_t *)(void *)set->data)[i] = dev.efd[i];
	}
	if (ioctl(dev.vfio, VFIO_DEVICE_SET_IRQS, set) == -1) {
		free(set);
		return (fail("VFIO_DEVICE_SET_IRQS: %s", strerror(errno)));
	}
	free(set);

	/*
	 * A vector the host signalled while MSI-X was off is delivered
	 * the moment it is enabled; the host signals only in answer, so
	 * anything here is a stray, and it must not pass for an answer.
	 */
	poll(NULL, 0, 50);
	for (i = 0; i < dev.nefd; i++)
		if (read(dev.efd[i], &drain, sizeof(drain)) == sizeof(drain))
			say("vector %u: drained a stale interrupt", i);
	return (0);
}

/* Leave the device to the sysfs path. */
static void
vfio_undo(void)
{
	char	path[PATH_MAX];

	if (dev.bar2 != NULL)
		munmap((void *)dev.bar2, dev.bar2size);
	dev.bar2 = NULL;
	if (dev.vfio != -1)
		close(dev.vfio);
	dev.vfio = -1;
	snprintf(path, sizeof(path), "%s/driver/unbind", dev.path);
	writefile(path, dev.addr);
	snprintf(path, sizeof(path), "%s/driver_override", dev.path);
	writefile(path, "\n");
}

static void *
map_resource(unsigned int bar, size_t *lenp)
{
	struct stat	 st;
	char		 path[PATH_MAX];
	void		*p;
	int		 fd;

	snprintf(path, sizeof(path), "%s/resource%u", dev.path, bar);
	if ((fd = open(path, O_RDWR | O_SYNC | O_CLOEXEC)) == -1) {
		fail("open %s: %s", path, strerror(errno));
		return (NULL);
	}
	if (fstat(fd, &st) == -1 || st.st_size <= 0) {
		close(fd);
		fail("%s has no size", path);
		return (NULL);
	}
	p = mmap(NULL, st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED) {
		fail("mmap %s: %s", path, strerror(errno));
		return (NULL);
	}
	*lenp = st.st_size;
	return (p);
}

/*
 * No driver: map the BARs through sysfs, and enable MSI-X with the
 * function masked, so that an answer from the host sets its bit in the
 * pending-bit array instead of being sent.
 */
static int
sysfs_open(void)
{
	char		 path[PATH_MAX];
	uint32_t	 w;
	uint16_t	 cmd, status, ctl;
	uint8_t		 ptr, id;
	size_t		 len;
	int		 guard;

	snprintf(path, sizeof(path), "%s/config", dev.path);
	if ((dev.config = open(path, O_RDWR | O_CLOEXEC)) == -1)
		return (fail("open %s: %s", path, strerror(errno)));
	if (cfg_read(PCI_COMMAND, &cmd, sizeof(cmd)) == -1)
		return (-1);
	cmd |= PCI_COMMAND_MEMORY;
	if (cfg_write(PCI_COMMAND, &cmd, sizeof(cmd)) == -1)
		return (-1);

	if ((dev.bar0 = map_resource(0, &len)) == NULL)
		return (-1);
	if ((dev.bar2 = map_resource(2, &len)) == NULL)
		return (-1);
	if (len != dev.bar2size)
		return (fail("resource2 has 0x%zx bytes, BAR2 0x%" PRIx64,
		    len, dev.bar2size));

	if (cfg_read(PCI_STATUS, &status, sizeof(status)) == -1 ||
	    (status & PCI_STATUS_CAPLIST) == 0)
		return (fail("no capability list"));
	if (cfg_read(PCI_CAP_PTR, &ptr, 1) == -1)
		return (-1);
	for (guard = 0; ptr != 0 && guard < 48; guard++) {
		if (cfg_read(ptr, &id, 1) == -1)
			return (-1);
		if (id == PCI_CAP_MSIX) {
			dev.msix = ptr;
			break;
		}
		if (cfg_read(ptr + 1, &ptr, 1) == -1)
			return (-1);
		ptr &= ~3;
	}
	if (dev.msix == 0)
		return (fail("no MSI-X capability"));
	if (cfg_read(dev.msix + 2, &ctl, sizeof(ctl)) == -1 ||
	    cfg_read(dev.msix + 4, &dev.tableoff, 4) == -1 ||
	    cfg_read(dev.msix + 8, &dev.pbaoff, 4) == -1)
		return (-1);
	dev.nvec = (ctl & 0x7ff) + 1;
	if ((dev.tableoff & 7) != 1 || (dev.pbaoff & 7) != 1)
		return (fail("MSI-X table or PBA not in BAR1"));
	dev.tableoff &= ~7U;
	dev.pbaoff &= ~7U;
	if ((dev.bar1 = map_resource(1, &len)) == NULL)
		return (-1);

	/* Every vector masked, and the function as well. */
	ctl |= MSIX_ENABLE | MSIX_MASKALL;
	if (cfg_write(dev.msix + 2, &ctl, sizeof(ctl)) == -1)
		return (-1);
	for (w = 0; w < dev.nvec; w++)
		dev.bar1[(dev.tableoff + w * 16 + 12) / 4] = 1;
	return (0);
}

static int
cfg_read(unsigned int off, void *buf, size_t len)
{
	ssize_t	n;

	if (dev.vfio != -1)
		n = pread(dev.vfio, buf, len, dev.cfgoff + off);
	else
		n = pread(dev.config, buf, len, off);
	if (n != (ssize_t)len)
		return (fail("config read at 0x%x failed", off));
	return (0);
}

static int
cfg_write(unsigned int off, const void *buf, size_t len)
{
	ssize_t	n;

	if (dev.vfio != -1)
		n = pwrite(dev.vfio, buf, len, dev.cfgoff + off);
	else
		n = pwrite(dev.config, buf, len, off);
	if (n != (ssize_t)len)
		return (fail("config write at 0x%x failed", off));
	return (0);
}

/* vfio turns a 4-byte pread at a 4-byte boundary into one 32-bit load. */
static uint32_t
bar0_read(unsigned int reg)
{
	uint32_t	v;

	if (dev.vfio == -1)
		return (dev.bar0[reg / 4]);
	if (pread(dev.vfio, &v, 4, dev.bar0off + reg) != 4)
		return (UINT32_MAX);
	return (v);
}

static void
bar0_write(unsigned int reg, uint32_t v)
{
	if (dev.vfio == -1)
		dev.bar0[reg / 4] = v;
	else if (pwrite(dev.vfio, &v, 4, dev.bar0off + reg) != 4)
		fail("doorbell write: %s", strerror(errno));
}

static uint64_t
shm_read64(uint64_t off)
{
	return (*(volatile uint64_t *)(void *)(dev.bar2 + off));
}

static uint32_t
shm_read32(uint64_t off)
{
	return (*(volatile uint32_t *)(void *)(dev.bar2 + off));
}

static void
shm_write64(uint64_t off, uint64_t v)
{
	*(volatile uint64_t *)(void *)(dev.bar2 + off) = v;
}

/*
 * The guest has no socket: the header is how it learns the layout.
 * Check it against what the device says before believing any offset.
 * The window and its fields are little-endian, like both targets.
 */
static int
read_header(void)
{
	struct region	*r;
	uint64_t	 magic, size, off, w[2];
	uint32_t	 version, hsize, count, roff, rsize, i;

	magic = shm_read64(offsetof(struct ivshm_header, magic));
	version = shm_read32(offsetof(struct ivshm_header, version));
	hsize = shm_read32(offsetof(struct ivshm_header, header_size));
	size = shm_read64(offsetof(struct ivshm_header, size));
	count = shm_read32(offsetof(struct ivshm_header, region_count));
	roff = shm_read32(offsetof(struct ivshm_header, region_offset));
	rsize = shm_read32(offsetof(struct ivshm_header, region_size));
	if (magic != IVSHM_MAGIC)
		return (fail("header magic 0x%" PRIx64, magic));
	if (version != IVSHM_VERSION)
		return (fail("header version %u", version));
	if (size != dev.bar2size)
		return (fail("header says 0x%" PRIx64 " bytes, BAR2 has 0x%"
		    PRIx64, size, dev.bar2size));
	if (rsize != sizeof(struct ivshm_region) || count == 0 ||
	    count > IVSHM_REGIONS_MAX || roff < sizeof(struct ivshm_header) ||
	    roff % 8 != 0 || (uint64_t)roff + (uint64_t)count * rsize > hsize ||
	    hsize > size)
		return (fail("bad region table: %u entries of %u at 0x%x, "
		    "header %u bytes", count, rsize, roff, hsize));

	for (i = 0; i < count; i++) {
		r = &regions[i];
		off = roff + (uint64_t)i * rsize;
		w[0] = shm_read64(off);
		w[1] = shm_read64(off + 8);
		memcpy(r->name, w, sizeof(r->name));
		r->begin = shm_read64(off +
		    offsetof(struct ivshm_region, begin));
		r->end = shm_read64(off + offsetof(struct ivshm_region, end));
		r->vector = shm_read32(off +
		    offsetof(struct ivshm_region, vector));
		if (memchr(r->name, '\0', sizeof(r->name)) == NULL ||
		    r->name[0] == '\0')
			return (fail("region %u has a bad name", i));
		if (r->begin < hsize || r->begin % 4096 != 0 ||
		    r->end <= r->begin || r->end > size ||
		    r->end - r->begin < MSG_WORDS * 8)
			return (fail("region %s: bad offsets 0x%" PRIx64
			    "-0x%" PRIx64, r->name, r->begin, r->end));
		if (r->vector > 0xffff)
			return (fail("region %s: vector %u", r->name,
			    r->vector));
		say("region %s begin 0x%" PRIx64 " end 0x%" PRIx64
		    " vector %u", r->name, r->begin, r->end, r->vector);
	}
	nregions = count;
	return (0);
}

/*
 * Wait for vector v.  Through vfio it is a real interrupt, delivered to
 * the vector's eventfd; otherwise poll the vector's pending bit.
 */
static int
wait_vector(unsigned int v, int ms)
{
	struct pollfd	pfd;
	uint64_t	cnt;
	long long	deadline;
	int		n;

	deadline = now_ns() + (long long)ms * 1000000;
	if (dev.vfio != -1) {
		if (v >= dev.nefd)
			return (fail("vector %u of %u", v, dev.nefd));
		pfd.fd = dev.efd[v];
		pfd.events = POLLIN;
		for (;;) {
			n = poll(&pfd, 1, ms);
			if (n == 1 && read(dev.efd[v], &cnt, sizeof(cnt)) ==
			    sizeof(cnt))
				return (0);
			if (n == 0 || now_ns() > deadline)
				return (fail("no interrupt on vector %u", v));
			if (n == -1 && errno != EINTR)
				return (fail("poll: %s", strerror(errno)));
		}
	}
	if (v >= dev.nvec)
		return (fail("vector %u of %u", v, dev.nvec));
	while ((dev.bar1[(dev.pbaoff + v / 32 * 4) / 4] &
	    (UINT32_C(1) << (v % 32))) == 0) {
		if (now_ns() > deadline)
			return (fail("vector %u never pending", v));
		sched_yield();
	}
	return (0);
}

/*
 * Clear a pending bit, which software cannot do directly: with bus
 * mastering off, unmask the vector so that QEMU sends (and drops) the
 * message and clears the bit, then mask everything again.
 */
static int
rearm(unsigned int v)
{
	uint16_t	cmd, ctl;
	int		rc;

	if (dev.vfio != -1)
		return (0);
	if (cfg_read(PCI_COMMAND, &cmd, sizeof(cmd)) == -1 ||
	    cfg_read(dev.msix + 2, &ctl, sizeof(ctl)) == -1)
		return (-1);
	cmd &= ~PCI_COMMAND_MASTER;
	ctl &= ~MSIX_MASKALL;
	rc = cfg_write(PCI_COMMAND, &cmd, sizeof(cmd));
	if (rc == 0)
		rc = cfg_write(dev.msix + 2, &ctl, sizeof(ctl));
	dev.bar1[(dev.tableoff + v * 16 + 12) / 4] = 0;
	dev.bar1[(dev.tableoff + v * 16 + 12) / 4] = 1;
	ctl |= MSIX_MASKALL;
	if (rc == 0)
		rc = cfg_write(dev.msix + 2, &ctl, sizeof(ctl));
	if (rc == 0 && (dev.bar1[(dev.pbaoff + v / 32 * 4) / 4] &
	    (UINT32_C(1) << (v % 32))) != 0)
		return (fail("vector %u still pending after re-arm", v));
	return (rc);
}

/*
 * One ping-pong on region r: the guest's words, the doorbell, the
 * interrupt, the host's word.  *ns gets the round trip.
 */
static int
exchange(const struct region *r, uint32_t seq, long long *ns)
{
	uint64_t	base, mine, answer;
	long long	t0;

	base = r->begin;
	mine = MSG_GMAGIC << 32 | seq;
	shm_write64(base + MSG_HOST * 8, 0);
	shm_write64(base + MSG_BEGIN * 8, r->begin);
	shm_write64(base + MSG_END * 8, r->end);
	shm_write64(base + MSG_VECTOR * 8, r->vector);
	shm_write64(base + MSG_BOOT * 8, boot);
	shm_write64(base + MSG_GUEST * 8, mine);
	__sync_synchronize();
	t0 = now_ns();
	bar0_write(REG_DOORBELL, HOST_PEER << 16 | r->vector);
	if (wait_vector(r->vector, WAIT_MS) == -1)
		return (-1);
	*ns = now_ns() - t0;
	__sync_synchronize();
	answer = shm_read64(base + MSG_HOST * 8);
	if (answer != (mine ^ MSG_HXOR))
		return (fail("region %s: host wrote 0x%016" PRIx64
		    ", expected 0x%016" PRIx64, r->name, answer,
		    mine ^ MSG_HXOR));
	return (rearm(r->vector));
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
	const char	*irqpath = "none";
	long long	*lat, ns;
	uint32_t	 ivpos, seq;
	unsigned int	 i;
	int		 ok;

	setup();
	dev.vfio = dev.config = -1;
	cmdline();
	if (find_device() == -1)
		goto out;

	irqpath = "pba";
	if (!forcepba) {
		if (vfio_open() == 0)
			irqpath = "vfio-msix";
		else {
			say("vfio unavailable (%s), polling the PBA",
			    failmsg);
			failmsg[0] = '\0';
			vfio_undo();
		}
	}
	if (dev.vfio == -1 && sysfs_open() == -1)
		goto out;

	ivpos = bar0_read(REG_IVPOSITION);
	say("ivposition %u", ivpos);
	if (ivpos != 1) {
		fail("IVPosition %u, expected 1 (ivserver's VM)", ivpos);
		goto out;
	}
	if (read_header() == -1)
		goto out;

	seq = boot << 20;
	if (!bench) {
		for (i = 0; i < nregions; i++) {
			if (exchange(&regions[i], seq++, &ns) == -1)
				goto out;
			say("answer %s in %lld us", regions[i].name,
			    ns / 1000);
		}
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
		    "p99 %lld max %lld us", irqpath, regions[0].name, rounds,
		    lat[0] / 1000, lat[rounds / 2] / 1000,
		    lat[(rounds * 99 + 99) / 100 - 1] / 1000,
		    lat[rounds - 1] / 1000);
	}

out:
	ok = failmsg[0] == '\0';
	if (ok)
		say("RESULT pass boot=%u irq=%s regions=%u", boot, irqpath,
		    nregions);
	else
		say("RESULT fail boot=%u: %s", boot, failmsg);
	finish(ok);
}
