/*
 * ivctl: ask a running ivserver, ring and wait on its regions, read and
 * write them, or join a peer-mode server as a peer (see ivctl(8)).
 *
 * Exit status: 0 done, 1 the command failed (no such region, a wait
 * that timed out, out of bounds), 2 a usage error or no server.
 */

#include <sys/types.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <ctype.h>
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ivshm.h"

#define EX_FAIL		1
#define EX_USAGE	2
#define IO_CHUNK	65536
#define PEER_SOCKET	"qemu.sock"
#define PEER_MAX	65536	/* IDs 0..65535 */
#define PEER_VECTORS	1024	/* the most eventfds kept per peer */
#define PEER_SETTLE	100	/* ms of quiet that ends the handshake */

struct peer {
	int		 nvec;
	int		*vec;
};

struct peerstate {
	char		 line[256];	/* standard input, up to a newline */
	size_t		 linelen;
	int		 s;
	int		 hello;		/* "self" printed: joins are news */
	long		 self;
	int		 shm;
	struct peer	*peers;		/* [PEER_MAX] */
	char		 path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

static void	usage(void) __attribute__((__noreturn__));
static void	die(int, const char *, ...)
		    __attribute__((__noreturn__, __format__ (printf, 2, 3)));
static uint64_t	number(const char *, const char *);
static struct ivshm_conn *conn(const char *);
static struct ivshm_port *port(struct ivshm_conn *, const char *);
static void	human(uint64_t, char *, size_t);
static void	when(uint64_t, char *, size_t);
static int	cmd_list(const char *);
static int	cmd_status(const char *);
static int	cmd_watch(const char *);
static void	print_event(const struct ivshm_event *);
static int	cmd_ring(const char *, int, char **);
static int	cmd_wait(const char *, int, char **);
static int	cmd_read(const char *, int, char **);
static int	cmd_write(const char *, int, char **);
static void	hexdump(const unsigned char *, size_t, uint64_t);
static int	host_main(const char *, int, char **);
static int	peer_main(const char *, int, char **);
static int	peer_recv(struct peerstate *, int64_t *, int *);
static int	peer_message(struct peerstate *);
static void	peer_hello(struct peerstate *);
static int	peer_command(struct peerstate *, char *);
static int	peer_ring(struct peerstate *, long, long);
static int	peer_input(struct peerstate *);

static void
usage(void)
{
	fprintf(stderr, "usage: ivctl [-s socket] list | status | watch\n"
	    "       ivctl [-s socket] ring region [count]\n"
	    "       ivctl [-s socket] wait region [-t ms]\n"
	    "       ivctl [-s socket] read region [offset [length]]\n"
	    "       ivctl [-s socket] write region [offset] < data\n"
	    "       ivctl -P [-S socket] peer\n");
	exit(EX_USAGE);
}

static void
die(int status, const char *fmt, ...)
{
	va_list	 ap;

	fflush(stdout);
	fprintf(stderr, "ivctl: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(status);
}

/* A decimal, 0x hexadecimal or 0 octal number, whole. */
static uint64_t
number(const char *s, const char *what)
{
	unsigned long long	 v;
	char			*end;

	errno = 0;
	if (!isdigit((unsigned char)s[0]))
		die(EX_USAGE, "%s: %s is not a number", what, s);
	v = strtoull(s, &end, 0);
	if (errno != 0 || *end != '\0')
		die(EX_USAGE, "%s: %s is not a number", what, s);
	return v;
}

static struct ivshm_conn *
conn(const char *path)
{
	struct ivshm_conn	*c;
	char			 err[IVSHM_ERRSIZE];

	if ((c = ivshm_connect(path, err, sizeof(err))) == NULL)
		die(EX_USAGE, "%s", err);
	return c;
}

static struct ivshm_port *
port(struct ivshm_conn *c, const char *name)
{
	struct ivshm_port	*p;

	if ((p = ivshm_open(c, name)) == NULL)
		die(errno == ENOENT || errno == EINVAL ? EX_FAIL : EX_USAGE,
		    "%s", ivshm_error(c));
	return p;
}

/* As ivserver -n prints sizes. */
static void
human(uint64_t v, char *buf, size_t len)
{
	const char	*u = "KMGT";
	int		 i = -1;

	while ((v & 1023) == 0 && v >= 1024 && u[i + 1] != '\0') {
		v >>= 10;
		i++;
	}
	if (i < 0)
		snprintf(buf, len, "%ju", (uintmax_t)v);
	else
		snprintf(buf, len, "%ju%c", (uintmax_t)v, u[i]);
}

static void
when(uint64_t ms, char *buf, size_t len)
{
	struct tm	 tm;
	time_t		 t = (time_t)(ms / 1000);

	if (ms == 0 || gmtime_r(&t, &tm) == NULL)
		snprintf(buf, len, "-");
	else if (strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, len, "-");
}

/* The table of ivserver -n, from the window's header. */
static int
cmd_list(const char *path)
{
	struct ivshm_conn	*c = conn(path);
	struct ivshm_region	*r;
	uint64_t		 size, flags;
	char			 hs[32];
	int			 fd, i, n;

	if (ivshm_get_window(c, &fd, &size, &flags) == -1)
		die(EX_FAIL, "%s", ivshm_error(c));
	close(fd);
	if ((n = ivshm_list(c, &r)) == -1)
		die(EX_FAIL, "%s", ivshm_error(c));
	printf("%-15s %-14s %-14s %14s %6s\n", "name", "begin", "end",
	    "size", "vector");
	for (i = 0; i < n; i++)
		printf("%-15s 0x%012jx 0x%012jx %14ju %6u\n", r[i].name,
		    (uintmax_t)r[i].begin, (uintmax_t)r[i].end,
		    (uintmax_t)(r[i].end - r[i].begin), r[i].vector);
	human(size, hs, sizeof(hs));
	printf("total 0x%012jx (%s) in %d regions\n", (uintmax_t)size, hs,
	    n);
	free(r);
	ivshm_close(c);
	return 0;
}

static int
cmd_status(const char *path)
{
	struct ivshm_conn	*c = conn(path);
	struct ivshm_status	 st;
	char			 t[64];

	if (ivshm_get_status(c, &st) == -1)
		die(EX_FAIL, "%s", ivshm_error(c));
	when(st.vm_since, t, sizeof(t));
	if (st.flags & IVSHM_STATUS_VM)
		printf("vm attached\nvm_peer %u\nvm_pid %ju\nvm_since %s\n",
		    st.vm_peer, (uintmax_t)st.vm_pid, t);
	else
		printf("vm detached\nvm_since %s\n", t);
	printf("generation %ju\nclients %u\nwatchers %u\nregions %u\n"
	    "server_pid %u\nversion %s\n", (uintmax_t)st.generation,
	    st.clients, st.watchers, st.regions, st.server_pid, st.version);
	ivshm_close(c);
	return 0;
}

static void
print_event(const struct ivshm_event *ev)
{
	char	 t[64];

	when(ev->time, t, sizeof(t));
	if (ev->flags & IVSHM_EVENT_INITIAL)
		printf("state %s", ev->type == IVSHM_EVENT_ATTACH ?
		    "attached" : "detached");
	else
		printf("%s", ev->type == IVSHM_EVENT_ATTACH ?
		    "attach" : "detach");
	if (ev->peer != UINT32_MAX)
		printf(" peer %u pid %ju", ev->peer, (uintmax_t)ev->pid);
	printf(" generation %ju time %s\n", (uintmax_t)ev->generation, t);
	fflush(stdout);
}

/* One line per event until the server goes. */
static int
cmd_watch(const char *path)
{
	struct ivshm_conn	*c = conn(path);
	struct ivshm_event	 ev;

	if (ivshm_watch(c, &ev) == -1)
		die(EX_FAIL, "%s", ivshm_error(c));
	print_event(&ev);
	while (ivshm_next_event(c, &ev, -1) == 1)
		print_event(&ev);
	die(EX_FAIL, "%s", ivshm_error(c));
}

static int
cmd_ring(const char *path, int argc, char **argv)
{
	struct ivshm_conn	*c;
	struct ivshm_port	*p;
	uint64_t		 n = 1, i;

	if (argc < 1 || argc > 2)
		usage();
	if (argc == 2 && (n = number(argv[1], "count")) == 0)
		die(EX_USAGE, "count: 0 rings nothing");
	c = conn(path);
	p = port(c, argv[0]);
	for (i = 0; i < n; i++)
		if (ivshm_ring(p) == -1)
			die(EX_FAIL, "%s", ivshm_port_error(p));
	ivshm_port_close(p);
	ivshm_close(c);
	return 0;
}

/* wait region [-t ms], or wait -t ms region. */
static int
cmd_wait(const char *path, int argc, char **argv)
{
	struct ivshm_conn	*c;
	struct ivshm_port	*p;
	const char		*name = NULL;
	uint64_t		 t;
	int64_t			 n;
	int			 i, ms = -1;

	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "-t") == 0 && i + 1 < argc) {
			if ((t = number(argv[++i], "-t")) > INT_MAX)
				die(EX_USAGE, "-t: %s ms is too long", argv[i]);
			ms = (int)t;
		} else if (name == NULL && argv[i][0] != '-')
			name = argv[i];
		else
			usage();
	}
	if (name == NULL)
		usage();
	c = conn(path);
	p = port(c, name);
	/* The fds outlive the connection: nothing more to ask. */
	ivshm_close(c);
	if ((n = ivshm_wait(p, ms)) == -1)
		die(EX_FAIL, "%s", ivshm_port_error(p));
	if (n == 0)
		die(EX_FAIL, "%s: no ring within %d ms", name, ms);
	printf("%jd\n", (intmax_t)n);
	ivshm_port_close(p);
	return 0;
}

