/*
 * Fuzz the host-client protocol: a byte stream in, cut into writes at
 * points the input chooses, fed through a socketpair to proto.c's own
 * connection state machine.  The first byte of every chunk is its
 * length.  What comes back must be the version and then exactly the
 * replies to the whole requests the stream holds, as a model of the
 * protocol counts them: 16 bytes for a region or the window, 64 for a
 * status, 40 for the start of a watch and 40 for each VM event after.
 */

#include <sys/ioctl.h>
#include <sys/mman.h>
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
	/* Stand-ins for the eventfds: any open fd; a window to write. */
	if ((flayout.shmfd = memfd_create("fuzz", MFD_CLOEXEC)) == -1 ||
	    ftruncate(flayout.shmfd, (off_t)flayout.size) == -1)
		abort();
	flayout.regions[0].g2h = flayout.regions[0].h2g = 0;
	flayout.regions[1].g2h = flayout.regions[1].h2g = 0;
	fsrv.layout = &flayout;
	fsrv.maxclients = 1;
	fsrv.nofile = 1024;
	fsrv.timeout = 1000;
	proto_init(&fsrv);
}

/* Bytes waiting to be read on s. */
static int
unread(int s)
{
	int	n;

	if (ioctl(s, FIONREAD, &n) == -1)
		abort();
	return n;
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
			if (k != 3 && k != 1)
				abort();	/* a region's three, the window */
			for (i = 0; i < k; i++) {
				memcpy(&fd, CMSG_DATA(c) + i * sizeof(int),
				    sizeof(fd));
				close(fd);
			}
		}
		total += n;
	}
}

/*
 * The bytes the server must send for the requests in the stream, as
 * the client wrote it (the chunk lengths taken out); *watch if the
 * last request left the connection watching.
 */
static size_t
model(const uint8_t *req, size_t n, int *watch)
{
	size_t		 off = 0, want = 4;
	unsigned int	 k;

	*watch = 0;
	while (n - off >= 2) {
		k = req[off] | (unsigned int)req[off + 1] << 8;
		off += 2;
		if (k >= 1 && k <= REGION_NAME_MAX) {
			if (n - off < k)
				break;
			off += k;
			want += 16;
		} else if (k == IVSHM_REQ_WINDOW)
			want += 16;
		else if (k == IVSHM_REQ_STATUS)
			want += sizeof(struct ivshm_status);
		else if (k == IVSHM_REQ_WATCH) {
			*watch = off == n;	/* a byte more ends it */
			return want + sizeof(struct ivshm_event);
		} else
			break;
	}
	return want;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	static struct peer	 vm;
	struct conn		*c;
	uint8_t			*sent;
	size_t			 off = 0, chunk, got = 0, nsent = 0, want;
	int			 sp[2], i, watch;

	if (srv == NULL)
		setup();
	if ((sent = malloc(len + 1)) == NULL)
		abort();
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
		memcpy(sent + nsent, data + off, chunk);
		nsent += chunk;
		off += chunk;
		/* Enough reads to take every byte of the chunk. */
		for (i = 0; i < 40 && !c->dead && c->state != C_SEND; i++)
			conn_input(c);
	}
	/*
	 * A reply held back leaves requests unread: take them too, as
	 * many as the stream can hold (2 bytes the shortest), until
	 * nothing is left to read.
	 */
	for (i = 0; i < 4 * (int)len + 64 && !c->dead; i++) {
		if (c->state == C_SEND)
			conn_output(c);
		else if (unread(sp[0]) == 0)
			break;
		else
			conn_input(c);
		got += drain(sp[1]);
	}
	got += drain(sp[1]);
	want = model(sent, nsent, &watch);
	/* A watcher hears of a VM that comes and goes, and nothing else. */
	if (watch && !c->dead && c->state == C_WATCH) {
		vm.id = 1;
		vm.pid = 1;
		conn_vm_event(IVSHM_EVENT_ATTACH, &vm);
		conn_vm_event(IVSHM_EVENT_DETACH, &vm);
		got += drain(sp[1]);
		want += 2 * sizeof(struct ivshm_event);
	}
	if (got != want)
		abort();
	free(sent);
	close(sp[1]);
	if (c->dead || c->state != C_WATCH || watch)
		conn_close(c);
	else
		abort();
	return 0;
}
