/*
 * ivshm_dev.c: libivshm, guest side (Linux only): the ivshmem-doorbell
 * PCI device seen from a guest program.
 *
 * The registers (BAR 0) and the window (BAR 2) are mapped through the
 * device's sysfs resource files, or through vfio-pci when the program
 * wants real MSI-X interrupts; those arrive on one eventfd per vector.
 * Without vfio (no IOMMU, no module, the device bound to another
 * driver) the fallback is to enable MSI-X with the function masked and
 * poll the pending bits in BAR 1.  Device memory only ever gets
 * naturally aligned 32-bit and 64-bit accesses.  See libivshm(3) and
 * ivshm(5).
 */

/* Linux only: O_CLOEXEC, pread and eventfd even under -std=c99. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <sys/types.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <linux/vfio.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ivshm.h"

#define PCI_DEVICES		"/sys/bus/pci/devices"
#define PCI_DRIVERS		"/sys/bus/pci/drivers"
#define VFIO_DRIVER		"vfio-pci"

#define PCI_COMMAND		0x04
#define PCI_COMMAND_MEMORY	0x2
#define PCI_COMMAND_MASTER	0x4
#define PCI_STATUS		0x06
#define PCI_STATUS_CAPLIST	0x10
#define PCI_CAP_PTR		0x34
#define PCI_CAP_MSIX		0x11
#define MSIX_ENABLE		0x8000
#define MSIX_MASKALL		0x4000
#define MSIX_ENTRY		16	/* bytes per MSI-X table entry */
#define MSIX_CTRL		12	/* vector control word in an entry */

#define SPIN_NS			2000000	/* poll mode: yield, then sleep */

struct ivshm_dev {
	char			 addr[32];	/* 0000:00:03.0 */
	char			 path[96];	/* its sysfs directory */
	char			 err[IVSHM_ERRSIZE];
	int			 irq;		/* IVSHM_IRQ_* */
	int			 bound;		/* we bound vfio-pci */
	int			 config;	/* sysfs config, or -1 */
	int			 container;	/* vfio, or -1 */
	int			 group;
	int			 vfio;		/* vfio device, or -1 */
	uint64_t		 cfgoff;	/* vfio config region */
	uint64_t		 bar0off;	/* vfio BAR 0 region */
	volatile uint32_t	*bar0;		/* NULL: vfio pread/pwrite */
	size_t			 bar0len;
	volatile uint32_t	*bar1;		/* poll mode: MSI-X and PBA */
	size_t			 bar1len;
	volatile void		*win;		/* BAR 2 */
	uint64_t		 winsize;
	unsigned int		 msix;		/* capability offset */
	uint32_t		 tableoff;	/* in BAR 1 */
	uint32_t		 pbaoff;
	unsigned int		 nvec;
	int			*efd;		/* MSI-X mode: one per vector */
};

static int	 dev_err(struct ivshm_dev *, const char *, ...)
		    __attribute__((__format__(__printf__, 2, 3)));
static int	 readstr(const char *, char *, size_t);
static int	 writestr(const char *, const char *);
static int	 readhex(struct ivshm_dev *, const char *, unsigned long *);
static int	 is_ivshm(struct ivshm_dev *, const char *);
static int	 find_addr(struct ivshm_dev *, const char *);
static int	 bar_size(struct ivshm_dev *, unsigned int, uint64_t *);
static int	 driver_of(struct ivshm_dev *, char *, size_t);
static int	 cfg_read(struct ivshm_dev *, unsigned int, void *, size_t);
static int	 cfg_write(struct ivshm_dev *, unsigned int, const void *,
		    size_t);
static int	 cfg_command(struct ivshm_dev *, uint16_t);
static int	 find_msix(struct ivshm_dev *);
static void	*map_resource(struct ivshm_dev *, const char *, size_t *);
static int	 sysfs_map(struct ivshm_dev *, int);
static int	 poll_setup(struct ivshm_dev *);
static int	 vfio_bind(struct ivshm_dev *);
static int	 no_iommu(struct ivshm_dev *);
static int	 vfio_group(struct ivshm_dev *);
static int	 vfio_map(struct ivshm_dev *);
static int	 vfio_irqs(struct ivshm_dev *);
static int	 vfio_setup(struct ivshm_dev *);
static void	 vfio_undo(struct ivshm_dev *);
static void	 unmap_all(struct ivshm_dev *);
static int	 reg_read(struct ivshm_dev *, unsigned int, uint32_t *);
static int	 reg_write(struct ivshm_dev *, unsigned int, uint32_t);
static int	 pba_test(struct ivshm_dev *, uint32_t);
static void	 rearm(struct ivshm_dev *, uint32_t);
static int	 wait_msix(struct ivshm_dev *, uint32_t, int);
static int	 wait_pba(struct ivshm_dev *, uint32_t, int);
static long long now_ns(void);

