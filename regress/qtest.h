/*
 * qtest: drive a QEMU with no guest through the qtest line protocol.
 *
 * QEMU runs with -S, so no guest CPU ever runs, and with one
 * ivshmem-doorbell device.  The caller plays the guest: it programs the
 * PCI device through the 0xcf8/0xcfc config ports and reads and writes
 * guest memory.  Every wait has a deadline and a QEMU that overstays is
 * killed.
 */

#ifndef QTEST_H
#define QTEST_H

#include <sys/types.h>

#include <limits.h>
#include <signal.h>
#include <stdint.h>

#define IO_TIMEOUT	5000		/* ms: a qtest reply, any reply */
#define EVENT_TIMEOUT	2000		/* ms: a PBA bit, any event */
#define START_TIMEOUT	20000		/* ms: QEMU start to qtest */
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

/*
 * Where the BARs go: BAR0 and BAR1 in the 32-bit hole, BAR2 at 4G or
 * higher so that the 64-bit BAR really needs its high half.  Pending
 * MSI-X messages are sent to plain guest RAM at SCRATCH.
 */
#define BAR0_ADDR	0xe0000000ULL
#define BAR1_ADDR	0xe0100000ULL
#define BAR2_MIN	0x100000000ULL
#define SCRATCH		0x10000ULL

/* How to start a QEMU. */
struct qemu_conf {
	const char	*bin;		/* the QEMU program */
	const char	*dir;		/* for qtest sockets and stderr files */
	const char	*sock;		/* the ivshmem server's socket */
	unsigned int	 vectors;	/* of the ivshmem device */
	int		 lifetime;	/* ms: killed after this */
	volatile sig_atomic_t *started;	/* set to n, for signal handlers */
};

struct qemu {
	int		 n;		/* 1, 2, ..., for messages */
	long		 id;		/* IVPosition, or -1 */
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

long long	 now_ms(void);
void		 sleep_ms(int);
int		 readable(int, int);
void		 argv_add(char **, int *, const char *);
void		 showfile(const char *, off_t *, const char *);
int		 qemu_start(struct qemu *, int, int, const struct qemu_conf *);
int		 qemu_exited(struct qemu *);
int		 qemu_wait(struct qemu *, int);
void		 qemu_kill(struct qemu *);
void		 qemu_remove(struct qemu *, const char *);
void		 qemu_showerr(struct qemu *);
int		 qemu_errhas(struct qemu *, const char *);
const char	*qt_cmd(struct qemu *, const char *, ...)
		    __attribute__((__format__(__printf__, 2, 3)));
int		 qt_num(struct qemu *, uint64_t *, const char *, ...)
		    __attribute__((__format__(__printf__, 3, 4)));
int		 cfg_read(struct qemu *, int, uint32_t *);
int		 cfg_write(struct qemu *, int, uint32_t);
int		 cfg_write16(struct qemu *, int, uint16_t);
int		 bar_probe(struct qemu *, int, uint64_t *, int *);
int		 bar_probe_all(struct qemu *, uint64_t *, int *);
int		 bar_map(struct qemu *, uint64_t);
int		 msix_find(struct qemu *, int *, uint32_t *, uint32_t *,
		    uint32_t *);
int		 msix_enable(struct qemu *, int, uint32_t, uint32_t, uint32_t,
		    int *);
int		 pba_read(struct qemu *, uint32_t *);
int		 pba_expect(struct qemu *, int);
int		 msix_deliver(struct qemu *, unsigned int);

#endif /* QTEST_H */