static void
hexdump(const unsigned char *buf, size_t len, uint64_t off)
{
	size_t	 i, j;

	for (i = 0; i < len; i += 16) {
		printf("%08jx ", (uintmax_t)(off + i));
		for (j = 0; j < 16; j++) {
			if (j == 8)
				putchar(' ');
			if (i + j < len)
				printf(" %02x", buf[i + j]);
			else
				printf("   ");
		}
		printf("  |");
		for (j = 0; j < 16 && i + j < len; j++)
			putchar(isprint(buf[i + j]) ? buf[i + j] : '.');
		printf("|\n");
	}
}

/* Bounds against the region, as offset [length]. */
static void
span(const struct ivshm_port *p, int argc, char **argv, uint64_t *off,
    uint64_t *len, int haslen)
{
	*off = argc > 1 ? number(argv[1], "offset") : 0;
	if (*off > p->len)
		die(EX_FAIL, "%s: offset 0x%jx past its %zu bytes", p->name,
		    (uintmax_t)*off, p->len);
	*len = p->len - *off;
	if (haslen && argc > 2) {
		*len = number(argv[2], "length");
		if (*len > p->len - *off)
			die(EX_FAIL, "%s: 0x%jx bytes at 0x%jx pass its end, "
			    "0x%zx", p->name, (uintmax_t)*len,
			    (uintmax_t)*off, p->len);
	}
}

