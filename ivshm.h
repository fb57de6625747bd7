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
	uint32_t	flags;		/* 0 */
};

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
