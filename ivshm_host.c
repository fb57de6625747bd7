/*
 * ivshm_host.c: the host half of libivshm, a client of ivserver's
 * client socket (see ivshm(5) and libivshm(3)).
 *
 * The server is trusted to be ivserver but not to be well: every reply
 * is read whole within a deadline, descriptors are counted and closed
 * if they are not the ones expected, and a reply that makes no sense
 * breaks the connection (it is out of step) but never the caller.
 */

#include <sys/types.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ivshm.h"

#define RECV_FDS	8	/* room for more than any reply carries */
#define IVSHM_PORT_NONBLOCK	0x1	/* its eventfds checked */

struct ivshm_conn {
	int		 fd;
	int		 timeout;	/* ms per reply, -1 for none */
	int		 broken;	/* out of step: err says why */
	int		 watching;
	char		 path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char		 err[IVSHM_ERRSIZE];
};

static int64_t	mono_ms(void);
static int	conn_fail(struct ivshm_conn *, const char *, ...)
		    __attribute__((__format__ (printf, 2, 3)));
static int	conn_dial(struct ivshm_conn *, const char *);
static int	conn_greeting(struct ivshm_conn *);
static int	io_wait(struct ivshm_conn *, short, int64_t);
static int	send_all(struct ivshm_conn *, const void *, size_t);
static int	recv_all(struct ivshm_conn *, void *, size_t, int *, int *,
		    int);
static void	close_fds(int *, int);
static int	ask(struct ivshm_conn *, uint16_t, const char *, void *,
		    size_t, int *, int);

static int64_t
mono_ms(void)
{
	struct timespec	 ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The connection is out of step with the server: no further request. */
static int
conn_fail(struct ivshm_conn *c, const char *fmt, ...)
{
	va_list	 ap;
	int	 n;

	/* The path is shorter than the buffer: room is left after it. */
	n = snprintf(c->err, sizeof(c->err), "%s: ", c->path);
	if (n < 0 || (size_t)n >= sizeof(c->err))
		n = 0;
	va_start(ap, fmt);
	(void)vsnprintf(c->err + n, sizeof(c->err) - n, fmt, ap);
	va_end(ap);
	c->broken = 1;
	return -1;
}

static void
close_fds(int *fds, int n)
{
	int	 i;

	for (i = 0; i < n; i++)
		if (fds[i] != -1)
			(void)close(fds[i]);
}

static int
conn_dial(struct ivshm_conn *c, const char *path)
{
	struct sockaddr_un	 sun;
	struct timespec		 ts = { 0, 10 * 1000000 };
	int			 s, tries = 0;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path));
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s == -1)
		return -1;
	/* A full listen queue: the server is busy, try until the deadline. */
	while (connect(s, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		if (errno == EINTR)
			continue;
		if (errno == EINPROGRESS)
			break;
		if (errno == EAGAIN && (c->timeout < 0 ||
		    tries++ < c->timeout / 10)) {
			(void)nanosleep(&ts, NULL);
			continue;
		}
		(void)close(s);
		return -1;
	}
	c->fd = s;
	return 0;
}

/* 1 when ready, -1 on timeout or error. */
static int
io_wait(struct ivshm_conn *c, short ev, int64_t deadline)
{
	struct pollfd	 pfd;
	int64_t		 left;
	int		 n;

	for (;;) {
		pfd.fd = c->fd;
		pfd.events = ev;
		left = deadline < 0 ? -1 : deadline - mono_ms();
		if (deadline >= 0 && left < 0)
			left = 0;
		n = poll(&pfd, 1, left > INT32_MAX ? INT32_MAX : (int)left);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return conn_fail(c, "poll: %s", strerror(errno));
		if (n == 0)
			return conn_fail(c, "no answer within %d ms",
			    c->timeout);
		return 1;
	}
}

