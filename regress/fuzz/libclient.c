/*
 * Fuzz libivshm's host side against a hostile server: the input is
 * what the server sends, cut into messages that may carry descriptors,
 * and the window those descriptors are, with the header the library
 * reads.  Its first byte picks the call, its second n the split: the
 * server sends the next 8 * n bytes, the window holds the rest.  Every
 * call must fail or succeed cleanly, and leave no descriptor open.
 *
 * Each message is a byte h, then 1 + h / 4 bytes of data sent with
 * h % 4 copies of the window's descriptor.
 */

#include <sys/mman.h>
#include <sys/socket.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>

/* The connection's insides are file-local: include them. */
#include "../../ivshm_host.c"

#define WINDOW		65536

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static int	 winfd = -1;

static int
count_fds(void)
{
	DIR	*d;
	int	 n = 0;

	if ((d = opendir("/proc/self/fd")) == NULL)
		abort();
	while (readdir(d) != NULL)
		n++;
	closedir(d);
	return n;
}

static void
feed(int s, const uint8_t *data, size_t len)
{
	union {
		struct cmsghdr	 hdr;
		unsigned char	 buf[CMSG_SPACE(3 * sizeof(int))];
	}		 cm;
	struct msghdr	 mh;
	struct iovec	 iov;
	struct cmsghdr	*c;
	size_t		 off = 0, k;
	int		 fds[3] = { winfd, winfd, winfd }, nfds;

	while (off < len) {
		k = 1 + data[off] / 4;
		nfds = data[off++] % 4;
		if (k > len - off)
			k = len - off;
		if (k == 0)
			break;
		memset(&mh, 0, sizeof(mh));
		iov.iov_base = (void *)(uintptr_t)(data + off);
		iov.iov_len = k;
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		if (nfds > 0) {
			memset(&cm, 0, sizeof(cm));
			mh.msg_control = cm.buf;
			mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
			c = CMSG_FIRSTHDR(&mh);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
			memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
		}
		if (sendmsg(s, &mh, MSG_DONTWAIT) != (ssize_t)k)
			break;
		off += k;
	}
}

static void
call(struct ivshm_conn *c, int op)
{
	struct ivshm_port	*p;
	struct ivshm_region	*r;
	struct ivshm_status	 st;
	struct ivshm_event	 ev;
	uint64_t		 size, flags;
	int			 fd, i, n;

	switch (op) {
	case 0:
		for (i = 0; i < 2; i++)
			if ((p = ivshm_open(c, "ril")) != NULL) {
				if (p->begin >= p->end || p->shm == -1)
					abort();
				ivshm_port_close(p);
			}
		break;
	case 1:
		if (ivshm_get_window(c, &fd, &size, &flags) == 0)
			close(fd);
		break;
	case 2:
		if ((n = ivshm_list(c, &r)) >= 0) {
			for (i = 0; i < n; i++)
				if (memchr(r[i].name, '\0',
				    sizeof(r[i].name)) == NULL ||
				    r[i].begin > r[i].end)
					abort();
			free(r);
		}
		break;
	case 3:
		(void)ivshm_get_status(c, &st);
		break;
	default:
		if (ivshm_watch(c, &ev) == 0)
			for (i = 0; i < 64 && ivshm_next_event(c, &ev, 0) == 1;
			    i++)
				;
		break;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct ivshm_conn	*c;
	size_t			 split;
	int			 sp[2], before;

	if (len < 2)
		return 0;
	split = (size_t)data[1] * 8;
	if (split > len - 2)
		split = len - 2;
	if (winfd == -1 && ((winfd = memfd_create("fuzz", MFD_CLOEXEC)) ==
	    -1 || ftruncate(winfd, WINDOW) == -1))
		abort();
	/* The window holds the input too: the header the library reads. */
	if (ftruncate(winfd, 0) == -1 || ftruncate(winfd, WINDOW) == -1 ||
	    pwrite(winfd, data + 2 + split, len - 2 - split < WINDOW ?
	    len - 2 - split : WINDOW, 0) == -1)
		abort();
	before = count_fds();
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0, sp) == -1)
		abort();
	feed(sp[1], data + 2, split);
	shutdown(sp[1], SHUT_WR);
	if ((c = calloc(1, sizeof(*c))) == NULL)
		abort();
	c->fd = sp[0];
	c->timeout = 0;		/* all of it is there, or never comes */
	memcpy(c->path, "fuzz", 5);
	if (conn_greeting(c) == 0)
		call(c, data[0] % 5);
	ivshm_close(c);
	close(sp[1]);
	if (count_fds() != before)
		abort();	/* a descriptor leaked */
	return 0;
}