/*
 * Barriers between the window and the registers.  Before a doorbell:
 * every store to the window is visible before the register write, which
 * on aarch64 is a store to Device memory, and on x86 may follow stores
 * held in write-combining buffers (IVSHM_DEV_WC).  After an interrupt:
 * no load from the window is satisfied before it.
 */
static inline void
wmb(void)
{
#if defined(__aarch64__)
	__asm__ __volatile__("dsb st" ::: "memory");
#elif defined(__x86_64__) || defined(__i386__)
	__asm__ __volatile__("sfence" ::: "memory");
#else
	__sync_synchronize();
#endif
}

static inline void
rmb(void)
{
#if defined(__aarch64__)
	__asm__ __volatile__("dsb ld" ::: "memory");
#else
	__sync_synchronize();
#endif
}

static int
dev_err(struct ivshm_dev *d, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(d->err, sizeof(d->err), fmt, ap);
	va_end(ap);
	return (-1);
}

static long long
now_ns(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((long long)ts.tv_sec * 1000000000 + ts.tv_nsec);
}

/* A small sysfs file, NUL terminated; -1 with errno. */
static int
readstr(const char *path, char *buf, size_t len)
{
	ssize_t	n;
	int	fd, e;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return (-1);
	n = read(fd, buf, len - 1);
	e = errno;
	close(fd);
	if (n < 0) {
		errno = e;
		return (-1);
	}
	buf[n] = '\0';
	return (0);
}

static int
writestr(const char *path, const char *s)
{
	ssize_t	n;
	int	fd, e;

	if ((fd = open(path, O_WRONLY | O_CLOEXEC)) == -1)
		return (-1);
	n = write(fd, s, strlen(s));
	e = errno;
	close(fd);
	if (n != (ssize_t)strlen(s)) {
		errno = n < 0 ? e : EIO;
		return (-1);
	}
	return (0);
}

static int
readhex(struct ivshm_dev *d, const char *file, unsigned long *v)
{
	char	path[PATH_MAX], buf[32], *end;

	snprintf(path, sizeof(path), "%s/%s", d->path, file);
	if (readstr(path, buf, sizeof(buf)) == -1)
		return (dev_err(d, "%s: %s", path, strerror(errno)));
	errno = 0;
	*v = strtoul(buf, &end, 16);
	if (errno != 0 || end == buf)
		return (dev_err(d, "%s: not a number", path));
	return (0);
}

/* 1: d->path is an ivshmem device, 0: another device, -1: error. */
static int
is_ivshm(struct ivshm_dev *d, const char *addr)
{
	unsigned long	vendor, device;

	if ((size_t)snprintf(d->path, sizeof(d->path), "%s/%s", PCI_DEVICES,
	    addr) >= sizeof(d->path))
		return (dev_err(d, "PCI address %.40s too long", addr));
	if (readhex(d, "vendor", &vendor) == -1 ||
	    readhex(d, "device", &device) == -1)
		return (-1);
	if (vendor != IVSHM_PCI_VENDOR || device != IVSHM_PCI_DEVICE) {
		dev_err(d, "%s is %04lx:%04lx, not an ivshmem device "
		    "(%04x:%04x)", addr, vendor, device, IVSHM_PCI_VENDOR,
		    IVSHM_PCI_DEVICE);
		return (0);
	}
	return (1);
}

/*
 * The device at addr (with or without the domain), or the ivshmem
 * device with the lowest address, so that the choice is stable.
 */
static int
find_addr(struct ivshm_dev *d, const char *addr)
{
	struct dirent	*de;
	DIR		*dir;
	char		 best[sizeof(d->addr)];
	int		 r;

	if (addr != NULL) {
		if (strspn(addr, "0123456789abcdefABCDEF:.") != strlen(addr) ||
		    strlen(addr) < 7 || strlen(addr) > 12)
			return (dev_err(d, "%.40s: not a PCI address "
			    "(like 0000:00:03.0)", addr));
		snprintf(d->addr, sizeof(d->addr), "%s%s",
		    strlen(addr) < 12 ? "0000:" : "", addr);
		snprintf(d->path, sizeof(d->path), "%s/%s", PCI_DEVICES,
		    d->addr);
		if (access(d->path, F_OK) == -1)
			return (dev_err(d, "no PCI device %s (%s: %s)", d->addr,
			    d->path, strerror(errno)));
		if ((r = is_ivshm(d, d->addr)) != 1)
			return (-1);
		return (0);
	}
	if ((dir = opendir(PCI_DEVICES)) == NULL)
		return (dev_err(d, "%s: %s", PCI_DEVICES, strerror(errno)));
	best[0] = '\0';
	while ((de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.' ||
		    strlen(de->d_name) >= sizeof(best))
			continue;
		if (best[0] != '\0' && strcmp(de->d_name, best) > 0)
			continue;
		if (is_ivshm(d, de->d_name) == 1)
			memcpy(best, de->d_name, strlen(de->d_name) + 1);
	}
	closedir(dir);
	if (best[0] == '\0')
		return (dev_err(d, "no %04x:%04x device in %s",
		    IVSHM_PCI_VENDOR, IVSHM_PCI_DEVICE, PCI_DEVICES));
	memcpy(d->addr, best, sizeof(best));
	snprintf(d->path, sizeof(d->path), "%s/%s", PCI_DEVICES, d->addr);
	return (0);
}