static int
cmd_read(const char *path, int argc, char **argv)
{
	struct ivshm_conn	*c;
	struct ivshm_port	*p;
	unsigned char		*buf;
	const volatile unsigned char *base;
	uint64_t		 off, len, n;
	int			 tty = isatty(STDOUT_FILENO);

	if (argc < 1 || argc > 3)
		usage();
	c = conn(path);
	p = port(c, argv[0]);
	ivshm_close(c);
	span(p, argc, argv, &off, &len, 1);
	if (ivshm_map(p, PROT_READ) == -1)
		die(EX_FAIL, "%s", ivshm_port_error(p));
	if ((buf = malloc(IO_CHUNK)) == NULL)
		die(EX_FAIL, "%s", strerror(errno));
	base = p->base;
	while (len > 0) {
		n = len < IO_CHUNK ? len : IO_CHUNK;
		ivshm_copy_in(buf, base + off, (size_t)n);
		if (tty)
			hexdump(buf, (size_t)n, off);
		else if (fwrite(buf, 1, (size_t)n, stdout) != n)
			die(EX_FAIL, "stdout: %s", strerror(errno));
		off += n;
		len -= n;
	}
	if (fflush(stdout) == EOF)
		die(EX_FAIL, "stdout: %s", strerror(errno));
	free(buf);
	ivshm_port_close(p);
	return 0;
}

/* All of standard input, or nothing if it does not fit. */
static int
cmd_write(const char *path, int argc, char **argv)
{
	struct ivshm_conn	*c;
	struct ivshm_port	*p;
	unsigned char		*buf;
	uint64_t		 off, room;
	size_t			 len = 0, n;

	if (argc < 1 || argc > 2)
		usage();
	c = conn(path);
	p = port(c, argv[0]);
	ivshm_close(c);
	span(p, argc, argv, &off, &room, 0);
	if ((buf = malloc(room + 1)) == NULL)
		die(EX_FAIL, "%s", strerror(errno));
	while ((n = fread(buf + len, 1, room + 1 - len, stdin)) > 0)
		if ((len += n) > room)
			die(EX_FAIL, "%s: the input passes its end at 0x%zx",
			    p->name, p->len);
	if (ferror(stdin))
		die(EX_FAIL, "stdin: %s", strerror(errno));
	if (ivshm_map(p, PROT_READ | PROT_WRITE) == -1)
		die(EX_FAIL, "%s", ivshm_port_error(p));
	ivshm_copy_out((volatile unsigned char *)p->base + off, buf, len);
	free(buf);
	ivshm_port_close(p);
	return 0;
}

