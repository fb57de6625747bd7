/*
 * ivshm.h: the ivserver shared-memory header and host-client protocol.
 *
 * ivserver writes a struct ivshm_header at offset 0 of the window,
 * followed by region_count struct ivshm_region entries starting at
 * region_offset.  All fields are little-endian.  A guest, which has no
 * socket, finds its region by name in this table; a host client gets
 * the same offsets from the client socket and should trust those, since
 * the guest can write to the header.
 *
 * Every field is naturally aligned, so a reader may use aligned 32-bit
 * or 64-bit loads only, as device memory on some machines requires.
 */

#ifndef IVSHM_H
#define IVSHM_H

#include <stddef.h>
#include <stdint.h>

#define IVSHM_MAGIC		0x5245565245535649ULL	/* "IVSERVER" */
#define IVSHM_VERSION		1
#define IVSHM_NAME_SIZE		16	/* region name, NUL padded */
#define IVSHM_REGIONS_MAX	256	/* doorbell vectors are 8 bits */

struct ivshm_header {
	uint64_t	magic;		/* IVSHM_MAGIC */
	uint32_t	version;	/* IVSHM_VERSION */
	uint32_t	header_size;	/* bytes used from 0 to the table end */
	uint64_t	size;		/* window size, a power of two */
	uint32_t	region_count;
	uint32_t	region_offset;	/* offset of the first ivshm_region */
	uint32_t	region_size;	/* sizeof(struct ivshm_region) */
	uint32_t	flags;		/* IVSHM_HEADER_* */
	uint64_t	generation;	/* if IVSHM_HEADER_GENERATION */
};

/*
 * The header may grow within version 1: a reader steps to the table by
 * region_offset, and believes a field past the first 40 bytes only if
 * its flag is set.
 */
#define IVSHM_HEADER_GENERATION	0x1	/* generation is kept up to date */

struct ivshm_region {
	char		name[IVSHM_NAME_SIZE];
	uint64_t	begin;		/* window offset, page aligned */
	uint64_t	end;		/* window offset past the last byte */
	uint32_t	vector;		/* MSI-X and doorbell vector */
	uint32_t	flags;		/* 0 */
};

/*
 * Host-client protocol, on the client socket (see ivshm(5)):
 * the server sends a u32 version; the client sends a u16 name length
 * and the name; the server answers with a u64 begin and a u64 end and,
 * in the same message, three fds: guest-to-host eventfd, host-to-guest
 * eventfd, shm.  An unknown name gets IVSHM_NO_REGION twice and no fds.
 */
#define IVSHM_CLIENT_VERSION	0
#define IVSHM_NO_REGION		UINT64_MAX

/*
 * Requests beyond version 0 take the place of the name length, with
 * values version 0 calls invalid, and no name follows them.  Each has
 * a fixed-size reply, all fields little-endian (see ivshm(5)).
 *
 * IVSHM_REQ_WINDOW: 16 bytes, u64 size of the window, u64 flags
 * (IVSHM_WINDOW_*), and the window fd in the same message.
 */
#define IVSHM_REQ_WINDOW	0xff01
#define IVSHM_REQ_STATUS	0xff02
#define IVSHM_REQ_WATCH		0xff03

#define IVSHM_WINDOW_HEADER	0x1	/* the window begins with a header */

/* IVSHM_REQ_STATUS: this reply, 64 bytes, no fd. */
struct ivshm_status {
	uint32_t	flags;		/* IVSHM_STATUS_* */
	uint32_t	vm_peer;	/* the VM's peer ID, or UINT32_MAX */
	uint64_t	vm_pid;		/* the VM's pid, 0 if none or unknown */
	uint64_t	vm_since;	/* ms since the Epoch it (de)attached */
	uint32_t	clients;	/* client connections, the asker too */
	uint32_t	server_pid;	/* the serving process */
	uint64_t	generation;	/* as in the header */
	uint32_t	regions;	/* region count */
	uint32_t	watchers;	/* connections watching */
	char		version[16];	/* ivserver's, NUL padded */
};

#define IVSHM_STATUS_VM		0x1	/* a VM is attached */

/*
 * IVSHM_REQ_WATCH: the connection stays open and receives one event,
 * 40 bytes, at once (IVSHM_EVENT_INITIAL: the state as it is) and then
 * one per VM attach and detach.  A watcher sends nothing more; one that
 * does not read its events is disconnected.
 */
struct ivshm_event {
	uint32_t	type;		/* IVSHM_EVENT_ATTACH or _DETACH */
	uint32_t	flags;		/* IVSHM_EVENT_INITIAL */
	uint32_t	peer;		/* the VM's peer ID, or UINT32_MAX */
	uint32_t	reserved;	/* 0 */
	uint64_t	pid;		/* the VM's pid, 0 if unknown */
	uint64_t	time;		/* ms since the Epoch */
	uint64_t	generation;	/* after the event */
};

#define IVSHM_EVENT_ATTACH	1
#define IVSHM_EVENT_DETACH	2
#define IVSHM_EVENT_INITIAL	0x1

/*
 * libivshm: see libivshm(3).  Every call returns 0, a count or a
 * pointer on success and -1 or NULL on failure, with a printable reason
 * in the handle or in the caller's err buffer of errlen bytes.
 */
#define IVSHM_ERRSIZE		256

