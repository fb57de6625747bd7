/*
 * ivserver.h: declarations shared by the ivserver source files.
 */

#ifndef IVSERVER_H
#define IVSERVER_H

#include <sys/types.h>
#include <sys/queue.h>

#include <stdint.h>

#include "ivshm.h"

#ifndef __dead
#define __dead	__attribute__((__noreturn__))
#endif

#define IVSERVER_VERSION	"0.1"
#define REGION_NAME_MAX		(IVSHM_NAME_SIZE - 1)

struct region {
	char		 name[IVSHM_NAME_SIZE];
	uint64_t	 size;		/* as asked for */
	uint64_t	 align;		/* power of two, >= page */
	uint64_t	 begin;
	uint64_t	 end;
	unsigned int	 vector;
	int		 g2h;		/* guest-to-host eventfd */
	int		 h2g;		/* host-to-guest eventfd */
};

enum backing {
	BACKING_MEMFD,
	BACKING_POSIX,
	BACKING_HUGETLB
};

struct layout {
	const char	*file;		/* for messages */
	struct region	*regions;
	unsigned int	 nregions;
	uint64_t	 size;		/* window, a power of two */
	uint64_t	 minsize;	/* asked for by the file, or 0 */
	uint64_t	 page;		/* alignment unit */
	uint64_t	 hdrsize;	/* header and region table */
	enum backing	 backing;
	const char	*shmname;	/* BACKING_POSIX */
	const char	*hugedir;	/* BACKING_HUGETLB */
	int		 shmfd;
};

struct listener {
	const char	*path;
	int		 fd;
	int		 made;		/* we created the socket file */
	dev_t		 dev;		/* and it is this one */
	ino_t		 ino;
};

struct server {
	struct layout	*layout;
	struct listener	 qemu;
	struct listener	 client;
	int		 sigfd;		/* read end of the signal pipe */
	unsigned int	 maxclients;
	int		 timeout;	/* client deadline, milliseconds */
};

/* ivserver.c */
void	log_init(int, int);
void	log_warn(const char *, ...)
	    __attribute__((__format__(__printf__, 1, 2)));
void	log_warnx(const char *, ...)
	    __attribute__((__format__(__printf__, 1, 2)));
void	log_info(const char *, ...)
	    __attribute__((__format__(__printf__, 1, 2)));
void	log_debug(const char *, ...)
	    __attribute__((__format__(__printf__, 1, 2)));
__dead void fatal(const char *, ...)
	    __attribute__((__format__(__printf__, 1, 2)));
__dead void fatalx(const char *, ...)
	    __attribute__((__format__(__printf__, 1, 2)));

/* layout.c */
int	layout_parse(struct layout *, const char *, const char *, size_t);
int	layout_load(struct layout *, const char *);
void	layout_print(const struct layout *);
int	layout_open_shm(struct layout *);
void	layout_close_shm(struct layout *);
void	layout_free(struct layout *);
int	layout_eventfds(struct layout *);
int	layout_backing(struct layout *);
struct region *layout_find(const struct layout *, const char *, size_t);
uint64_t parse_size(const char *, const char **);

/* proto.c */
int	proto_listen(struct listener *, mode_t, gid_t);
void	proto_unlisten(struct listener *);
int	proto_loop(struct server *);

#endif /* IVSERVER_H */
