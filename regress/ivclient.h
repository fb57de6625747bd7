/*
 * ivclient.h: a minimal host client of the ivserver client socket,
 * through libivshm, which checks what the server hands out.
 *
 * Connect, then ask for regions by name on the same connection.  Each
 * answer carries the region's offsets in the shared-memory window and
 * three fds: wait on g2h to hear the guest ring the region's doorbell,
 * write a 64-bit 1 to h2g to interrupt the guest, and map shm.
 */

#ifndef IVCLIENT_H
#define IVCLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "../ivshm.h"

struct ivclient_region {
	char		 name[IVSHM_NAME_SIZE];
	uint64_t	 begin;		/* window offset, from the socket */
	uint64_t	 end;		/* window offset past the end */
	uint64_t	 size;		/* of the whole window */
	unsigned int	 vector;	/* from the in-shm header */
	unsigned int	 nregions;	/* in the in-shm header */
	int		 g2h;		/* guest-to-host eventfd */
	int		 h2g;		/* host-to-guest eventfd */
	int		 shm;		/* the whole window */
	struct ivshm_port *port;	/* libivshm's, which owns the fds */
};

struct ivshm_conn *ivclient_connect(const char *, int);
int	 ivclient_request(struct ivshm_conn *, const char *,
	    struct ivclient_region *, int);
int	 ivclient_check(struct ivclient_region *);
void	*ivclient_map(const struct ivclient_region *);
void	 ivclient_release(struct ivclient_region *);

#endif /* IVCLIENT_H */
