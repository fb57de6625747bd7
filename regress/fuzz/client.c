/*
 * Fuzz the host-client protocol: a byte stream in, cut into writes at
 * points the input chooses, fed through a socketpair to proto.c's own
 * connection state machine.  The first byte of every chunk is its
 * length.  Every reply must be a version or a well-formed answer.
 */

#include <sys/socket.h>

#include <stdio.h>
#include <stdlib.h>

/* The state machine is file-local: include it. */
#include "../../proto.c"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static struct layout	 flayout;
static struct server	 fsrv;

static void
setup(void)
{
	static const char js[] = "{\"regions\": [{\"name\": \"a\", "
	    "\"size\": 1}, {\"name\": \"bb\", \"size\": \"4K\"}]}";

	flayout.shmfd = -1;
	if (layout_parse(&flayout, "fuzz", js, sizeof(js) - 1) == -1)
		abort();
	/* Stand-ins for the eventfds and the window: any open fds. */
	flayout.shmfd = 0;
	flayout.regions[0].g2h = flayout.regions[0].h2g = 0;
	flayout.regions[1].g2h = flayout.regions[1].h2g = 0;
	fsrv.layout = &flayout;
	fsrv.maxclients = 1;
	fsrv.nofile = 1024;
	fsrv.timeout = 1000;
	proto_init(&fsrv);
}

/* Read and check what the server sent; returns bytes read. */
static size_t
drain(int s)
{
	unsigned char	 buf[256];
	union {
		struct cmsghdr	hdr;
		unsigned char	buf[CMSG_SPACE(8 * sizeof(int))];
	}		 cm;
	struct msghdr	 mh;
	struct iovec	 iov;
	struct cmsghdr	*c;
	ssize_t		 n;
	size_t		 total = 0, k, i;
	int		 fd;

	for (;;) {
		memset(&mh, 0, sizeof(mh));
		iov.iov_base = buf;
		iov.iov_len = sizeof(buf);
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		mh.msg_control = cm.buf;
		mh.msg_controllen = sizeof(cm.buf);
		if ((n = recvmsg(s, &mh, MSG_DONTWAIT)) <= 0)
			return total;
		for (c = CMSG_FIRSTHDR(&mh); c != NULL;
		    c = CMSG_NXTHDR(&mh, c)) {
			k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			if (k != 3)
				abort();	/* fds come three at a time */
			for (i = 0; i < k; i++) {
				memcpy(&fd, CMSG_DATA(c) + i * sizeof(int),
				    sizeof(fd));
				close(fd);
			}
		}
		total += n;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct conn	*c;
	size_t		 off = 0, chunk, got = 0;
	int		 sp[2], i;

	if (srv == NULL)
		setup();
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sp) == -1)
		abort();
	if ((c = calloc(1, sizeof(*c))) == NULL)
		abort();
	c->fd = sp[0];
	TAILQ_INSERT_TAIL(&conns, c, entry);
	nconns++;
	conn_wait_request(c);
	memset(c->out, 0, 4);
	c->outlen = 4;
	c->state = C_SEND;
	while (!c->dead) {
		if (c->state == C_SEND) {
			conn_output(c);
			got += drain(sp[1]);
			continue;
		}
		if (off >= len)
			break;
		chunk = 1 + data[off++] % 32;
		if (chunk > len - off)
			chunk = len - off;
		if (chunk > 0 && write(sp[1], data + off, chunk) == -1)
			abort();
		off += chunk;
		/* Enough reads to take every byte of the chunk. */
		for (i = 0; i < 40 && !c->dead && c->state != C_SEND; i++)
			conn_input(c);
	}
	got += drain(sp[1]);
	/* The version, then whole 16-byte answers only. */
	if (got < 4 || (got - 4) % 16 != 0)
		abort();
	close(sp[1]);
	conn_close(c);
	return 0;
}