/* Line bar of the sysfs "resource" file: start end flags. */
static int
bar_size(struct ivshm_dev *d, unsigned int bar, uint64_t *size)
{
	char			 path[PATH_MAX], buf[1024], *p;
	unsigned long long	 start, end, flags;
	unsigned int		 line;

	snprintf(path, sizeof(path), "%s/resource", d->path);
	if (readstr(path, buf, sizeof(buf)) == -1)
		return (dev_err(d, "%s: %s", path, strerror(errno)));
	for (p = buf, line = 0; line < bar && p != NULL; line++)
		if ((p = strchr(p, '\n')) != NULL)
			p++;
	if (p == NULL || sscanf(p, "%llx %llx %llx", &start, &end,
	    &flags) != 3 || start == 0 || end <= start)
		return (dev_err(d, "%s: BAR %u is not assigned", path, bar));
	*size = end - start + 1;
	return (0);
}

/* The driver bound to the device, "" if none. */
static int
driver_of(struct ivshm_dev *d, char *name, size_t len)
{
	char	path[PATH_MAX], link[PATH_MAX], *p;
	ssize_t	n;

	snprintf(path, sizeof(path), "%s/driver", d->path);
	if ((n = readlink(path, link, sizeof(link) - 1)) == -1) {
		if (errno != ENOENT)
			return (dev_err(d, "%s: %s", path, strerror(errno)));
		name[0] = '\0';
		return (0);
	}
	link[n] = '\0';
	p = strrchr(link, '/') != NULL ? strrchr(link, '/') + 1 : link;
	if ((size_t)snprintf(name, len, "%s", p) >= len)
		return (dev_err(d, "%s: driver name too long", path));
	return (0);
}

/* Configuration space: through vfio once it has the device. */
static int
cfg_read(struct ivshm_dev *d, unsigned int off, void *buf, size_t len)
{
	ssize_t	n;

	if (d->vfio != -1)
		n = pread(d->vfio, buf, len, d->cfgoff + off);
	else
		n = pread(d->config, buf, len, off);
	if (n != (ssize_t)len)
		return (dev_err(d, "%s: config read at 0x%x: %s", d->addr,
		    off, n < 0 ? strerror(errno) : "short"));
	return (0);
}

static int
cfg_write(struct ivshm_dev *d, unsigned int off, const void *buf,
    size_t len)
{
	ssize_t	n;

	if (d->vfio != -1)
		n = pwrite(d->vfio, buf, len, d->cfgoff + off);
	else
		n = pwrite(d->config, buf, len, off);
	if (n != (ssize_t)len)
		return (dev_err(d, "%s: config write at 0x%x: %s", d->addr,
		    off, n < 0 ? strerror(errno) : "short"));
	return (0);
}

/* Set bits in the command register (little-endian like the targets). */
static int
cfg_command(struct ivshm_dev *d, uint16_t bits)
{
	uint16_t	cmd;

	if (cfg_read(d, PCI_COMMAND, &cmd, sizeof(cmd)) == -1)
		return (-1);
	if ((cmd & bits) == bits)
		return (0);
	cmd |= bits;
	return (cfg_write(d, PCI_COMMAND, &cmd, sizeof(cmd)));
}

static int
find_msix(struct ivshm_dev *d)
{
	uint16_t	status, ctl;
	uint8_t		ptr, id;
	int		guard;

	if (cfg_read(d, PCI_STATUS, &status, sizeof(status)) == -1)
		return (-1);
	if ((status & PCI_STATUS_CAPLIST) == 0)
		return (dev_err(d, "%s: no capability list", d->addr));
	if (cfg_read(d, PCI_CAP_PTR, &ptr, 1) == -1)
		return (-1);
	/* 48 capabilities fill the space: a loop is a broken device. */
	for (guard = 0; ptr >= 0x40 && guard < 48; guard++) {
		ptr &= ~3;
		if (cfg_read(d, ptr, &id, 1) == -1)
			return (-1);
		if (id == PCI_CAP_MSIX)
			break;
		if (cfg_read(d, ptr + 1, &ptr, 1) == -1)
			return (-1);
	}
	if (ptr < 0x40 || guard == 48)
		return (dev_err(d, "%s: no MSI-X capability", d->addr));
	d->msix = ptr;
	if (cfg_read(d, d->msix + 2, &ctl, sizeof(ctl)) == -1 ||
	    cfg_read(d, d->msix + 4, &d->tableoff, 4) == -1 ||
	    cfg_read(d, d->msix + 8, &d->pbaoff, 4) == -1)
		return (-1);
	d->nvec = (ctl & 0x7ff) + 1;
	if ((d->tableoff & 7) != 1 || (d->pbaoff & 7) != 1)
		return (dev_err(d, "%s: MSI-X table or PBA not in BAR 1",
		    d->addr));
	d->tableoff &= ~7U;
	d->pbaoff &= ~7U;
	return (0);
}

