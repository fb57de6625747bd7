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
#include <stdint.h>

/*
 * Deadlines bound waits for something that must come: they are
 * generous, as the tests share two CPUs with whatever else runs.
 */
#define IO_TIMEOUT	20000		/* ms: a qtest reply, any reply */
#define EVENT_TIMEOUT	10000		/* ms: a PBA bit, any event */
#define START_TIMEOUT	60000		/* ms: QEMU start to qtest */
#define MAXVEC		256		/* the doorbell has 8 bits of vector */

#define PCI_SLOT	4
#define IVPOSITION	8		/* BAR0 registers */
#define DOORBELL	12

/* How to start a QEMU, and what its device must look like. */
struct qvm_conf {
	const char	*bin;		/* the QEMU program */
	const char	*dir;		/* for qtest sockets and stderr files */
	const char	*sock;		/* the ivshmem server's socket */
	unsigned int	 vectors;	/* of the ivshmem device, <= MAXVEC */
	uint64_t	 winsize;	/* BAR2's size, 0 for any */
	int		 lifetime;	/* ms: killed after this */
};

struct qvm {
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

int		 qvm_start(struct qvm *, int, int, const struct qvm_conf *);
int		 qvm_up(struct qvm *, int, const struct qvm_conf *, long);
int		 qvm_exited(struct qvm *);
int		 qvm_wait(struct qvm *, int);
void		 qvm_kill(struct qvm *);
void		 qvm_showerr(struct qvm *);
int		 qvm_errhas(struct qvm *, const char *);
int		 qvm_check(int, struct qvm *, const char *, ...)
		    __attribute__((__format__(__printf__, 3, 4)));
const char	*qt_cmd(struct qvm *, const char *, ...)
		    __attribute__((__format__(__printf__, 2, 3)));
int		 qt_num(struct qvm *, uint64_t *, const char *, ...)
		    __attribute__((__format__(__printf__, 3, 4)));
int		 pba_expect(struct qvm *, int);
int		 msix_deliver(struct qvm *, unsigned int);

#endif /* QTEST_H */
