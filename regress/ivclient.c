/*
 * ivclient.c: a minimal host client of the ivserver client socket.
 *
 * The protocol, all integers little-endian:
 *	server: u32 version (0)
 *	client: u16 name length (1..15), the name without a NUL
 *	server: u64 begin, u64 end, in one message with three fds
 *		(g2h eventfd, h2g eventfd, shm), or both all ones and
 *		no fds for an unknown name
 * and the client may ask again.  Every read has a deadline, since a
 * server that never answers must not hang its clients.
 */

#include <sys/types.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <endian.h>
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ivclient.h"
#include "lib.h"

#define EVENTFD_LINK	"anon_inode:[eventfd]"

static int	 wait_io(int, int, long long, const char *);
static int	 send_full(int, const void *, size_t, long long);
static int	 recv_full(int, void *, size_t, int *, int *, long long);
static int	 check_eventfd(const struct ivclient_region *, const char *,
		    int);
static int	 check_header(struct ivclient_region *);

/* Wait to read or write before the deadline, or say why not. */
static int
wait_io(int s, int events, long long deadline, const char *what)
{
	switch (fd_wait(s, events, deadline)) {
	case 1:
		return (0);
	case 0:
		errno = ETIMEDOUT;
		break;
	}
	warn("%s", what);
	return (-1);
}

static int
send_full(int s, const void *buf, size_t len, long long deadline)
{
	const unsigned char	*p = buf;
	ssize_t			 n;

	while (len > 0) {
		if (wait_io(s, POLLOUT, deadline, "write to server") == -1)
			return (-1);
		if ((n = write(s, p, len)) == -1) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			warn("write to server");
			return (-1);
		}
		p += n;
		len -= n;
	}
	return (0);
}

/*
 * Read exactly len bytes.  The fds of any SCM_RIGHTS message on the way
 * are collected in fds, which has room for RECV_MAXFDS; *nfds counts
 * them all.
 */
static int
recv_full(int s, void *buf, size_t len, int *fds, int *nfds,
    long long deadline)
{
	unsigned char	*p = buf;
	ssize_t		 n;

	*nfds = 0;
	while (len > 0) {
		if (wait_io(s, POLLIN, deadline, "read from server") == -1)
			goto fail;
		if ((n = recv_fds(s, p, len, fds, nfds)) == -1) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			/* Fds the kernel dropped: never ignore them. */
			if (errno == EMSGSIZE)
				warnx("control data from server truncated");
			else
				warn("read from server");
			goto fail;
		}
		if (n == 0) {
			warnx("server closed the connection");
			goto fail;
		}
		p += n;
		len -= n;
	}
	return (0);
fail:
	close_fds(fds, *nfds);
	*nfds = 0;
	return (-1);
}

/*
 * Connect to the client socket and read the server's version.  The
 * server may still be starting, so a missing or refusing socket is
 * tried again until the deadline.
 */
int
ivclient_connect(const char *path, int timeout)
{
	struct sockaddr_un	sun;
	uint32_t		version;
	long long		deadline;
	int			fds[RECV_MAXFDS], nfds, s;

	if (unix_addr(&sun, path) == -1) {
		warn("%s", path);
		return (-1);
	}
	deadline = now_ms() + timeout;
	for (;;) {
		if ((s = socket(AF_UNIX, SOCK_STREAM, 0)) == -1) {
			warn("socket");
			return (-1);
		}
		if (fcntl(s, F_SETFD, FD_CLOEXEC) == -1 ||
		    fcntl(s, F_SETFL, O_NONBLOCK) == -1) {
			warn("fcntl");
			close(s);
			return (-1);
		}
		if (connect(s, (struct sockaddr *)&sun, sizeof(sun)) == 0)
			break;
		/* Where connect can be in progress, a failure shows in read. */
		if (errno == EINPROGRESS && fd_wait(s, POLLOUT, deadline) == 1)
			break;
		if ((errno != ENOENT && errno != ECONNREFUSED &&
		    errno != EAGAIN) || ms_left(deadline) == 0) {
			warn("connect %s", path);
			close(s);
			return (-1);
		}
		close(s);
		/* The server may be starting: its socket comes. */
		sleep_ms(20);
	}

	if (recv_full(s, &version, sizeof(version), fds, &nfds,
	    deadline) == -1) {
		close(s);
		return (-1);
	}
	if (nfds != 0) {
		warnx("version message carries %d fds", nfds);
		close_fds(fds, nfds);
		close(s);
		return (-1);
	}
	if (le32toh(version) != IVSHM_CLIENT_VERSION) {
		warnx("server speaks protocol %u, expected %u",
		    le32toh(version), IVSHM_CLIENT_VERSION);
		close(s);
		return (-1);
	}
	return (s);
}

/*
 * Ask for a region by name.  Returns 1 and fills r, 0 if the server
 * knows no such region, -1 on error, when the connection is unusable.
 */
int
ivclient_request(int s, const char *name, struct ivclient_region *r,
    int timeout)
{
	unsigned char	 req[2 + IVSHM_NAME_SIZE];
	uint64_t	 rep[2], begin, end;
	uint16_t	 len16;
	long long	 deadline;
	size_t		 len;
	int		 fds[RECV_MAXFDS], nfds;

	memset(r, 0, sizeof(*r));
	r->g2h = r->h2g = r->shm = -1;
	len = strlen(name);
	if (len == 0 || len >= IVSHM_NAME_SIZE) {
		warnx("%s: a region name has 1 to %d bytes", name,
		    IVSHM_NAME_SIZE - 1);
		return (-1);
	}
	len16 = htole16(len);
	memcpy(req, &len16, sizeof(len16));
	memcpy(req + 2, name, len);

	deadline = now_ms() + timeout;
	if (send_full(s, req, 2 + len, deadline) == -1 ||
	    recv_full(s, rep, sizeof(rep), fds, &nfds, deadline) == -1)
		return (-1);
	begin = le64toh(rep[0]);
	end = le64toh(rep[1]);

	if (begin == IVSHM_NO_REGION && end == IVSHM_NO_REGION) {
		if (nfds == 0)
			return (0);
		warnx("%s: unknown region answered with %d fds", name, nfds);
		close_fds(fds, nfds);
		return (-1);
	}
	if (nfds != 3) {
		warnx("%s: answer carries %d fds, expected 3", name, nfds);
		close_fds(fds, nfds);
		return (-1);
	}
	strlcpy(r->name, name, sizeof(r->name));
	r->begin = begin;
	r->end = end;
	r->g2h = fds[0];
	r->h2g = fds[1];
	r->shm = fds[2];
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
	void	*p;

	if (r->end - r->begin > SIZE_MAX) {
		warnx("%s: region too large to map", r->name);
		return (NULL);
	}
	p = mmap(NULL, r->end - r->begin, PROT_READ | PROT_WRITE, MAP_SHARED,
	    r->shm, (off_t)r->begin);
	if (p == MAP_FAILED) {
		warn("%s: mmap", r->name);
		return (NULL);
	}
	return (p);
}

void
ivclient_release(struct ivclient_region *r)
{
	if (r->g2h != -1)
		close(r->g2h);
	if (r->h2g != -1)
		close(r->h2g);
	if (r->shm != -1)
		close(r->shm);
	r->g2h = r->h2g = r->shm = -1;
}