static void *
map_resource(struct ivshm_dev *d, const char *file, size_t *lenp)
{
	struct stat	 st;
	char		 path[PATH_MAX], drv[64];
	void		*p;
	int		 fd;

	snprintf(path, sizeof(path), "%s/%s", d->path, file);
	if ((fd = open(path, O_RDWR | O_CLOEXEC)) == -1) {
		dev_err(d, "%s: %s%s", path, strerror(errno),
		    errno == EACCES ? " (needs root)" : "");
		return (NULL);
	}
	if (fstat(fd, &st) == -1 || st.st_size <= 0 ||
	    (uint64_t)st.st_size > SIZE_MAX) {
		close(fd);
		dev_err(d, "%s: no size", path);
		return (NULL);
	}
	p = mmap(NULL, st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED) {
		/* Strict devmem: a driver that claimed the BAR owns it. */
		if (errno == EINVAL && driver_of(d, drv, sizeof(drv)) == 0 &&
		    drv[0] != '\0')
			dev_err(d, "mmap %s: %s (the BAR is in use by %s; "
			    "close the program that has the device open)",
			    path, strerror(errno), drv);
		else
			dev_err(d, "mmap %s: %s", path, strerror(errno));
		return (NULL);
	}
	*lenp = st.st_size;
	return (p);
}

/* BAR 0 and BAR 2 through sysfs. */
static int
sysfs_map(struct ivshm_dev *d, int flags)
{
	size_t	len;
	void	*p;

	if (cfg_command(d, PCI_COMMAND_MEMORY) == -1)
		return (-1);
	if ((p = map_resource(d, "resource0", &d->bar0len)) == NULL)
		return (-1);
	d->bar0 = p;
	if (d->bar0len < IVSHM_REG_DOORBELL + 4)
		return (dev_err(d, "%s: BAR 0 has only %zu bytes", d->addr,
		    d->bar0len));
	p = map_resource(d, flags & IVSHM_DEV_WC ? "resource2_wc" :
	    "resource2", &len);
	if (p == NULL)
		return (-1);
	d->win = p;
	if (len != d->winsize) {
		munmap(p, len);
		d->win = NULL;
		return (dev_err(d, "%s: resource2 has 0x%zx bytes, BAR 2 "
		    "0x%llx", d->addr, len, (unsigned long long)d->winsize));
	}
	return (0);
}

/*
 * The fallback: MSI-X enabled with every vector masked, so that a host
 * signal sets its vector's pending bit instead of being sent, or lost
 * (while MSI-X is off QEMU drops it).  Bus mastering stays off, so that
 * rearm() can have a message sent into the void.
 */
static int
poll_setup(struct ivshm_dev *d)
{
	uint16_t	cmd, ctl;
	uint32_t	v;
	void		*p;

	if (find_msix(d) == -1)
		return (-1);
	if ((p = map_resource(d, "resource1", &d->bar1len)) == NULL)
		return (-1);
	d->bar1 = p;
	if ((uint64_t)d->tableoff + d->nvec * MSIX_ENTRY > d->bar1len ||
	    (uint64_t)d->pbaoff + (d->nvec + 31) / 32 * 4 > d->bar1len)
		return (dev_err(d, "%s: MSI-X table or PBA past BAR 1",
		    d->addr));
	if (cfg_read(d, PCI_COMMAND, &cmd, sizeof(cmd)) == -1)
		return (-1);
	cmd &= ~PCI_COMMAND_MASTER;
	if (cfg_write(d, PCI_COMMAND, &cmd, sizeof(cmd)) == -1)
		return (-1);
	/* Masked one by one first, then the function may be unmasked. */
	if (cfg_read(d, d->msix + 2, &ctl, sizeof(ctl)) == -1)
		return (-1);
	ctl |= MSIX_ENABLE | MSIX_MASKALL;
	if (cfg_write(d, d->msix + 2, &ctl, sizeof(ctl)) == -1)
		return (-1);
	for (v = 0; v < d->nvec; v++)
		d->bar1[(d->tableoff + v * MSIX_ENTRY + MSIX_CTRL) / 4] = 1;
	ctl &= ~MSIX_MASKALL;
	if (cfg_write(d, d->msix + 2, &ctl, sizeof(ctl)) == -1)
		return (-1);
	d->irq = IVSHM_IRQ_POLL;
	return (0);
}

/*
 * Bind the device to vfio-pci unless it is already.  A device bound
 * to another driver is left alone: taking it away is the user's call.
 */