static int
send_all(struct ivshm_conn *c, const void *buf, size_t len)
{
	const unsigned char	*p = buf;
	int64_t			 deadline;
	ssize_t			 n;

	deadline = c->timeout < 0 ? -1 : mono_ms() + c->timeout;
	while (len > 0) {
		n = send(c->fd, p, len, MSG_NOSIGNAL);
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (io_wait(c, POLLOUT, deadline) == -1)
				return -1;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return conn_fail(c, "send: %s", strerror(errno));
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Read exactly len bytes, and the descriptors that come with them: at
 * most maxfds, any more are closed and make it an error.  The whole
 * reply must come within the deadline.
 */
static int
recv_all(struct ivshm_conn *c, void *buf, size_t len, int *fds, int *nfds,
    int maxfds)
{
	union {
		struct cmsghdr	 hdr;
		unsigned char	 buf[CMSG_SPACE(RECV_FDS * sizeof(int))];
	}		 cm;
	unsigned char	*p = buf;
	struct msghdr	 mh;
	struct iovec	 iov;
	struct cmsghdr	*cmsg;
	int64_t		 deadline;
	ssize_t		 n;
	int		 got[RECV_FDS], ngot = 0, k, extra = 0;
	size_t		 i;

	deadline = c->timeout < 0 ? -1 : mono_ms() + c->timeout;
	*nfds = 0;
	/* A reply is never there before it is asked for: wait first. */
	if (io_wait(c, POLLIN, deadline) == -1)
		return -1;
	while (len > 0) {
		memset(&mh, 0, sizeof(mh));
		iov.iov_base = p;
		iov.iov_len = len;
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		mh.msg_control = cm.buf;
		mh.msg_controllen = sizeof(cm.buf);
		n = recvmsg(c->fd, &mh, MSG_CMSG_CLOEXEC);
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (io_wait(c, POLLIN, deadline) == -1)
				goto fail;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			conn_fail(c, "receive: %s", strerror(errno));
			goto fail;
		}
		for (cmsg = CMSG_FIRSTHDR(&mh); cmsg != NULL;
		    cmsg = CMSG_NXTHDR(&mh, cmsg)) {
			if (cmsg->cmsg_level != SOL_SOCKET ||
			    cmsg->cmsg_type != SCM_RIGHTS)
				continue;
			k = (int)((cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int));
			for (i = 0; i < (size_t)k; i++) {
				int	 fd;

				memcpy(&fd, CMSG_DATA(cmsg) + i * sizeof(int),
				    sizeof(int));
				if (ngot < maxfds && ngot < RECV_FDS)
					got[ngot++] = fd;
				else {
					(void)close(fd);
					extra++;
				}
			}
		}
		if (mh.msg_flags & MSG_CTRUNC) {
			conn_fail(c, "descriptors from the server were "
			    "truncated");
			goto fail;
		}
		if (n == 0) {
			conn_fail(c, "the server closed the connection");
			goto fail;
		}
		p += n;
		len -= (size_t)n;
	}
	if (extra > 0) {
		conn_fail(c, "the server sent %d descriptors, expected at "
		    "most %d", ngot + extra, maxfds);
		goto fail;
	}
	memcpy(fds, got, ngot * sizeof(int));
	*nfds = ngot;
	return 0;
 fail:
	close_fds(got, ngot);
	return -1;
}

/* One request and its fixed-size reply. */
static int
ask(struct ivshm_conn *c, uint16_t req, const char *name, void *rep,
    size_t replen, int *fds, int maxfds)
{
	unsigned char	 buf[2 + IVSHM_NAME_SIZE];
	uint16_t	 le = htole16(req);
	size_t		 len = name != NULL ? strlen(name) : 0;
	int		 nfds;

	if (c->broken)
		return -1;
	if (c->watching) {
		(void)snprintf(c->err, sizeof(c->err), "%s: the connection "
		    "is watching; open another", c->path);
		return -1;
	}
	memcpy(buf, &le, sizeof(le));
	if (len > 0)
		memcpy(buf + 2, name, len);
	if (send_all(c, buf, 2 + len) == -1 ||
	    recv_all(c, rep, replen, fds, &nfds, maxfds) == -1)
		return -1;
	return nfds;
}

/* The first thing the server says: its version, without a descriptor. */
static int
conn_greeting(struct ivshm_conn *c)
{
	uint32_t	 version;
	int		 fd, n;

	if (recv_all(c, &version, sizeof(version), &fd, &n, 0) == -1)
		return -1;
	if (le32toh(version) != IVSHM_CLIENT_VERSION)
		return conn_fail(c, "the server speaks protocol %u, this "
		    "library %u", le32toh(version), IVSHM_CLIENT_VERSION);
	return 0;
}

struct ivshm_conn *
ivshm_connect(const char *path, char *err, size_t errlen)
{
	return ivshm_connect_timeout(path, IVSHM_TIMEOUT, err, errlen);
}

/*
 * The greeting too may take a while: a server at its -c limit lets a
 * new client in only as another leaves.
 */
struct ivshm_conn *
ivshm_connect_timeout(const char *path, int ms, char *err, size_t errlen)
{
	struct ivshm_conn	*c;
	char			 dir[sizeof(c->path)];
	int			 n, rv, saved;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		ivshm_errf(err, errlen, "%s", strerror(errno));
		return NULL;
	}
	c->fd = -1;
	c->timeout = ms < 0 ? -1 : ms;
	if (path != NULL)
		n = snprintf(c->path, sizeof(c->path), "%s", path);
	else if (ivshm_rundir(dir, sizeof(dir)) == -1)
		n = -1;
	else
		n = snprintf(c->path, sizeof(c->path), "%s/%s", dir,
		    IVSHM_SOCKET);
	if (n < 0 || (size_t)n >= sizeof(c->path)) {
		ivshm_errf(err, errlen, "%s: socket path too long",
		    path != NULL ? path : "runtime directory");
		free(c);
		return NULL;
	}
	rv = conn_dial(c, c->path);
	/* Not the user's own server: the system's, if there is one. */
	if (rv == -1 && path == NULL && errno == ENOENT && geteuid() != 0) {
		saved = errno;
		if (conn_dial(c, IVSHM_SOCKET_ROOT) == 0) {
			rv = 0;
			(void)snprintf(c->path, sizeof(c->path), "%s",
			    IVSHM_SOCKET_ROOT);
		} else
			errno = saved;
	}
	if (rv == -1) {
		ivshm_errf(err, errlen, "%s: %s", c->path, strerror(errno));
		free(c);
		return NULL;
	}
	if (conn_greeting(c) == -1)
		goto fail;
	return c;
 fail:
	ivshm_errf(err, errlen, "%s", c->err);
	ivshm_close(c);
	return NULL;
}

