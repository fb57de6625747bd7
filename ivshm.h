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

/*
 * libivshm: see libivshm(3).  Every call returns 0, a count or a
 * pointer on success and -1 or NULL on failure, with a printable reason
 * in the handle or in the caller's err buffer of errlen bytes.
 */
#include <stddef.h>

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

#endif /* IVSHM_H */