static int
vfio_bind(struct ivshm_dev *d)
{
	char	path[PATH_MAX], drv[64];

	if (access(PCI_DRIVERS "/" VFIO_DRIVER, F_OK) == -1) {
		if (access("/sys/module/vfio", F_OK) == -1)
			return (dev_err(d, "no vfio module: load vfio-pci "
			    "(modprobe vfio-pci)"));
		return (dev_err(d, "no %s driver: load it (modprobe "
		    "vfio-pci)", VFIO_DRIVER));
	}
	if (driver_of(d, drv, sizeof(drv)) == -1)
		return (-1);
	if (strcmp(drv, VFIO_DRIVER) == 0)
		return (0);
	if (drv[0] != '\0')
		return (dev_err(d, "%s is bound to %s, not %s: unbind it "
		    "first (echo %s > %s/%s/unbind)", d->addr, drv,
		    VFIO_DRIVER, d->addr, PCI_DRIVERS, drv));
	snprintf(path, sizeof(path), "%s/driver_override", d->path);
	if (writestr(path, VFIO_DRIVER) == -1)
		return (dev_err(d, "%s: %s", path, strerror(errno)));
	d->bound = 1;
	if (writestr("/sys/bus/pci/drivers_probe", d->addr) == -1)
		return (dev_err(d, "/sys/bus/pci/drivers_probe %s: %s",
		    d->addr, strerror(errno)));
	if (driver_of(d, drv, sizeof(drv)) == -1)
		return (-1);
	if (strcmp(drv, VFIO_DRIVER) == 0)
		return (0);
	/* Without VFIO_NOIOMMU, vfio-pci refuses a device with no group. */
	snprintf(path, sizeof(path), "%s/iommu_group", d->path);
	if (access(path, F_OK) == -1)
		return (no_iommu(d));
	return (dev_err(d, "%s did not take %s (driver now %s)",
	    VFIO_DRIVER, d->addr, drv[0] != '\0' ? drv : "none"));
}

static int
no_iommu(struct ivshm_dev *d)
{
	return (dev_err(d, "%s has no IOMMU group: the VM needs an IOMMU "
	    "(x86_64: -device intel-iommu and intel_iommu=on; aarch64: "
	    "-M virt,iommu=smmuv3,gic-version=3)", d->addr));
}

/* The container and the group; the device's IOMMU group is the key. */
static int
vfio_group(struct ivshm_dev *d)
{
	struct vfio_group_status	 gs;
	char				 path[PATH_MAX], link[PATH_MAX], *g;
	ssize_t				 n;
	int				 type = VFIO_TYPE1v2_IOMMU;

	snprintf(path, sizeof(path), "%s/iommu_group", d->path);
	if ((n = readlink(path, link, sizeof(link) - 1)) == -1)
		return (no_iommu(d));
	link[n] = '\0';
	g = strrchr(link, '/') != NULL ? strrchr(link, '/') + 1 : link;
	if (strlen(g) > 32)
		return (dev_err(d, "%s: bad IOMMU group %.32s", path, g));
	snprintf(path, sizeof(path), "/dev/vfio/%.32s", g);
	if (access(path, F_OK) == -1) {
		/* A kernel with VFIO_NOIOMMU names such groups so. */
		snprintf(path, sizeof(path), "/dev/vfio/noiommu-%.32s", g);
		type = VFIO_NOIOMMU_IOMMU;
	}
	if ((d->container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC)) == -1)
		return (dev_err(d, "/dev/vfio/vfio: %s", strerror(errno)));
	if (ioctl(d->container, VFIO_GET_API_VERSION) != VFIO_API_VERSION ||
	    ioctl(d->container, VFIO_CHECK_EXTENSION, type) != 1)
		return (dev_err(d, "/dev/vfio/vfio: no API %d or no IOMMU "
		    "type %d", VFIO_API_VERSION, type));
	if ((d->group = open(path, O_RDWR | O_CLOEXEC)) == -1)
		return (dev_err(d, "%s: %s%s", path, strerror(errno),
		    errno == EBUSY ? " (another program has the device "
		    "open through vfio)" : ""));
	memset(&gs, 0, sizeof(gs));
	gs.argsz = sizeof(gs);
	if (ioctl(d->group, VFIO_GROUP_GET_STATUS, &gs) == -1 ||
	    (gs.flags & VFIO_GROUP_FLAGS_VIABLE) == 0)
		return (dev_err(d, "%s: not viable (every device of IOMMU "
		    "group %s must be bound to vfio-pci or to no driver)",
		    path, g));
	if (ioctl(d->group, VFIO_GROUP_SET_CONTAINER, &d->container) == -1)
		return (dev_err(d, "%s: VFIO_GROUP_SET_CONTAINER: %s", path,
		    strerror(errno)));
	if (ioctl(d->container, VFIO_SET_IOMMU, type) == -1)
		return (dev_err(d, "VFIO_SET_IOMMU: %s%s", strerror(errno),
		    errno == EPERM ? " (the interrupt controller cannot "
		    "isolate MSIs: on aarch64 use -M virt,gic-version=3)" :
		    ""));
	if ((d->vfio = ioctl(d->group, VFIO_GROUP_GET_DEVICE_FD,
	    d->addr)) == -1)
		return (dev_err(d, "%s: VFIO_GROUP_GET_DEVICE_FD: %s",
		    d->addr, strerror(errno)));
	return (0);
}