void
ivshm_set_timeout(struct ivshm_conn *c, int ms)
{
	c->timeout = ms < 0 ? -1 : ms;
}

int
ivshm_fd(const struct ivshm_conn *c)
{
	return c->fd;
}

const char *
ivshm_error(const struct ivshm_conn *c)
{
	return c->err;
}

void
ivshm_close(struct ivshm_conn *c)
{
	if (c == NULL)
		return;
	if (c->fd != -1)
		(void)close(c->fd);
	free(c);
}

/*
 * Ask for a region.  An unknown name is no fault of the connection:
 * NULL with errno ENOENT, and the connection goes on.
 */
struct ivshm_port *
ivshm_open(struct ivshm_conn *c, const char *name)
{
	struct ivshm_port	*p;
	uint64_t		 rep[2], b, e;
	size_t			 len = strlen(name);
	long			 page = sysconf(_SC_PAGESIZE);
	int			 fds[3], n;

	if (len == 0 || len >= IVSHM_NAME_SIZE) {
		(void)snprintf(c->err, sizeof(c->err), "%s: region name "
		    "\"%.*s\" is not 1 to %d bytes", c->path,
		    IVSHM_NAME_SIZE, name, IVSHM_NAME_SIZE - 1);
		errno = EINVAL;
		return NULL;
	}
	if ((n = ask(c, (uint16_t)len, name, rep, sizeof(rep), fds, 3)) == -1)
		return NULL;
	b = le64toh(rep[0]);
	e = le64toh(rep[1]);
	if (b == IVSHM_NO_REGION && e == IVSHM_NO_REGION && n == 0) {
		(void)snprintf(c->err, sizeof(c->err), "%s: no region %s",
		    c->path, name);
		errno = ENOENT;
		return NULL;
	}
	if (n != 3 || b >= e || page <= 0 || b % (uint64_t)page != 0 ||
	    e - b > SIZE_MAX) {
		close_fds(fds, n);
		conn_fail(c, "region %s: a reply of 0x%jx-0x%jx with %d "
		    "descriptors makes no sense", name, (uintmax_t)b,
		    (uintmax_t)e, n);
		errno = EPROTO;
		return NULL;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		(void)snprintf(c->err, sizeof(c->err), "%s", strerror(errno));
		close_fds(fds, n);
		return NULL;
	}
	memcpy(p->name, name, len);
	p->begin = b;
	p->end = e;
	p->len = (size_t)(e - b);
	p->g2h = fds[0];
	p->h2g = fds[1];
	p->shm = fds[2];
	return p;
}