static int
host_main(const char *path, int argc, char **argv)
{
	if (argc < 1)
		usage();
	if (strcmp(argv[0], "list") == 0 && argc == 1)
		return cmd_list(path);
	if (strcmp(argv[0], "status") == 0 && argc == 1)
		return cmd_status(path);
	if (strcmp(argv[0], "watch") == 0 && argc == 1)
		return cmd_watch(path);
	if (strcmp(argv[0], "ring") == 0)
		return cmd_ring(path, argc - 1, argv + 1);
	if (strcmp(argv[0], "wait") == 0)
		return cmd_wait(path, argc - 1, argv + 1);
	if (strcmp(argv[0], "read") == 0)
		return cmd_read(path, argc - 1, argv + 1);
	if (strcmp(argv[0], "write") == 0)
		return cmd_write(path, argc - 1, argv + 1);
	usage();
}

/*
 * Peer mode: ivshmem protocol 0, as QEMU speaks it.
 */

/* One 8-byte message and at most one fd: 1, 0 at its end, -1. */
static int
peer_recv(struct peerstate *ps, int64_t *val, int *fd)
{
	union {
		struct cmsghdr	 hdr;
		unsigned char	 buf[CMSG_SPACE(4 * sizeof(int))];
	}		 cm;
	struct msghdr	 mh;
	struct iovec	 iov;
	struct cmsghdr	*cmsg;
	unsigned char	 buf[8];
	size_t		 got = 0;
	ssize_t		 n;
	int		 k, i, f;

	*fd = -1;
	while (got < sizeof(buf)) {
		memset(&mh, 0, sizeof(mh));
		iov.iov_base = buf + got;
		iov.iov_len = sizeof(buf) - got;
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		mh.msg_control = cm.buf;
		mh.msg_controllen = sizeof(cm.buf);
		n = recvmsg(ps->s, &mh, MSG_CMSG_CLOEXEC);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			die(EX_FAIL, "%s: %s", ps->path, strerror(errno));
		for (cmsg = CMSG_FIRSTHDR(&mh); cmsg != NULL;
		    cmsg = CMSG_NXTHDR(&mh, cmsg)) {
			if (cmsg->cmsg_level != SOL_SOCKET ||
			    cmsg->cmsg_type != SCM_RIGHTS)
				continue;
			k = (int)((cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int));
			for (i = 0; i < k; i++) {
				memcpy(&f, CMSG_DATA(cmsg) + i * sizeof(int),
				    sizeof(f));
				if (*fd == -1)
					*fd = f;
				else {
					close(f);
					die(EX_FAIL, "%s: a message with more "
					    "than one descriptor", ps->path);
				}
			}
		}
		if (mh.msg_flags & MSG_CTRUNC)
			die(EX_FAIL, "%s: descriptors truncated", ps->path);
		if (n == 0) {
			if (got != 0)
				die(EX_FAIL, "%s: closed in mid-message",
				    ps->path);
			return 0;
		}
		got += (size_t)n;
	}
	memcpy(val, buf, sizeof(*val));
	*val = (int64_t)le64toh((uint64_t)*val);
	return 1;
}

/* A peer's next eventfd, or its leaving: 1, or 0 at the end. */
static int
peer_message(struct peerstate *ps)
{
	struct peer	*p;
	int64_t		 v;
	int		 fd, i;
	int		*nv;

	if (peer_recv(ps, &v, &fd) == 0)
		return 0;
	if (v < 0 || v >= PEER_MAX) {
		if (fd != -1)
			close(fd);
		die(EX_FAIL, "%s: peer ID %jd out of range", ps->path,
		    (intmax_t)v);
	}
	p = &ps->peers[v];
	if (fd == -1) {
		for (i = 0; i < p->nvec; i++)
			close(p->vec[i]);
		free(p->vec);
		p->vec = NULL;
		p->nvec = 0;
		if (v != ps->self && ps->hello)
			printf("leave %jd\n", (intmax_t)v);
		fflush(stdout);
		return 1;
	}
	if (p->nvec >= PEER_VECTORS) {
		close(fd);
		return 1;
	}
	if ((nv = reallocarray(p->vec, p->nvec + 1, sizeof(int))) == NULL)
		die(EX_FAIL, "%s", strerror(errno));
	p->vec = nv;
	p->vec[p->nvec++] = fd;
	if (v != ps->self && p->nvec == 1 && ps->hello)
		printf("join %jd\n", (intmax_t)v);
	fflush(stdout);
	return 1;
}