/*
 * BAR 2, and BAR 0 where vfio lets it be mapped, through the device
 * fd: once vfio-pci claims the BARs, a sysfs mapping may be revoked.
 */
static int
vfio_map(struct ivshm_dev *d)
{
	struct vfio_region_info	 ri;
	size_t			 pg = (size_t)sysconf(_SC_PAGESIZE);
	void			*p;

	memset(&ri, 0, sizeof(ri));
	ri.argsz = sizeof(ri);
	ri.index = VFIO_PCI_CONFIG_REGION_INDEX;
	if (ioctl(d->vfio, VFIO_DEVICE_GET_REGION_INFO, &ri) == -1)
		return (dev_err(d, "%s: vfio config region: %s", d->addr,
		    strerror(errno)));
	d->cfgoff = ri.offset;

	ri.index = VFIO_PCI_BAR2_REGION_INDEX;
	if (ioctl(d->vfio, VFIO_DEVICE_GET_REGION_INFO, &ri) == -1 ||
	    (ri.flags & VFIO_REGION_INFO_FLAG_MMAP) == 0)
		return (dev_err(d, "%s: vfio cannot map BAR 2", d->addr));
	if (ri.size != d->winsize)
		return (dev_err(d, "%s: vfio says BAR 2 has 0x%llx bytes, "
		    "sysfs 0x%llx", d->addr, (unsigned long long)ri.size,
		    (unsigned long long)d->winsize));
	p = mmap(NULL, ri.size, PROT_READ | PROT_WRITE, MAP_SHARED, d->vfio,
	    ri.offset);
	if (p == MAP_FAILED)
		return (dev_err(d, "%s: mmap BAR 2 through vfio: %s",
		    d->addr, strerror(errno)));
	d->win = p;

	ri.index = VFIO_PCI_BAR0_REGION_INDEX;
	if (ioctl(d->vfio, VFIO_DEVICE_GET_REGION_INFO, &ri) == -1 ||
	    ri.size < IVSHM_REG_DOORBELL + 4)
		return (dev_err(d, "%s: vfio BAR 0 region", d->addr));
	d->bar0off = ri.offset;
	/* vfio maps a BAR smaller than a page as the whole page. */
	if (ri.flags & VFIO_REGION_INFO_FLAG_MMAP) {
		p = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_SHARED,
		    d->vfio, ri.offset);
		if (p != MAP_FAILED) {
			d->bar0 = p;
			d->bar0len = pg;
		}
	}
	return (cfg_command(d, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER));
}