/* Map the region alone, rounded up to a page. */
int
ivshm_map(struct ivshm_port *p, int prot)
{
	struct stat	 st;
	long		 page = sysconf(_SC_PAGESIZE);
	size_t		 len;
	void		*m;

	if (p->base != NULL)
		return 0;
	if (fstat(p->shm, &st) == -1)
		return ivshm_errf(p->err, sizeof(p->err), "%s: fstat: %s",
		    p->name, strerror(errno));
	/* Past the file's end a mapping raises SIGBUS, not an error. */
	if (st.st_size < 0 || p->end > (uint64_t)st.st_size)
		return ivshm_errf(p->err, sizeof(p->err), "%s: ends at 0x%jx, "
		    "past the window's 0x%jx", p->name, (uintmax_t)p->end,
		    (uintmax_t)st.st_size);
	len = (p->len + (size_t)page - 1) & ~((size_t)page - 1);
	m = mmap(NULL, len, prot, MAP_SHARED, p->shm, (off_t)p->begin);
	if (m == MAP_FAILED)
		return ivshm_errf(p->err, sizeof(p->err), "%s: mmap: %s",
		    p->name, strerror(errno));
	p->base = m;
	p->maplen = len;
	return 0;
}

/*
 * ivserver makes its eventfds non-blocking, and QEMU makes them so
 * anyway; a server that did neither must not make a wait hang.  The
 * flag belongs to the file all holders share: once is enough.
 */