/* Who we are and who is there. */
static void
peer_hello(struct peerstate *ps)
{
	const char	*sep = " ";
	long		 i;

	printf("self %ld vectors %d peers", ps->self,
	    ps->peers[ps->self].nvec);
	for (i = 0; i < PEER_MAX; i++)
		if (i != ps->self && ps->peers[i].nvec > 0) {
			printf("%s%ld", sep, i);
			sep = ",";
		}
	if (*sep == ' ')
		printf(" -");
	printf("\n");
	fflush(stdout);
}

static int
peer_ring(struct peerstate *ps, long id, long vec)
{
	uint64_t	 one = 1;
	struct peer	*p = &ps->peers[id];

	if (vec < 0 || vec >= p->nvec || id == ps->self) {
		printf("noring %ld %ld\n", id, vec);
		return -1;
	}
	if (write(p->vec[vec], &one, sizeof(one)) != sizeof(one)) {
		printf("noring %ld %ld\n", id, vec);
		return -1;
	}
	printf("rang %ld %ld\n", id, vec);
	return 0;
}

/*
 * "ring PEER VECTOR", "ring PEER all", "ring all", "list", "quit":
 * 1 to go on, 0 to end.
 */
static int
peer_command(struct peerstate *ps, char *line)
{
	char		*w[4], *last;
	const char	*errstr;
	long		 id, v;
	int		 n = 0, i;

	for (w[n] = strtok_r(line, " \t\r\n", &last); w[n] != NULL && n < 3;
	    w[++n] = strtok_r(NULL, " \t\r\n", &last))
		;
	if (n == 0)
		return 1;
	if (strcmp(w[0], "quit") == 0 && n == 1)
		return 0;
	if (strcmp(w[0], "list") == 0 && n == 1) {
		peer_hello(ps);
		return 1;
	}
	if (strcmp(w[0], "ring") == 0 && n == 2 && strcmp(w[1], "all") == 0) {
		for (id = 0; id < PEER_MAX; id++)
			if (id != ps->self)
				for (i = 0; i < ps->peers[id].nvec; i++)
					peer_ring(ps, id, i);
		printf("done\n");
		fflush(stdout);
		return 1;
	}
	if (strcmp(w[0], "ring") == 0 && n == 3) {
		id = (long)strtonum(w[1], 0, PEER_MAX - 1, &errstr);
		if (errstr == NULL && strcmp(w[2], "all") == 0) {
			for (i = 0; i < ps->peers[id].nvec; i++)
				peer_ring(ps, id, i);
			printf("done\n");
		} else if (errstr == NULL) {
			v = (long)strtonum(w[2], 0, PEER_VECTORS - 1, &errstr);
			if (errstr == NULL)
				peer_ring(ps, id, v);
		}
		if (errstr != NULL)
			printf("error %s\n", errstr);
		fflush(stdout);
		return 1;
	}
	printf("error unknown command\n");
	fflush(stdout);
	return 1;
}

/* Commands read with read(2), not stdio, whose buffer poll cannot see. */
static int
peer_input(struct peerstate *ps)
{
	char	*nl;
	ssize_t	 n;
	size_t	 k;

	n = read(STDIN_FILENO, ps->line + ps->linelen,
	    sizeof(ps->line) - 1 - ps->linelen);
	if (n == -1 && (errno == EINTR || errno == EAGAIN))
		return 1;
	if (n <= 0)
		return 0;
	ps->linelen += (size_t)n;
	while ((nl = memchr(ps->line, '\n', ps->linelen)) != NULL) {
		*nl = '\0';
		k = (size_t)(nl - ps->line) + 1;
		if (peer_command(ps, ps->line) == 0)
			return 0;
		memmove(ps->line, ps->line + k, ps->linelen - k);
		ps->linelen -= k;
	}
	if (ps->linelen == sizeof(ps->line) - 1) {
		printf("error line too long\n");
		ps->linelen = 0;
	}
	return 1;
}