/* One eventfd per MSI-X vector; QEMU sends MSIs as bus-master writes. */
static int
vfio_irqs(struct ivshm_dev *d)
{
	struct vfio_irq_info	 ii;
	struct vfio_irq_set	*set;
	size_t			 len;
	unsigned int		 i;
	int			 rc;

	memset(&ii, 0, sizeof(ii));
	ii.argsz = sizeof(ii);
	ii.index = VFIO_PCI_MSIX_IRQ_INDEX;
	if (ioctl(d->vfio, VFIO_DEVICE_GET_IRQ_INFO, &ii) == -1 ||
	    ii.count == 0 || ii.count > 2048)
		return (dev_err(d, "%s: no MSI-X through vfio", d->addr));
	d->nvec = ii.count;
	if ((d->efd = calloc(d->nvec, sizeof(int))) == NULL)
		return (dev_err(d, "%s", strerror(errno)));
	for (i = 0; i < d->nvec; i++)
		d->efd[i] = -1;
	len = sizeof(*set) + d->nvec * sizeof(int32_t);
	if ((set = calloc(1, len)) == NULL)
		return (dev_err(d, "%s", strerror(errno)));
	set->argsz = len;
	set->flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
	set->index = VFIO_PCI_MSIX_IRQ_INDEX;
	set->start = 0;
	set->count = d->nvec;
	for (i = 0; i < d->nvec; i++) {
		if ((d->efd[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) ==
		    -1) {
			free(set);
			return (dev_err(d, "eventfd: %s", strerror(errno)));
		}
		memcpy(set->data + i * sizeof(int32_t), &d->efd[i],
		    sizeof(int32_t));
	}
	rc = ioctl(d->vfio, VFIO_DEVICE_SET_IRQS, set);
	free(set);
	if (rc == -1)
		return (dev_err(d, "%s: VFIO_DEVICE_SET_IRQS: %s", d->addr,
		    strerror(errno)));
	d->irq = IVSHM_IRQ_MSIX;
	return (0);
}

static int
vfio_setup(struct ivshm_dev *d)
{
	if (vfio_bind(d) == -1 || vfio_group(d) == -1 || vfio_map(d) == -1 ||
	    vfio_irqs(d) == -1)
		return (-1);
	return (0);
}

static void
unmap_all(struct ivshm_dev *d)
{
	if (d->win != NULL)
		munmap((void *)(uintptr_t)d->win, d->winsize);
	if (d->bar0 != NULL)
		munmap((void *)(uintptr_t)d->bar0, d->bar0len);
	if (d->bar1 != NULL)
		munmap((void *)(uintptr_t)d->bar1, d->bar1len);
	d->win = NULL;
	d->bar0 = d->bar1 = NULL;
}

/* Back to the sysfs path, and to no driver if we bound vfio-pci. */
static void
vfio_undo(struct ivshm_dev *d)
{
	char		path[PATH_MAX];
	unsigned int	i;

	unmap_all(d);
	for (i = 0; d->efd != NULL && i < d->nvec; i++)
		if (d->efd[i] != -1)
			close(d->efd[i]);
	free(d->efd);
	d->efd = NULL;
	if (d->vfio != -1)
		close(d->vfio);
	if (d->group != -1)
		close(d->group);
	if (d->container != -1)
		close(d->container);
	d->vfio = d->group = d->container = -1;
	d->irq = IVSHM_IRQ_NONE;
	if (d->bound) {
		snprintf(path, sizeof(path), "%s/driver/unbind", d->path);
		(void)writestr(path, d->addr);
		snprintf(path, sizeof(path), "%s/driver_override", d->path);
		(void)writestr(path, "\n");
		d->bound = 0;
	}
}

struct ivshm_dev *
ivshm_dev_open(const char *addr, int flags, char *err, size_t errlen)
{
	struct ivshm_dev	*d;
	char			 path[PATH_MAX], why[IVSHM_ERRSIZE];

	why[0] = '\0';
	if ((d = calloc(1, sizeof(*d))) == NULL) {
		snprintf(err, errlen, "%s", strerror(errno));
		return (NULL);
	}
	d->config = d->container = d->group = d->vfio = -1;
	if (find_addr(d, addr) == -1 || bar_size(d, 2, &d->winsize) == -1)
		goto fail;
	snprintf(path, sizeof(path), "%s/config", d->path);
	if ((d->config = open(path, O_RDWR | O_CLOEXEC)) == -1) {
		dev_err(d, "%s: %s%s", path, strerror(errno),
		    errno == EACCES ? " (needs root)" : "");
		goto fail;
	}
	if (flags & IVSHM_DEV_MSIX) {
		if (vfio_setup(d) == 0)
			return (d);
		if ((flags & IVSHM_DEV_POLL) == 0)
			goto fail;
		snprintf(why, sizeof(why), "no MSI-X, polling: %.200s",
		    d->err);
		vfio_undo(d);
	}
	if (sysfs_map(d, flags) == -1)
		goto fail;
	if ((flags & IVSHM_DEV_POLL) && poll_setup(d) == -1)
		goto fail;
	/* Without interrupts, the vector count is only for the curious. */
	if ((flags & IVSHM_DEV_POLL) == 0 && find_msix(d) == -1)
		d->nvec = 0;
	/* Why MSI-X did not work stays for ivshm_dev_strerror. */
	snprintf(d->err, sizeof(d->err), "%s", why);
	return (d);
fail:
	snprintf(err, errlen, "%s", d->err);
	vfio_undo(d);
	ivshm_dev_close(d);
	return (NULL);
}

/*
 * vfio-pci stays bound: the next program gets the device the same way.
 * Closing the vfio fds disables MSI-X; rings until the next open are
 * lost.
 */
void
ivshm_dev_close(struct ivshm_dev *d)
{
	if (d == NULL)
		return;
	d->bound = 0;
	vfio_undo(d);
	if (d->config != -1)
		close(d->config);
	free(d);
}

const char *
ivshm_dev_strerror(const struct ivshm_dev *d)
{
	return (d->err);
}

const char *
ivshm_dev_addr(const struct ivshm_dev *d)
{
	return (d->addr);
}

volatile void *
ivshm_dev_window(const struct ivshm_dev *d, uint64_t *size)
{
	if (size != NULL)
		*size = d->winsize;
	return (d->win);
}

int
ivshm_dev_find(struct ivshm_dev *d, const char *name,
    struct ivshm_region *r)
{
	return (ivshm_window_find(d->win, d->winsize, name, r, d->err,
	    sizeof(d->err)));
}

int
ivshm_dev_irq(const struct ivshm_dev *d)
{
	return (d->irq);
}

unsigned int
ivshm_dev_vectors(const struct ivshm_dev *d)
{
	return (d->nvec);
}

int
ivshm_dev_eventfd(const struct ivshm_dev *d, uint32_t v)
{
	if (d->irq != IVSHM_IRQ_MSIX || v >= d->nvec)
		return (-1);
	return (d->efd[v]);
}

/* vfio turns an aligned 4-byte pread or pwrite into one access. */
static int
reg_read(struct ivshm_dev *d, unsigned int reg, uint32_t *v)
{
	if (d->bar0 != NULL)
		*v = d->bar0[reg / 4];
	else if (pread(d->vfio, v, 4, d->bar0off + reg) != 4)
		return (dev_err(d, "%s: BAR 0 read at %u: %s", d->addr, reg,
		    strerror(errno)));
	return (0);
}

static int
reg_write(struct ivshm_dev *d, unsigned int reg, uint32_t v)
{
	if (d->bar0 != NULL)
		d->bar0[reg / 4] = v;
	else if (pwrite(d->vfio, &v, 4, d->bar0off + reg) != 4)
		return (dev_err(d, "%s: BAR 0 write at %u: %s", d->addr, reg,
		    strerror(errno)));
	return (0);
}

int
ivshm_dev_position(struct ivshm_dev *d, uint32_t *pos)
{
	return (reg_read(d, IVSHM_REG_IVPOSITION, pos));
}

/*
 * QEMU takes only the low 8 bits of the vector, so a larger one would
 * ring another: refuse it.
 */
int
ivshm_dev_ring(struct ivshm_dev *d, uint32_t peer, uint32_t v)
{
	if (peer > 0xffff)
		return (dev_err(d, "peer %u: peer IDs have 16 bits", peer));
	if (v > 255)
		return (dev_err(d, "vector %u: only vectors 0 to 255 can be "
		    "rung", v));
	wmb();
	return (reg_write(d, IVSHM_REG_DOORBELL, IVSHM_DOORBELL(peer, v)));
}

static int
pba_test(struct ivshm_dev *d, uint32_t v)
{
	return ((d->bar1[(d->pbaoff + v / 32 * 4) / 4] >> (v % 32)) & 1);
}

/*
 * Software cannot clear a pending bit.  Unmasking the vector makes
 * QEMU send the message, which goes nowhere with bus mastering off,
 * and clear the bit; then the vector is masked again.  Two stores to
 * BAR 1, no system call.
 */
static void
rearm(struct ivshm_dev *d, uint32_t v)
{
	d->bar1[(d->tableoff + v * MSIX_ENTRY + MSIX_CTRL) / 4] = 0;
	d->bar1[(d->tableoff + v * MSIX_ENTRY + MSIX_CTRL) / 4] = 1;
}

static int
wait_msix(struct ivshm_dev *d, uint32_t v, int ms)
{
	struct pollfd	pfd;
	uint64_t	cnt;
	long long	deadline;
	int		n, left;

	deadline = now_ns() + (long long)ms * 1000000;
	pfd.fd = d->efd[v];
	pfd.events = POLLIN;
	for (;;) {
		if (read(d->efd[v], &cnt, sizeof(cnt)) == sizeof(cnt)) {
			rmb();
			return (cnt > INT_MAX ? INT_MAX : (int)cnt);
		}
		if (errno != EAGAIN && errno != EINTR)
			return (dev_err(d, "vector %u eventfd: %s", v,
			    strerror(errno)));
		left = -1;
		if (ms >= 0) {
			if (now_ns() >= deadline)
				break;
			left = (int)((deadline - now_ns()) / 1000000) + 1;
		}
		n = poll(&pfd, 1, left);
		if (n == -1 && errno != EINTR)
			return (dev_err(d, "poll: %s", strerror(errno)));
	}
	dev_err(d, "no interrupt on vector %u in %d ms", v, ms);
	return (0);
}

static int
wait_pba(struct ivshm_dev *d, uint32_t v, int ms)
{
	struct timespec	ts = { 0, 100000 };
	long long	start, t;

	start = now_ns();
	while (!pba_test(d, v)) {
		t = now_ns() - start;
		if (ms >= 0 && t >= (long long)ms * 1000000) {
			dev_err(d, "vector %u not pending in %d ms", v, ms);
			return (0);
		}
		/* Spin briefly for latency, then stop burning the CPU. */
		if (t < SPIN_NS)
			sched_yield();
		else
			nanosleep(&ts, NULL);
	}
	rearm(d, v);
	rmb();
	return (1);
}

/*
 * Wait up to ms milliseconds (-1: for ever) for vector v: the count
 * of interrupts merged since the last wait (at least 1), 0 on timeout.
 */
int
ivshm_dev_wait(struct ivshm_dev *d, uint32_t v, int ms)
{
	if (v >= d->nvec && d->irq != IVSHM_IRQ_NONE)
		return (dev_err(d, "vector %u: the device has %u", v,
		    d->nvec));
	switch (d->irq) {
	case IVSHM_IRQ_MSIX:
		return (wait_msix(d, v, ms));
	case IVSHM_IRQ_POLL:
		return (wait_pba(d, v, ms));
	default:
		return (dev_err(d, "%s: opened without IVSHM_DEV_MSIX or "
		    "IVSHM_DEV_POLL; poll a word in the region instead",
		    d->addr));
	}
}