static void
port_nonblock(struct ivshm_port *p)
{
	int	 i, fd, fl;

	if (p->flags & IVSHM_PORT_NONBLOCK)
		return;
	for (i = 0; i < 2; i++) {
		fd = i == 0 ? p->g2h : p->h2g;
		if ((fl = fcntl(fd, F_GETFL)) != -1 && !(fl & O_NONBLOCK))
			(void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	}
	p->flags |= IVSHM_PORT_NONBLOCK;
}

int
ivshm_ring(struct ivshm_port *p)
{
	uint64_t	 one = 1;
	ssize_t		 n;

	port_nonblock(p);
	do {
		n = write(p->h2g, &one, sizeof(one));
	} while (n == -1 && errno == EINTR);
	if (n == sizeof(one))
		return 0;
	if (n == -1 && errno == EAGAIN)
		return ivshm_errf(p->err, sizeof(p->err), "%s: the guest has "
		    "not taken its interrupts", p->name);
	return ivshm_errf(p->err, sizeof(p->err), "%s: ring: %s", p->name,
	    n == -1 ? strerror(errno) : "short write");
}

/*
 * Wait for the guest to ring: the count of rings since the last wait
 * (at most INT64_MAX), 0 on timeout, -1 on error.  ms < 0 waits for
 * ever.  Another reader of the same eventfd may take the count first:
 * then wait on.
 */
int64_t
ivshm_wait(struct ivshm_port *p, int ms)
{
	struct pollfd	 pfd;
	uint64_t	 count;
	int64_t		 deadline, left;
	ssize_t		 n;
	int		 k;

	port_nonblock(p);
	deadline = ms < 0 ? -1 : mono_ms() + ms;
	for (;;) {
		n = read(p->g2h, &count, sizeof(count));
		if (n == sizeof(count))
			return count > INT64_MAX ? INT64_MAX : (int64_t)count;
		if (n == -1 && errno != EAGAIN && errno != EINTR)
			return ivshm_errf(p->err, sizeof(p->err), "%s: wait: "
			    "%s", p->name, strerror(errno));
		if (n >= 0 && n != sizeof(count))
			return ivshm_errf(p->err, sizeof(p->err), "%s: wait: "
			    "short read", p->name);
		left = deadline < 0 ? -1 : deadline - mono_ms();
		if (deadline >= 0 && left <= 0)
			return 0;
		pfd.fd = p->g2h;
		pfd.events = POLLIN;
		k = poll(&pfd, 1, left > INT32_MAX ? INT32_MAX : (int)left);
		if (k == -1 && errno != EINTR)
			return ivshm_errf(p->err, sizeof(p->err), "%s: poll: "
			    "%s", p->name, strerror(errno));
	}
}

const char *
ivshm_port_error(const struct ivshm_port *p)
{
	return p->err;
}

void
ivshm_port_close(struct ivshm_port *p)
{
	if (p == NULL)
		return;
	if (p->base != NULL)
		(void)munmap((void *)(uintptr_t)p->base, p->maplen);
	close_fds(&p->g2h, 1);
	close_fds(&p->h2g, 1);
	close_fds(&p->shm, 1);
	free(p);
}

/* The window's fd, size and IVSHM_WINDOW_* flags. */
int
ivshm_get_window(struct ivshm_conn *c, int *fd, uint64_t *size,
    uint64_t *flags)
{
	uint64_t	 rep[2];
	struct stat	 st;
	int		 n, w;

	if ((n = ask(c, IVSHM_REQ_WINDOW, NULL, rep, sizeof(rep), &w,
	    1)) == -1)
		return -1;
	if (n != 1) {
		errno = EPROTO;
		return conn_fail(c, "the window came without its descriptor");
	}
	if (fstat(w, &st) == -1 || st.st_size < 0 ||
	    (uint64_t)st.st_size < le64toh(rep[0])) {
		(void)close(w);
		errno = EPROTO;
		return conn_fail(c, "the window is not the size the server "
		    "says, 0x%jx", (uintmax_t)le64toh(rep[0]));
	}
	*fd = w;
	*size = le64toh(rep[0]);
	if (flags != NULL)
		*flags = le64toh(rep[1]);
	return 0;
}

/*
 * The regions in the window's header, checked, in a new array: their
 * count, or -1.  The guest can write the header: these are what the
 * window says now, where ivshm_open gives what the server says.
 */
int
ivshm_list(struct ivshm_conn *c, struct ivshm_region **out)
{
	const volatile struct ivshm_header	*h;
	struct ivshm_region			*r = NULL;
	uint64_t				 size, flags;
	uint32_t				 i, n;
	void					*m;
	int					 fd;

	*out = NULL;
	if (ivshm_get_window(c, &fd, &size, &flags) == -1)
		return -1;
	if ((flags & IVSHM_WINDOW_HEADER) == 0) {
		(void)close(fd);
		(void)snprintf(c->err, sizeof(c->err), "%s: the window has no "
		    "header", c->path);
		return -1;
	}
	if (size > SIZE_MAX ||
	    (m = mmap(NULL, (size_t)size, PROT_READ, MAP_SHARED, fd, 0)) ==
	    MAP_FAILED) {
		(void)snprintf(c->err, sizeof(c->err), "%s: mmap window: %s",
		    c->path, strerror(size > SIZE_MAX ? EFBIG : errno));
		(void)close(fd);
		return -1;
	}
	(void)close(fd);
	h = m;
	if (ivshm_window_check(m, size, c->err, sizeof(c->err)) == -1)
		goto fail;
	n = le32toh(h->region_count);
	if (n > IVSHM_REGIONS_MAX ||
	    (r = calloc(n > 0 ? n : 1, sizeof(*r))) == NULL) {
		(void)snprintf(c->err, sizeof(c->err), "%s: %s", c->path,
		    strerror(ENOMEM));
		goto fail;
	}
	for (i = 0; i < n; i++)
		if (ivshm_window_region(m, size, i, &r[i], c->err,
		    sizeof(c->err)) == -1)
			goto fail;
	(void)munmap(m, (size_t)size);
	*out = r;
	return (int)n;
 fail:
	free(r);
	(void)munmap(m, (size_t)size);
	return -1;
}

int
ivshm_get_status(struct ivshm_conn *c, struct ivshm_status *st)
{
	struct ivshm_status	 le;
	int			 fd;

	if (ask(c, IVSHM_REQ_STATUS, NULL, &le, sizeof(le), &fd, 0) == -1)
		return -1;
	memset(st, 0, sizeof(*st));
	st->flags = le32toh(le.flags);
	st->vm_peer = le32toh(le.vm_peer);
	st->vm_pid = le64toh(le.vm_pid);
	st->vm_since = le64toh(le.vm_since);
	st->clients = le32toh(le.clients);
	st->server_pid = le32toh(le.server_pid);
	st->generation = le64toh(le.generation);
	st->regions = le32toh(le.regions);
	st->watchers = le32toh(le.watchers);
	memcpy(st->version, le.version, sizeof(st->version));
	st->version[sizeof(st->version) - 1] = '\0';
	return 0;
}

static int
event_read(struct ivshm_conn *c, struct ivshm_event *ev)
{
	struct ivshm_event	 le;
	int			 fd, n;

	if (recv_all(c, &le, sizeof(le), &fd, &n, 0) == -1)
		return -1;
	ev->type = le32toh(le.type);
	ev->flags = le32toh(le.flags);
	ev->peer = le32toh(le.peer);
	ev->reserved = 0;
	ev->pid = le64toh(le.pid);
	ev->time = le64toh(le.time);
	ev->generation = le64toh(le.generation);
	if (ev->type != IVSHM_EVENT_ATTACH && ev->type != IVSHM_EVENT_DETACH)
		return conn_fail(c, "event of unknown type %u", ev->type);
	return 0;
}

/* Make the connection a watcher; *initial is the state as it is. */
int
ivshm_watch(struct ivshm_conn *c, struct ivshm_event *initial)
{
	uint16_t	 le = htole16(IVSHM_REQ_WATCH);

	if (c->broken)
		return -1;
	if (!c->watching && send_all(c, &le, sizeof(le)) == -1)
		return -1;
	c->watching = 1;
	if (event_read(c, initial) == -1)
		return -1;
	if ((initial->flags & IVSHM_EVENT_INITIAL) == 0)
		return conn_fail(c, "the first event is not the state");
	return 0;
}

/* 1 and an event, 0 if none came within ms (< 0: for ever), or -1. */
int
ivshm_next_event(struct ivshm_conn *c, struct ivshm_event *ev, int ms)
{
	struct pollfd	 pfd;
	int		 n;

	if (c->broken)
		return -1;
	if (!c->watching) {
		(void)snprintf(c->err, sizeof(c->err), "%s: not watching",
		    c->path);
		return -1;
	}
	pfd.fd = c->fd;
	pfd.events = POLLIN;
	while ((n = poll(&pfd, 1, ms < 0 ? -1 : ms)) == -1 && errno == EINTR)
		;
	if (n == -1)
		return conn_fail(c, "poll: %s", strerror(errno));
	if (n == 0)
		return 0;
	return event_read(c, ev) == -1 ? -1 : 1;
}
