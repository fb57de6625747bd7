/*
 * ivclient.c: a minimal host client of the ivserver client socket,
 * through libivshm: connect, ask for regions by name, and check that
 * the offsets, the descriptors and the in-shm header agree.
 *
 * libivshm reads every reply within a deadline and refuses what makes
 * no sense; what is left to test here is that the server said the same
 * thing on the socket and in the header.
 */

#include <sys/types.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <endian.h>
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ivclient.h"
#include "lib.h"

#define EVENTFD_LINK	"anon_inode:[eventfd]"

static int	 check_eventfd(const struct ivclient_region *, const char *,
		    int);
static int	 check_header(struct ivclient_region *);

/*
 * Connect to the client socket.  The server may still be starting, so
 * a missing or refusing socket is tried again until the deadline.
 */
struct ivshm_conn *
ivclient_connect(const char *path, int timeout)
{
	struct ivshm_conn	*c;
	char			 e[IVSHM_ERRSIZE];
	long long		 deadline;

	deadline = now_ms() + timeout;
	for (;;) {
		if ((c = ivshm_connect_timeout(path, ms_left(deadline), e,
		    sizeof(e))) != NULL)
			break;
		if ((errno != ENOENT && errno != ECONNREFUSED &&
		    errno != EAGAIN) || ms_left(deadline) == 0) {
			warnx("%s", e);
			return (NULL);
		}
		sleep_ms(20);
	}
	ivshm_set_timeout(c, timeout);
	return (c);
}

/*
 * Ask for a region by name.  Returns 1 and fills r, 0 if the server
 * knows no such region, -1 on error, when the connection is unusable.
 */
int
ivclient_request(struct ivshm_conn *c, const char *name,
    struct ivclient_region *r, int timeout)
{
	struct ivshm_port	*p;

	memset(r, 0, sizeof(*r));
	r->g2h = r->h2g = r->shm = -1;
	ivshm_set_timeout(c, timeout);
	if ((p = ivshm_open(c, name)) == NULL) {
		if (errno == ENOENT)
			return (0);
		warnx("%s", ivshm_error(c));
		return (-1);
	}
	strlcpy(r->name, p->name, sizeof(r->name));
	r->begin = p->begin;
	r->end = p->end;
	r->g2h = p->g2h;
	r->h2g = p->h2g;
	r->shm = p->shm;
	r->port = p;
	return (1);
}

/* Linux names the file behind an eventfd this way in /proc. */
static int
check_eventfd(const struct ivclient_region *r, const char *what, int fd)
{
	char	path[64], link[64];
	ssize_t	n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	if ((n = readlink(path, link, sizeof(link) - 1)) == -1) {
		warn("%s: readlink %s", r->name, path);
		return (-1);
	}
	link[n] = '\0';
	if (strcmp(link, EVENTFD_LINK) != 0) {
		warnx("%s: %s fd is %s, not an eventfd", r->name, what, link);
		return (-1);
	}
	/* A blocking read of one would hang a client until the guest rings. */
	if ((fcntl(fd, F_GETFL) & O_NONBLOCK) == 0) {
		warnx("%s: %s eventfd is blocking", r->name, what);
		return (-1);
	}
	return (0);
}

/*
 * Find the region in the in-shm header and compare.  A real client
 * trusts the socket, since the guest can write the header; this is a
 * test that the server told both sides the same thing.
 */
static int
check_header(struct ivclient_region *r)
{
	struct ivshm_header	h;
	struct ivshm_region	e;
	uint64_t		off, tabend;
	uint32_t		i, count;

	if (pread(r->shm, &h, sizeof(h), 0) != (ssize_t)sizeof(h)) {
		warnx("%s: cannot read the in-shm header", r->name);
		return (-1);
	}
	if (le64toh(h.magic) != IVSHM_MAGIC ||
	    le32toh(h.version) != IVSHM_VERSION) {
		warnx("%s: header magic 0x%jx version %u, expected 0x%jx %u",
		    r->name, (uintmax_t)le64toh(h.magic), le32toh(h.version),
		    (uintmax_t)IVSHM_MAGIC, IVSHM_VERSION);
		return (-1);
	}
	if (le64toh(h.size) != r->size) {
		warnx("%s: header says %ju bytes, the shm fd has %ju",
		    r->name, (uintmax_t)le64toh(h.size), (uintmax_t)r->size);
		return (-1);
	}
	count = le32toh(h.region_count);
	off = le32toh(h.region_offset);
	tabend = off + (uint64_t)count * sizeof(e);
	if (le32toh(h.region_size) != sizeof(e) || count == 0 ||
	    count > IVSHM_REGIONS_MAX || off < sizeof(h) ||
	    tabend > le32toh(h.header_size) ||
	    le32toh(h.header_size) > r->size) {
		warnx("%s: bad region table in the header", r->name);
		return (-1);
	}

	for (i = 0; i < count; i++, off += sizeof(e)) {
		if (pread(r->shm, &e, sizeof(e), off) != (ssize_t)sizeof(e)) {
			warnx("%s: cannot read header entry %u", r->name, i);
			return (-1);
		}
		if (memchr(e.name, '\0', sizeof(e.name)) == NULL) {
			warnx("%s: header entry %u has no NUL", r->name, i);
			return (-1);
		}
		if (strcmp(e.name, r->name) != 0)
			continue;
		if (le64toh(e.begin) != r->begin || le64toh(e.end) != r->end) {
			warnx("%s: header says 0x%jx-0x%jx, socket said "
			    "0x%jx-0x%jx", r->name,
			    (uintmax_t)le64toh(e.begin),
			    (uintmax_t)le64toh(e.end),
			    (uintmax_t)r->begin, (uintmax_t)r->end);
			return (-1);
		}
		r->vector = le32toh(e.vector);
		r->nregions = count;
		return (0);
	}
	warnx("%s: not in the in-shm header", r->name);
	return (-1);
}

/*
 * Check what a request returned: sane offsets, two eventfds, and an
 * shm whose size and header agree with the socket.
 */
int
ivclient_check(struct ivclient_region *r)
{
	struct stat	st;
	long		page;

	page = sysconf(_SC_PAGESIZE);
	if (r->begin >= r->end || r->begin % page != 0) {
		warnx("%s: bad offsets 0x%jx-0x%jx", r->name,
		    (uintmax_t)r->begin, (uintmax_t)r->end);
		return (-1);
	}
	if (check_eventfd(r, "g2h", r->g2h) == -1 ||
	    check_eventfd(r, "h2g", r->h2g) == -1)
		return (-1);
	if (fstat(r->shm, &st) == -1) {
		warn("%s: fstat shm", r->name);
		return (-1);
	}
	if (!S_ISREG(st.st_mode) || st.st_size <= 0) {
		warnx("%s: the shm fd is not a sized file", r->name);
		return (-1);
	}
	r->size = st.st_size;
	if (r->end > r->size) {
		warnx("%s: region ends at 0x%jx, past the window's 0x%jx",
		    r->name, (uintmax_t)r->end, (uintmax_t)r->size);
		return (-1);
	}
	return (check_header(r));
}

/* Map the region, and only the region, read-write. */
void *
ivclient_map(const struct ivclient_region *r)
{
	if (ivshm_map(r->port, PROT_READ | PROT_WRITE) == -1) {
		warnx("%s", ivshm_port_error(r->port));
		return (NULL);
	}
	return ((void *)(uintptr_t)r->port->base);
}

void
ivclient_release(struct ivclient_region *r)
{
	ivshm_port_close(r->port);
	r->port = NULL;
	r->g2h = r->h2g = r->shm = -1;
}