static int
peer_main(const char *path, int argc, char **argv)
{
	struct peerstate	 ps;
	struct sockaddr_un	 sun;
	struct pollfd		*pfd;
	char			 dir[sizeof(ps.path)];
	int64_t			 v;
	uint64_t		 cnt;
	int			 fd, i, n, k, npfd, live = 1;
	struct peer		*self;

	if (argc != 1 || strcmp(argv[0], "peer") != 0)
		usage();
	memset(&ps, 0, sizeof(ps));
	ps.self = -1;
	if (path == NULL && ivshm_rundir(dir, sizeof(dir)) == -1)
		die(EX_USAGE, "runtime directory path too long");
	n = path != NULL ? snprintf(ps.path, sizeof(ps.path), "%s", path) :
	    snprintf(ps.path, sizeof(ps.path), "%s/%s", dir, PEER_SOCKET);
	if (n < 0 || (size_t)n >= sizeof(ps.path))
		die(EX_USAGE, "socket path too long");
	if ((ps.peers = calloc(PEER_MAX, sizeof(*ps.peers))) == NULL)
		die(EX_FAIL, "%s", strerror(errno));
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, ps.path, strlen(ps.path));
	if ((ps.s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    connect(ps.s, (struct sockaddr *)&sun, sizeof(sun)) == -1)
		die(EX_USAGE, "%s: %s", ps.path, strerror(errno));

	/* Version, own ID, window: in that order, before anything else. */
	if (peer_recv(&ps, &v, &fd) != 1 || fd != -1 || v != 0)
		die(EX_FAIL, "%s: not ivshmem protocol 0", ps.path);
	if (peer_recv(&ps, &v, &fd) != 1 || fd != -1 || v < 0 ||
	    v >= PEER_MAX)
		die(EX_FAIL, "%s: the server refused us", ps.path);
	ps.self = (long)v;
	if (peer_recv(&ps, &v, &ps.shm) != 1 || ps.shm == -1 || v != -1)
		die(EX_FAIL, "%s: no window", ps.path);
	self = &ps.peers[ps.self];

	while (live) {
		npfd = 2 + self->nvec;
		if ((pfd = calloc(npfd, sizeof(*pfd))) == NULL)
			die(EX_FAIL, "%s", strerror(errno));
		pfd[0].fd = ps.s;
		pfd[0].events = POLLIN;
		/* Commands only once we have told who we are. */
		pfd[1].fd = ps.hello ? STDIN_FILENO : -1;
		pfd[1].events = POLLIN;
		for (i = 0; i < self->nvec; i++) {
			pfd[2 + i].fd = self->vec[i];
			pfd[2 + i].events = POLLIN;
		}
		k = poll(pfd, npfd, ps.hello ? -1 : PEER_SETTLE);
		if (k == -1 && errno != EINTR)
			die(EX_FAIL, "poll: %s", strerror(errno));
		if (k == 0 && !ps.hello && self->nvec > 0) {
			peer_hello(&ps);
			ps.hello = 1;
		}
		/* All that came, before any command: a join is whole. */
		if (k > 0 && (pfd[0].revents & (POLLIN | POLLHUP))) {
			do {
				if (peer_message(&ps) == 0) {
					printf("server closed\n");
					live = 0;
					break;
				}
				pfd[0].revents = 0;
			} while (poll(pfd, 1, 0) == 1 &&
			    (pfd[0].revents & (POLLIN | POLLHUP)));
		}
		for (i = 0; k > 0 && i < npfd - 2 && i < self->nvec; i++)
			if ((pfd[2 + i].revents & POLLIN) &&
			    read(self->vec[i], &cnt, sizeof(cnt)) ==
			    sizeof(cnt))
				printf("irq %d count %ju\n", i,
				    (uintmax_t)cnt);
		if (k > 0 && (pfd[1].revents & (POLLIN | POLLHUP)) &&
		    peer_input(&ps) == 0)
			live = 0;
		fflush(stdout);
		free(pfd);
	}
	for (i = 0; i < PEER_MAX; i++) {
		for (k = 0; k < ps.peers[i].nvec; k++)
			close(ps.peers[i].vec[k]);
		free(ps.peers[i].vec);
	}
	free(ps.peers);
	close(ps.shm);
	close(ps.s);
	return 0;
}

int
main(int argc, char *argv[])
{
	const char	*path = NULL;
	int		 ch, pflag = 0;

	/* -D, the guest side, dispatches here too. */
	while ((ch = getopt(argc, argv, "+PS:s:")) != -1) {
		switch (ch) {
		case 'P':
			pflag = 1;
			break;
		case 'S':
		case 's':
			path = optarg;
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (pflag)
		return peer_main(path, argc, argv);
	return host_main(path, argc, argv);
}