/* Shared by both sides: the header of a mapped window. */
int	ivshm_window_check(const volatile void *, uint64_t, char *, size_t);
int	ivshm_window_region(const volatile void *, uint64_t, uint32_t,
	    struct ivshm_region *, char *, size_t);
int	ivshm_window_find(const volatile void *, uint64_t, const char *,
	    struct ivshm_region *, char *, size_t);
void	ivshm_copy_in(void *, const volatile void *, size_t);
void	ivshm_copy_out(volatile void *, const void *, size_t);
int	ivshm_errf(char *, size_t, const char *, ...)
	    __attribute__((__format__ (printf, 3, 4)));
int	ivshm_rundir(char *, size_t);

/* Host side: a connection to the client socket of ivserver. */
#define IVSHM_SOCKET		"client.sock"	/* in ivshm_rundir() */
#define IVSHM_SOCKET_ROOT	"/run/ivserver/client.sock"
#define IVSHM_TIMEOUT		10000	/* ms for any one reply */

struct ivshm_conn;

/* A region obtained from the server: its offsets and its three fds. */
struct ivshm_port {
	char		 name[IVSHM_NAME_SIZE];
	uint64_t	 begin;		/* window offset, page aligned */
	uint64_t	 end;		/* window offset past the last byte */
	int		 g2h;		/* eventfd: the guest rings the host */
	int		 h2g;		/* eventfd: the host rings the guest */
	int		 shm;		/* the whole window */
	volatile void	*base;		/* the region, after ivshm_map */
	size_t		 len;		/* end - begin */
	size_t		 maplen;	/* len rounded up to a page */
	int		 flags;		/* the library's */
	char		 err[IVSHM_ERRSIZE];
};

struct ivshm_conn *ivshm_connect(const char *, char *, size_t);
struct ivshm_conn *ivshm_connect_timeout(const char *, int, char *,
	    size_t);
void	ivshm_set_timeout(struct ivshm_conn *, int);
int	ivshm_fd(const struct ivshm_conn *);
const char *ivshm_error(const struct ivshm_conn *);
void	ivshm_close(struct ivshm_conn *);
struct ivshm_port *ivshm_open(struct ivshm_conn *, const char *);
int	ivshm_map(struct ivshm_port *, int);
int	ivshm_ring(struct ivshm_port *);
int64_t	ivshm_wait(struct ivshm_port *, int);
const char *ivshm_port_error(const struct ivshm_port *);
void	ivshm_port_close(struct ivshm_port *);
int	ivshm_get_window(struct ivshm_conn *, int *, uint64_t *, uint64_t *);
int	ivshm_list(struct ivshm_conn *, struct ivshm_region **);
int	ivshm_get_status(struct ivshm_conn *, struct ivshm_status *);
int	ivshm_watch(struct ivshm_conn *, struct ivshm_event *);
int	ivshm_next_event(struct ivshm_conn *, struct ivshm_event *, int);

/* Guest side (Linux): the ivshmem PCI device. */
#define IVSHM_PCI_VENDOR	0x1af4
#define IVSHM_PCI_DEVICE	0x1110
/* BAR 0 registers: 32 bits wide, little-endian, aligned accesses only. */
#define IVSHM_REG_INTRMASK	0	/* unused by the doorbell device */
#define IVSHM_REG_INTRSTATUS	4	/* unused by the doorbell device */
#define IVSHM_REG_IVPOSITION	8	/* this VM's peer ID, read only */
#define IVSHM_REG_DOORBELL	12	/* write IVSHM_DOORBELL(peer, v) */
#define IVSHM_DOORBELL(peer, v)	((uint32_t)(peer) << 16 | (uint32_t)(v))
#define IVSHM_HOST_PEER		0	/* ivserver in host mode */

/* ivshm_dev_open flags: how interrupts reach the program. */
#define IVSHM_DEV_MSIX		0x1	/* MSI-X eventfds through vfio-pci */
#define IVSHM_DEV_POLL		0x2	/* poll the MSI-X pending bits */
#define IVSHM_DEV_WC		0x4	/* map the window write-combining */
/* ivshm_dev_irq: what ivshm_dev_open got. */
#define IVSHM_IRQ_NONE		0
#define IVSHM_IRQ_MSIX		1
#define IVSHM_IRQ_POLL		2

struct ivshm_dev;

struct ivshm_dev *ivshm_dev_open(const char *, int, char *, size_t);
void	 ivshm_dev_close(struct ivshm_dev *);
const char *ivshm_dev_strerror(const struct ivshm_dev *);
const char *ivshm_dev_addr(const struct ivshm_dev *);
volatile void *ivshm_dev_window(const struct ivshm_dev *, uint64_t *);
int	 ivshm_dev_find(struct ivshm_dev *, const char *,
	    struct ivshm_region *);
int	 ivshm_dev_position(struct ivshm_dev *, uint32_t *);
int	 ivshm_dev_ring(struct ivshm_dev *, uint32_t, uint32_t);
int	 ivshm_dev_irq(const struct ivshm_dev *);
unsigned int ivshm_dev_vectors(const struct ivshm_dev *);
int	 ivshm_dev_eventfd(const struct ivshm_dev *, uint32_t);
int	 ivshm_dev_wait(struct ivshm_dev *, uint32_t, int);

#endif /* IVSHM_H */
