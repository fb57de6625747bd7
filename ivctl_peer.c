/*
 * ivctl_peer.c: ivctl -P peer, a peer of an ivshmem server in peer mode
 * (ivserver -P, or QEMU's own), driven on standard input and output.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ivshm.h"
#include "ivctl.h"

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

static int	peer_recv(struct peerstate *, int64_t *, int *);
static int	peer_message(struct peerstate *);
static void	peer_hello(struct peerstate *);
static int	peer_command(struct peerstate *, char *);
static int	peer_ring(struct peerstate *, long, long);
static int	peer_input(struct peerstate *);

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

int
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
