/*
 * proto.c: the two wire protocols, each connection's state, and the
 * listening sockets.  The serving process's loop (server.c) polls what
 * proto_pollset() lists and hands each event to proto_dispatch().
 *
 * The QEMU side is written for N peers.  In host mode the server owns
 * peer 0, whose eventfds are the regions' guest-to-host ones, and admits
 * at most one VM, always peer 1, whose eventfds are the regions'
 * host-to-guest ones.  In peer mode every client is a peer with an ID
 * and eventfds of its own, and the server owns none.
 */

#include <sys/types.h>
#include <sys/ioctl.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#ifdef __linux__
#include <linux/sockios.h>
#endif

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#include <vis.h>

#include "ivserver.h"
#include "log.h"

#define VM_PEER_ID		1
#define ACCEPT_BACKOFF		100	/* ms without accept after EMFILE */
#define ACCEPT_BATCH		64	/* clients accepted in one round */
#define REFUSED_ID		(-1)	/* fatal to QEMU during its setup */
#define UNIX_LISTENING		0x10000	/* __SO_ACCEPTCON in /proc/net/unix */
#define HOLD_TICK		10	/* ms between looks at held replies */
#define DRAIN_TICK		250	/* and at drains: a close wakes us */
#define UID_INFLIGHT_MAX	96	/* unread fds one uid's clients hold */
#define LOG_PER_CONN		4	/* lines one connection may cause */
#define LOG_PER_SECOND		100	/* lines all of them may cause */

/*
 * What a connection may make the server log: a few lines, and within
 * the rate all connections share; what is left out is counted.
 */
struct logquota {
	unsigned int		 left;
	unsigned int		 dropped;
};

struct peer {
	TAILQ_ENTRY(peer)	 entry;
	int			 fd;	/* -1: the server's own peer */
	unsigned int		 id;
	const int		*vec;	/* eventfds, one per vector */
	struct vecset		*set;	/* vec, shared with the news of it */
	unsigned int		 nvec;
	struct peerq		 q;	/* what it is yet to be told */
	int			 joined; /* has an ID and vectors */
	int			 closing; /* close once q drains */
	int			 dead;
	int			 held;	/* the parent holds its connection */
	pid_t			 pid;
	struct logquota		 quota;
};

enum cstate {
	C_LEN,		/* reading the u16 name length */
	C_NAME,		/* reading the name */
	C_SEND,		/* sending out[] and fds */
	C_DRAIN,	/* closed to us, its replies not yet read */
	C_WATCH		/* receiving events, sending nothing */
};

/* A host client. */
struct conn {
	TAILQ_ENTRY(conn)	 entry;
	int			 fd;
	enum cstate		 state;
	unsigned char		 in[2 + REGION_NAME_MAX];
	size_t			 inlen, want;
	unsigned char		 out[sizeof(struct ivshm_status)];
	size_t			 outlen, outoff;
	int			 fds[3];
	int			 nfds;	/* to go with the next byte */
	int			 held;	/* the reply waits for a tick */
	unsigned int		 unread; /* fds sent, maybe not received */
	int64_t			 deadline;
	int			 dead;
	int			 gone;	/* the client closed its end */
	pid_t			 pid;
	uid_t			 uid;
	struct logquota		 quota;
};

static TAILQ_HEAD(, peer)	 peers = TAILQ_HEAD_INITIALIZER(peers);
static TAILQ_HEAD(, conn)	 conns = TAILQ_HEAD_INITIALIZER(conns);
static TAILQ_HEAD(, conn)	 drains = TAILQ_HEAD_INITIALIZER(drains);
static struct peer		 self;	/* peer 0 */
static struct vecset		 selfset, vmset;
static int			*g2h, *h2g;
static unsigned int		 nconns, nvms;
static unsigned char		 idmap[(IVSHM_PEER_MAX + 1) / 8];
static unsigned int		 nextid;
static int64_t			 accept_resume;
static struct server		*srv;
static unsigned int		 inflight, inflight_max;
static int64_t			 logsecond;
static unsigned int		 loglines;
static unsigned long		 logdropped;
static unsigned int		 nwatchers;
static struct ivshm_event	 vmstate;	/* the last attach or detach */

static void	conn_vm_event(uint32_t, const struct peer *);

static void
peer_cred(int fd, pid_t *pid, uid_t *uid, gid_t *gid)
{
	struct ucred	 uc;
	socklen_t	 len = sizeof(uc);

	*pid = -1;
	*uid = (uid_t)-1;
	*gid = (gid_t)-1;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) == 0) {
		*pid = uc.pid;
		*uid = uc.uid;
		*gid = uc.gid;
	}
}

/*
 * Accept one connection, non-blocking.  Out of descriptors, stop
 * accepting for a while rather than spin on a listener that stays
 * readable; a closing connection ends the pause early.
 */
static int
listener_accept(int lfd, const char *what)
{
	int	 s;

	if ((s = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) !=
	    -1)
		return s;
	if (errno == EMFILE || errno == ENFILE) {
		log_warnx("%s accept: out of file descriptors", what);
		accept_resume = now_ms() + ACCEPT_BACKOFF;
	} else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
		log_warn("%s accept", what);
	return -1;
}

/* With no allow list, the socket's file mode is the only gate. */
static int
allowed(uid_t uid, gid_t gid)
{
	size_t	 i;

	if (srv->nallow_uid == 0 && srv->nallow_gid == 0)
		return 1;
	for (i = 0; i < srv->nallow_uid; i++)
		if (srv->allow_uid[i] == uid)
			return 1;
	for (i = 0; i < srv->nallow_gid; i++)
		if (srv->allow_gid[i] == gid)
			return 1;
	return 0;
}

static void	qlog(struct logquota *, int, const char *, ...)
		    __attribute__((__format__(__printf__, 3, 4)));

static void
quota_init(struct logquota *q)
{
	q->left = LOG_PER_CONN;
	q->dropped = 0;
}

/*
 * Whether one more line about clients and peers may be logged in this
 * second; one line then says how many the last second left out.
 */
static int
lograte_ok(void)
{
	int64_t	 sec = now_ms() / 1000;

	if (sec != logsecond) {
		if (logdropped > 0)
			log_info("%lu more lines about clients and peers "
			    "suppressed", logdropped);
		logsecond = sec;
		loglines = 0;
		logdropped = 0;
	}
	if (loglines >= LOG_PER_SECOND) {
		logdropped++;
		return 0;
	}
	loglines++;
	return 1;
}

/* A line a connection caused: within its quota and the shared rate. */
static void
qlog(struct logquota *q, int pri, const char *fmt, ...)
{
	va_list	 ap;

	if (q->left == 0) {
		q->dropped++;
		return;
	}
	if (!lograte_ok())
		return;
	q->left--;
	va_start(ap, fmt);
	vlog(pri, fmt, ap);
	va_end(ap);
}

/* When it ends: how many of its lines were left out. */
static void
quota_end(struct logquota *q, const char *what, long who)
{
	if (q->dropped > 0 && lograte_ok())
		log_info("%s %ld: %u more lines suppressed", what, who,
		    q->dropped);
}

/* The serving user's fds in flight: the system's limit, not a peer's. */
static void
log_toomanyrefs(void)
{
	static int64_t	 last;
	int64_t		 now = now_ms();

	if (last == 0 || now - last >= 10000) {
		log_warnx("descriptors in flight: the limit of the serving "
		    "user is reached; sends wait until clients read theirs");
		last = now;
	}
}

/*
 * QEMU side.
 */

/* A peer that has just closed is the usual case: its EOF comes next. */
static void
peer_send_failed(struct peer *p)
{
	if (errno == EPIPE || errno == ECONNRESET)
		log_debug("peer %u: gone while being told", p->id);
	else if (errno == ENOBUFS)
		qlog(&p->quota, LOG_ERR, "peer %u: too many messages waiting; "
		    "disconnecting", p->id);
	else
		qlog(&p->quota, LOG_ERR, "peer %u: send: %s", p->id,
		    strerror(errno));
	p->dead = 1;
}

/*
 * Queue one message to a peer, its fd held open by set (NULL: an fd as
 * old as the server); peer_flush sends what is queued.
 */
static void
peer_send(struct peer *p, int64_t val, int fd, struct vecset *set, int flags)
{
	if (p->fd == -1 || p->dead)
		return;
	if (pq_put(&p->q, val, fd, set, flags) == -1)
		peer_send_failed(p);
}

static void	peer_admitted(struct peer *);

static void
peer_flush(struct peer *p)
{
	if (p->fd == -1 || p->dead)
		return;
	if (pq_flush(&p->q) == -1)
		peer_send_failed(p);
	else if (p->closing && p->q.len == 0)
		p->dead = 1;
	peer_admitted(p);
}

static void
peer_free(struct peer *p)
{
	quota_end(&p->quota, "peer", p->id);
	if (p->fd != -1) {
		pq_free(&p->q);
		close(p->fd);
	}
	vecset_gone(p->set);
	free(p);
}

/*
 * Tell every other peer that p is gone, then forget it.  A peer that
 * is behind (see pq_forget) hears nothing of p if it has not begun to
 * take p's join.
 */
static void
peer_leave(struct peer *p)
{
	struct peer	*q;

	TAILQ_REMOVE(&peers, p, entry);
	if (p->joined) {
		nvms--;
		if (srv->peermode)
			idmap[p->id / 8] &= ~(1U << (p->id % 8));
		qlog(&p->quota, LOG_INFO, "peer %u (pid %ld) left", p->id,
		    (long)p->pid);
		if (p->held)
			server_drop(p->id);
		TAILQ_FOREACH(q, &peers, entry) {
			if (q->fd == -1 || q->dead || pq_forget(&q->q, p->set))
				continue;
			peer_send(q, p->id, -1, p->set, PQ_LEAVE);
			peer_flush(q);
		}
		conn_vm_event(IVSHM_EVENT_DETACH, p);
	}
	peer_free(p);
}

/*
 * The handshake of ivshmem protocol 0.  The shm must be the third
 * message: QEMU crashes on its own vectors before it, and it blocks in
 * device realize until it has the shm, so nothing may stall or close
 * the connection before then.
 */
static void
peer_join(struct peer *p)
{
	struct peer	*q;
	unsigned int	 v;

	peer_send(p, IVSHM_CLIENT_VERSION, -1, NULL, PQ_HS);
	peer_send(p, p->id, -1, NULL, PQ_HS);
	peer_send(p, -1, srv->layout->shmfd, NULL, PQ_HS);
	TAILQ_FOREACH(q, &peers, entry) {
		if (q == p || !q->joined)
			continue;
		for (v = 0; v < q->nvec; v++)
			peer_send(p, q->id, q->vec[v], q->set, PQ_HS);
	}
	for (v = 0; v < p->nvec; v++)
		peer_send(p, p->id, p->vec[v], p->set, PQ_HS);
	peer_flush(p);
	/* The others learn of it last: the newcomer's setup waits on us. */
	TAILQ_FOREACH(q, &peers, entry) {
		if (q == p || !q->joined)
			continue;
		for (v = 0; v < p->nvec; v++)
			peer_send(q, p->id, p->vec[v], p->set, 0);
		peer_flush(q);
	}
	peer_admitted(p);
}

/*
 * Its handshake is out whole: from now on the parent holds the
 * connection too, so that it outlives this process.  Not before: a
 * QEMU that loses its server in mid-handshake cannot be helped.
 */
static void
peer_admitted(struct peer *p)
{
	if (p->held || !p->joined || p->closing || p->dead || p->fd == -1 ||
	    p->q.len != 0)
		return;
	p->held = 1;
	/* Host mode's are the parent's own already. */
	if (srv->peermode)
		server_hold(p->fd, p->id, p->set->fds, p->nvec);
	else
		server_hold(p->fd, p->id, NULL, 0);
}

/*
 * Whether p's whole handshake can be served now: its own fds, and the
 * fds in flight of its handshake, within the budgets.  Nothing may be
 * sent before this holds: QEMU spins on a handshake cut short.
 */
static const char *
peer_fits(const struct peer *p, unsigned int nvec)
{
	struct peer	*q;
	unsigned int	 hs = 1 + nvec;

	TAILQ_FOREACH(q, &peers, entry)
		if (q != p && q->joined)
			hs += q->nvec;
	return pq_admit(hs, srv->peermode ? nvec : 0);
}

/*
 * A VM that arrives while another is attached gets an ID QEMU rejects
 * during setup, so it exits with an error instead of waiting forever.
 */
static void
peer_refuse(struct peer *p, const char *why)
{
	qlog(&p->quota, LOG_ERR, "%s (pid %ld) refused: %s",
	    srv->peermode ? "peer" : "VM", (long)p->pid, why);
	p->closing = 1;
	peer_send(p, IVSHM_CLIENT_VERSION, -1, NULL, 0);
	peer_send(p, REFUSED_ID, -1, NULL, 0);
	peer_flush(p);
}

/*
 * Peer mode: the next free ID after the last one given, wrapping at
 * IVSHM_PEER_MAX, so that a freed ID is not reused at once.
 */
static int
peer_newid(unsigned int *id)
{
	unsigned int	 i, c;

	for (i = 0; i <= IVSHM_PEER_MAX; i++) {
		c = (nextid + i) & IVSHM_PEER_MAX;
		if ((idmap[c / 8] & (1U << (c % 8))) == 0) {
			idmap[c / 8] |= 1U << (c % 8);
			nextid = (c + 1) & IVSHM_PEER_MAX;
			*id = c;
			return 0;
		}
	}
	return -1;
}

/* Peer mode: an ID and eventfds of its own, or a refusal. */
static int
peer_vectors(struct peer *p)
{
	const char	*why;

	if (nvms >= srv->maxclients) {
		peer_refuse(p, "the limit of peers is reached (-c raises it)");
		return -1;
	}
	if ((why = peer_fits(p, srv->nvectors)) != NULL) {
		peer_refuse(p, why);
		return -1;
	}
	if (peer_newid(&p->id) == -1) {
		peer_refuse(p, "no free peer ID");
		return -1;
	}
	if ((p->set = vecset_new(p->id, srv->nvectors)) == NULL) {
		log_warn("peer %u: eventfds", p->id);
		idmap[p->id / 8] &= ~(1U << (p->id % 8));
		peer_refuse(p, "out of resources");
		return -1;
	}
	p->nvec = p->set->nvec;
	p->vec = p->set->fds;
	return 0;
}

static void
peer_accept(void)
{
	struct peer	*p;
	char		 buf[128];
	const char	*why;
	uid_t		 uid;
	gid_t		 gid;
	int		 s;

	if ((s = listener_accept(srv->qemu.fd, "VM")) == -1)
		return;
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		log_warn("VM accept");
		close(s);
		return;
	}
	p->fd = s;
	quota_init(&p->quota);
	pq_init(&p->q, s);
	peer_cred(s, &p->pid, &uid, &gid);
	TAILQ_INSERT_TAIL(&peers, p, entry);
	if (srv->launched) {
		if (p->pid != srv->qemu_pid || p->pid <= 0) {
			peer_refuse(p, "not the QEMU ivserver launched (with -Q "
			    "no other VM is admitted)");
			return;
		}
	} else if (!allowed(uid, gid)) {
		snprintf(buf, sizeof(buf), "uid %ld gid %ld not in the allow "
		    "list (-a %ld or -a :%ld admits it)", (long)uid, (long)gid,
		    (long)uid, (long)gid);
		peer_refuse(p, buf);
		return;
	}
	if (srv->peermode) {
		if (peer_vectors(p) == -1)
			return;
	} else {
		if (nvms >= 1) {
			peer_refuse(p, "a VM is already attached (host mode "
			    "serves one; -P serves several as peers)");
			return;
		}
		if ((why = peer_fits(p, vmset.nvec)) != NULL) {
			peer_refuse(p, why);
			return;
		}
		p->id = VM_PEER_ID;
		p->set = &vmset;
		p->vec = h2g;
		p->nvec = srv->layout->nregions;
	}
	nvms++;
	p->joined = 1;
	qlog(&p->quota, LOG_INFO, "%s (pid %ld, uid %ld) attached as peer %u, "
	    "%u vectors (a device with fewer vectors= drops the rest)",
	    srv->peermode ? "peer" : "VM", (long)p->pid, (long)uid, p->id,
	    p->nvec);
	peer_join(p);
	conn_vm_event(IVSHM_EVENT_ATTACH, p);
}

/* QEMU never writes: a readable VM socket is its end or a stranger. */
static void
peer_input(struct peer *p)
{
	char	 buf[64];
	ssize_t	 n;

	n = read(p->fd, buf, sizeof(buf));
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n > 0)
		qlog(&p->quota, LOG_ERR, "peer %u sent data; disconnecting",
		    p->id);
	p->dead = 1;
}

/*
 * Host-client side.
 */

static void	conn_output(struct conn *);

/*
 * Whether the client has taken every fd sent to it: the kernel charges
 * the serving user for each one passed and not yet received, and past
 * its RLIMIT_NOFILE fails every send with ETOOMANYREFS, for everyone.
 */
static void
conn_refresh(struct conn *c)
{
#ifdef SIOCOUTQ
	int	 q;

	if (c->unread == 0 || ioctl(c->fd, SIOCOUTQ, &q) == -1 || q != 0)
		return;
#endif
	inflight -= c->unread;
	c->unread = 0;
}

/* The counts are stale once a client reads: at most once a tick. */
static void
conns_refresh(void)
{
	static int64_t	 last;
	struct conn	*c;
	int64_t		 now = now_ms();

	if (now - last < HOLD_TICK)
		return;
	last = now;
	TAILQ_FOREACH(c, &conns, entry)
		conn_refresh(c);
	TAILQ_FOREACH(c, &drains, entry)
		conn_refresh(c);
}

static unsigned int
uid_inflight(uid_t uid)
{
	struct conn	*c;
	unsigned int	 n = 0;

	TAILQ_FOREACH(c, &conns, entry)
		if (c->uid == uid)
			n += c->unread;
	TAILQ_FOREACH(c, &drains, entry)
		if (c->uid == uid)
			n += c->unread;
	return n;
}

/*
 * Whether a reply with nfds fds may go to c now: one unread reply per
 * connection, UID_INFLIGHT_MAX unread fds for the clients of one uid,
 * inflight_max in all, so that the rest of the serving user's limit
 * stays free for the VM's handshake.
 */
static int
conn_may_pass(struct conn *c, unsigned int nfds)
{
	conn_refresh(c);
	if (c->unread > 0)
		return 0;
	if (inflight + nfds <= inflight_max &&
	    inflight + nfds <= UID_INFLIGHT_MAX)
		return 1;
	conns_refresh();
	if (inflight + nfds > inflight_max)
		return 0;
	return uid_inflight(c->uid) + nfds <= UID_INFLIGHT_MAX;
}

static void
conn_free(struct conn *c)
{
	quota_end(&c->quota, "client pid", (long)c->pid);
	inflight -= c->unread;
	close(c->fd);
	free(c);
}

/*
 * A connection that ends: gone at once, unless the client still holds
 * fds it has not read.  Those stay charged to the serving user until it
 * reads or closes its end, so the connection waits for that, counted
 * against the limits, but no longer against -c.
 */
static void
conn_close(struct conn *c)
{
	TAILQ_REMOVE(&conns, c, entry);
	nconns--;
	if (c->state == C_WATCH)
		nwatchers--;
	accept_resume = 0;	/* an fd is free again */
	conn_refresh(c);
	if (c->unread == 0) {
		conn_free(c);
		return;
	}
	c->state = C_DRAIN;
	c->held = 0;
	c->dead = 0;
	TAILQ_INSERT_TAIL(&drains, c, entry);
}

static void
conn_wait_request(struct conn *c)
{
	c->state = C_LEN;
	c->inlen = 0;
	c->want = 2;
	c->deadline = now_ms() + srv->timeout;
}

/* Returns 1 if a client was accepted (or refused), 0 if none waits. */
static int
conn_accept(void)
{
	struct conn	*c;
	gid_t		 gid;
	int		 s;
	uint32_t	 v = htole32(IVSHM_CLIENT_VERSION);

	if ((s = listener_accept(srv->client.fd, "client")) == -1)
		return 0;
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		log_warn("client accept");
		close(s);
		return 0;
	}
	c->fd = s;
	quota_init(&c->quota);
	peer_cred(s, &c->pid, &c->uid, &gid);
	if (!allowed(c->uid, gid)) {
		qlog(&c->quota, LOG_ERR, "client pid %ld uid %ld gid %ld "
		    "refused: not in the allow list (-a %ld or -a :%ld admits "
		    "it)", (long)c->pid, (long)c->uid, (long)gid,
		    (long)c->uid, (long)gid);
		close(s);
		free(c);
		return 1;
	}
	log_debug("client pid %ld uid %ld connected", (long)c->pid,
	    (long)c->uid);
	TAILQ_INSERT_TAIL(&conns, c, entry);
	nconns++;
	conn_wait_request(c);
	memcpy(c->out, &v, sizeof(v));
	c->outlen = sizeof(v);
	c->outoff = 0;
	c->state = C_SEND;
	conn_output(c);
	return 1;
}

/* The reply to one complete request. */
static void
conn_request(struct conn *c)
{
	struct region	*r;
	const char	*name = (const char *)c->in + 2;
	size_t		 len = c->inlen - 2;
	uint64_t	 b = IVSHM_NO_REGION, e = IVSHM_NO_REGION;
	char		 vis[4 * REGION_NAME_MAX + 1];

	c->nfds = 0;
	if ((r = layout_find(srv->layout, name, len)) != NULL) {
		b = r->begin;
		e = r->end;
		c->fds[0] = r->g2h;
		c->fds[1] = r->h2g;
		c->fds[2] = srv->layout->shmfd;
		c->nfds = 3;
		log_debug("client pid %ld: region %s", (long)c->pid, r->name);
	} else {
		strvisx(vis, name, len, VIS_SAFE | VIS_OCTAL);
		qlog(&c->quota, LOG_INFO, "client pid %ld: no region \"%s\"",
		    (long)c->pid, vis);
	}
	b = htole64(b);
	e = htole64(e);
	memcpy(c->out, &b, sizeof(b));
	memcpy(c->out + 8, &e, sizeof(e));
	c->outlen = 16;
	c->outoff = 0;
	c->state = C_SEND;
}

static uint64_t
conn_realtime(void)
{
	struct timespec	 ts;

	if (clock_gettime(CLOCK_REALTIME, &ts) == -1)
		return 0;
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The reply goes out whole or the watcher is too slow: never queued. */
static void
conn_event(struct conn *c, const struct ivshm_event *ev, uint32_t flags)
{
	struct ivshm_event	 le;
	ssize_t			 n;

	memset(&le, 0, sizeof(le));
	le.type = htole32(ev->type);
	le.flags = htole32(ev->flags | flags);
	le.peer = htole32(ev->peer);
	le.pid = htole64(ev->pid);
	le.time = htole64(ev->time);
	le.generation = htole64(ev->generation);
	do {
		n = send(c->fd, &le, sizeof(le), MSG_NOSIGNAL | MSG_DONTWAIT);
	} while (n == -1 && errno == EINTR);
	if (n == sizeof(le))
		return;
	if (n >= 0 || errno == EAGAIN || errno == EWOULDBLOCK)
		qlog(&c->quota, LOG_ERR, "watcher pid %ld does not read its "
		    "events; disconnecting", (long)c->pid);
	c->dead = 1;
}

/* A VM, or in peer mode a peer, came or went: tell the watchers. */
static void
conn_vm_event(uint32_t type, const struct peer *p)
{
	struct conn	*c;

	vmstate.type = type;
	vmstate.flags = 0;
	vmstate.peer = p->id;
	vmstate.pid = p->pid > 0 ? (uint64_t)p->pid : 0;
	vmstate.time = conn_realtime();
	vmstate.generation = layout_generation(srv->layout, 1);
	TAILQ_FOREACH(c, &conns, entry)
		if (c->state == C_WATCH && !c->dead)
			conn_event(c, &vmstate, 0);
}

/* A watcher only ever sends its end. */
static void
conn_watch_input(struct conn *c)
{
	char	 buf[64];
	ssize_t	 n;

	n = read(c->fd, buf, sizeof(buf));
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n > 0)
		qlog(&c->quota, LOG_ERR, "watcher pid %ld sent data; "
		    "disconnecting", (long)c->pid);
	c->dead = 1;
}

static void
conn_reply(struct conn *c, const void *buf, size_t len)
{
	memcpy(c->out, buf, len);
	c->outlen = len;
	c->outoff = 0;
	c->state = C_SEND;
	conn_output(c);
}

static void
conn_status(struct conn *c)
{
	struct ivshm_status	 st;
	int			 vm = vmstate.type == IVSHM_EVENT_ATTACH;

	memset(&st, 0, sizeof(st));
	st.flags = htole32(vm ? IVSHM_STATUS_VM : 0);
	st.vm_peer = htole32(vm ? vmstate.peer : UINT32_MAX);
	st.vm_pid = htole64(vm ? vmstate.pid : 0);
	st.vm_since = htole64(vmstate.time);
	st.clients = htole32(nconns);
	st.server_pid = htole32((uint32_t)getpid());
	st.generation = htole64(layout_generation(srv->layout, 0));
	st.regions = htole32(srv->layout->nregions);
	st.watchers = htole32(nwatchers);
	strlcpy(st.version, IVSERVER_VERSION, sizeof(st.version));
	log_debug("client pid %ld: status", (long)c->pid);
	conn_reply(c, &st, sizeof(st));
}

/*
 * Requests beyond version 0, in the lengths it calls invalid: 1 if len
 * is one (answered), 0 if not.
 */
static int
conn_extended(struct conn *c, unsigned int len)
{
	uint64_t	 w[2];
	int		 vm;

	c->nfds = 0;
	switch (len) {
	case IVSHM_REQ_WINDOW:
		w[0] = htole64(srv->layout->size);
		w[1] = htole64(srv->layout->nregions > 0 ?
		    IVSHM_WINDOW_HEADER : 0);
		c->fds[0] = srv->layout->shmfd;
		c->nfds = 1;
		log_debug("client pid %ld: window", (long)c->pid);
		conn_reply(c, w, sizeof(w));
		return 1;
	case IVSHM_REQ_STATUS:
		conn_status(c);
		return 1;
	case IVSHM_REQ_WATCH:
		/* The first event is the state as it is, or none yet. */
		vm = vmstate.type == IVSHM_EVENT_ATTACH;
		if (vmstate.type == 0) {
			vmstate.type = IVSHM_EVENT_DETACH;
			vmstate.peer = UINT32_MAX;
			vmstate.generation = layout_generation(srv->layout, 0);
		}
		c->state = C_WATCH;
		nwatchers++;
		log_debug("client pid %ld: watching (VM %s)", (long)c->pid,
		    vm ? "attached" : "not attached");
		conn_event(c, &vmstate, IVSHM_EVENT_INITIAL);
		return 1;
	default:
		return 0;
	}
}

/*
 * Read what the client sent: the length, then the name, in as many
 * reads as the data needs and no more, and answer at once, since the
 * socket almost always has room for 16 bytes.
 */
static void
conn_input(struct conn *c)
{
	ssize_t		 n;
	unsigned int	 len;

	if (c->state == C_WATCH) {
		conn_watch_input(c);
		return;
	}
	for (;;) {
		n = read(c->fd, c->in + c->inlen, c->want - c->inlen);
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			if (n == -1 && errno != ECONNRESET)
				qlog(&c->quota, LOG_ERR, "client pid %ld: "
				    "read: %s", (long)c->pid, strerror(errno));
			else if (c->inlen != 0 || c->state != C_LEN)
				qlog(&c->quota, LOG_INFO, "client pid %ld: "
				    "closed in mid-request", (long)c->pid);
			c->dead = 1;
			return;
		}
		if ((c->inlen += n) < c->want)
			return;
		if (c->state == C_NAME)
			break;
		len = c->in[0] | (unsigned int)c->in[1] << 8;
		if (len > REGION_NAME_MAX && conn_extended(c, len))
			return;
		if (len == 0 || len > REGION_NAME_MAX) {
			qlog(&c->quota, LOG_ERR, "client pid %ld: bad name "
			    "length %u", (long)c->pid, len);
			c->dead = 1;
			return;
		}
		c->state = C_NAME;
		c->want = 2 + len;
	}
	conn_request(c);
	conn_output(c);
}

static void
conn_output(struct conn *c)
{
	ssize_t	 n;

	if (c->nfds > 0 && !conn_may_pass(c, c->nfds)) {
		c->held = 1;
		return;
	}
	c->held = 0;
	n = send_fds(c->fd, c->out + c->outoff, c->outlen - c->outoff,
	    c->fds, c->nfds);
	if (n == -1 && errno == ETOOMANYREFS) {
		log_toomanyrefs();
		c->held = 1;
		return;
	}
	if (n == -1) {
		if (errno != EPIPE && errno != ECONNRESET)
			qlog(&c->quota, LOG_ERR, "client pid %ld: send: %s",
			    (long)c->pid, strerror(errno));
		c->dead = 1;
		return;
	}
	if (n == 0)
		return;
	c->unread += c->nfds;	/* the fds went with the first byte */
	inflight += c->nfds;
	c->nfds = 0;
	if ((c->outoff += n) == c->outlen)
		conn_wait_request(c);
}

/*
 * What the serving process's loop polls, and what it does with events.
 */

/*
 * Add this round's descriptors to ps; returns the next deadline (ms on
 * the monotonic clock), or -1 for none.
 */
int64_t
proto_pollset(struct pollset *ps)
{
	struct peer	*p;
	struct conn	*c;
	int64_t		 now = now_ms(), next = -1;
	int		 tick = pq_nwaiting > 0;
	short		 ev;

	if (accept_resume > now)
		next = accept_resume;
	else {
		accept_resume = 0;
		pollset_add(ps, srv->qemu.fd, POLLIN, POLL_QEMU, NULL);
		if (srv->client.fd != -1 && nconns < srv->maxclients)
			pollset_add(ps, srv->client.fd, POLLIN, POLL_CLIENT,
			    NULL);
	}
	/* What waits for a tick would find its socket ready at once. */
	TAILQ_FOREACH(p, &peers, entry)
		if (p->fd != -1)
			pollset_add(ps, p->fd, POLLIN |
			    (p->q.len == 0 || p->q.waiting ? 0 : POLLOUT),
			    POLL_PEER, p);
	TAILQ_FOREACH(c, &conns, entry) {
		if (c->state != C_SEND)
			ev = POLLIN;
		else
			ev = c->held ? 0 : POLLOUT;
		tick |= c->held;
		pollset_add(ps, c->fd, ev, POLL_CONN, c);
		if (c->state != C_WATCH && (next == -1 || c->deadline < next))
			next = c->deadline;
	}
	/* Only its end is of interest: the fds it holds go with it. */
	TAILQ_FOREACH(c, &drains, entry)
		pollset_add(ps, c->fd, 0, POLL_CONN, c);
	if (tick && (next == -1 || now + HOLD_TICK < next))
		next = now + HOLD_TICK;
	/*
	 * A drain's client closing shows as POLLHUP; only one that reads
	 * and stays needs a look, which can wait longer.
	 */
	if (!TAILQ_EMPTY(&drains) && (next == -1 || now + DRAIN_TICK < next))
		next = now + DRAIN_TICK;
	return next;
}

void
proto_dispatch(enum pollkind kind, void *ptr, short ev)
{
	struct peer	*p;
	struct conn	*c;
	int		 k;

	switch (kind) {
	case POLL_QEMU:
		peer_accept();
		break;
	case POLL_CLIENT:
		/* A burst is taken in one round, not one per poll. */
		for (k = 0; k < ACCEPT_BATCH && nconns < srv->maxclients &&
		    accept_resume == 0 && conn_accept(); k++)
			;
		break;
	case POLL_PEER:
		p = ptr;
		if (ev & (POLLIN | POLLHUP | POLLERR))
			peer_input(p);
		if (!p->dead && (ev & POLLOUT))
			peer_flush(p);
		break;
	case POLL_CONN:
		c = ptr;
		if (c->state == C_DRAIN)
			conn_refresh(c);
		else if (ev & POLLNVAL)
			c->dead = 1;
		else if (c->state == C_SEND)
			conn_output(c);
		else
			conn_input(c);
		break;
	default:
		break;
	}
}

/*
 * Drop what died this round and clients past their deadline; retry
 * what waits for a tick.
 */
void
proto_reap(void)
{
	struct peer	*p, *tp;
	struct conn	*c, *tc;
	int64_t		 now = now_ms();

	TAILQ_FOREACH_SAFE(c, &conns, entry, tc) {
		if (c->held && !c->dead)
			conn_output(c);
		if (!c->dead && c->state != C_WATCH && c->deadline <= now) {
			qlog(&c->quota, LOG_INFO, "client pid %ld: timed out",
			    (long)c->pid);
			c->dead = 1;
		}
		if (c->dead)
			conn_close(c);
	}
	TAILQ_FOREACH_SAFE(c, &drains, entry, tc) {
		conn_refresh(c);
		if (c->unread == 0) {
			TAILQ_REMOVE(&drains, c, entry);
			conn_free(c);
		}
	}
	TAILQ_FOREACH(p, &peers, entry) {
		if (p->fd == -1 || p->dead || p->q.len == 0)
			continue;
		pq_compress(&p->q);
		if (p->q.waiting)
			peer_flush(p);
	}
	/* A leaving peer may make others fail in turn: repeat. */
	for (;;) {
		TAILQ_FOREACH_SAFE(p, &peers, entry, tp)
			if (p->dead)
				break;
		if (p == NULL)
			break;
		peer_leave(p);
	}
}

/*
 * A VM or peer a previous serving process admitted, whose connection
 * (and eventfds, in peer mode, which become ours) the parent held:
 * admitted again with nothing sent, so that it sees no change, and not
 * counted as an arrival.  Its end, later, is a leave like any other.
 */
void
proto_adopt(int fd, unsigned int id, int *vec, unsigned int nvec)
{
	struct peer	*p;
	uid_t		 uid;
	gid_t		 gid;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		fatal("peer %u: adopt", id);
	p->fd = fd;
	p->id = id;
	quota_init(&p->quota);
	pq_init(&p->q, fd);
	peer_cred(fd, &p->pid, &uid, &gid);
	if (srv->peermode) {
		if ((p->set = vecset_adopt(id, vec, nvec)) == NULL)
			fatal("peer %u: adopt", id);
		idmap[id / 8] |= 1U << (id % 8);
		if (id >= nextid)
			nextid = (id + 1) & IVSHM_PEER_MAX;
	} else {
		free(vec);
		p->set = &vmset;
	}
	p->vec = p->set->fds;
	p->nvec = p->set->nvec;
	p->joined = 1;
	p->held = 1;
	nvms++;
	TAILQ_INSERT_TAIL(&peers, p, entry);
	/* What status and a new watcher report: attached, no new generation. */
	vmstate.type = IVSHM_EVENT_ATTACH;
	vmstate.flags = 0;
	vmstate.peer = id;
	vmstate.pid = p->pid > 0 ? (uint64_t)p->pid : 0;
	vmstate.time = conn_realtime();
	vmstate.generation = layout_generation(srv->layout, 0);
	log_info("%s %u (pid %ld) adopted from the previous serving process",
	    srv->peermode ? "peer" : "VM as peer", id, (long)p->pid);
}

/*
 * Host mode: the server's own peer 0, whose vectors are the regions'
 * guest-to-host eventfds, and the VM's, the host-to-guest ones.
 */
void
proto_init(struct server *s)
{
	struct layout	*l = s->layout;
	unsigned int	 i;

	srv = s;
	/* Half the serving user's limit for clients, half for the VMs. */
	inflight_max = s->nofile / 2 > 3 ? s->nofile / 2 : 3;
	/* Peer mode has no clients: its peers may have it all. */
	pq_limits(s->nofile, s->peermode ? s->nofile - s->nofile / 8 :
	    s->nofile / 2 - s->nofile / 8, s->peermode ? s->nvectors :
	    l->nregions);
	if (s->peermode)
		return;
	if ((g2h = calloc(l->nregions, sizeof(int))) == NULL ||
	    (h2g = calloc(l->nregions, sizeof(int))) == NULL)
		fatal("proto_init");
	for (i = 0; i < l->nregions; i++) {
		g2h[i] = l->regions[i].g2h;
		h2g[i] = l->regions[i].h2g;
	}
	vecset_borrow(&selfset, 0, g2h, l->nregions);
	vecset_borrow(&vmset, VM_PEER_ID, h2g, l->nregions);
	self.fd = -1;
	self.id = 0;
	self.set = &selfset;
	self.vec = g2h;
	self.nvec = l->nregions;
	self.joined = 1;
	TAILQ_INSERT_TAIL(&peers, &self, entry);
}

void
proto_fini(void)
{
	struct peer	*p;
	struct conn	*c;

	while ((c = TAILQ_FIRST(&conns)) != NULL)
		conn_close(c);
	while ((c = TAILQ_FIRST(&drains)) != NULL) {
		TAILQ_REMOVE(&drains, c, entry);
		conn_free(c);
	}
	if (!srv->peermode)
		TAILQ_REMOVE(&peers, &self, entry);
	while ((p = TAILQ_FIRST(&peers)) != NULL) {
		TAILQ_REMOVE(&peers, p, entry);
		peer_free(p);
	}
	free(g2h);
	free(h2g);
	g2h = h2g = NULL;
}

/*
 * Listening sockets.
 */

/*
 * Linux lists every socket of the network namespace in /proc/net/unix,
 * with its flags and the path it was bound to: 1 if one listens on
 * path, 0 if none does, -1 if the list cannot be read.
 */
static int
listener_listed(const char *path)
{
	FILE		*f;
	char		 line[PATH_MAX + 128];
	unsigned long	 flags;
	size_t		 len;
	int		 off, rv = 0;

	if ((f = fopen("/proc/net/unix", "re")) == NULL)
		return -1;
	/* Num RefCount Protocol Flags Type St Inode Path */
	while (rv == 0 && fgets(line, sizeof(line), f) != NULL) {
		off = -1;
		if (sscanf(line, "%*s %*s %*s %lx %*s %*s %*s %n", &flags,
		    &off) < 1 || off == -1)
			continue;
		len = strcspn(line + off, "\n");
		if ((flags & UNIX_LISTENING) != 0 && len == strlen(path) &&
		    memcmp(line + off, path, len) == 0)
			rv = 1;
	}
	if (ferror(f))
		rv = -1;
	fclose(f);
	return rv;
}

/*
 * Whether a server answers at the path: 1 yes, 0 no (a stale socket),
 * -1 on an error, reported.  Non-blocking, so that a listener whose
 * backlog is full, which anyone can make, cannot hang the start.
 */
static int
listener_live(const struct sockaddr_un *sun, const char *path)
{
	int	 probe, rv;

	/*
	 * Where the system lists its listeners, ask it first: to a live
	 * server in peer mode a connection, even one closed at once, is a
	 * peer, which gets an ID and whose coming and going every other
	 * peer is told of.  Only a socket it does not list (a stale one,
	 * or one of another network namespace) is connected to.
	 */
	if (listener_listed(path) == 1)
		return 1;

	if ((probe = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1) {
		log_warn("socket");
		return -1;
	}
	if (connect(probe, (const struct sockaddr *)sun, sizeof(*sun)) == 0 ||
	    errno == EAGAIN || errno == EINPROGRESS)
		rv = 1;
	else if (errno == ECONNREFUSED)
		rv = 0;
	else {
		log_warn("%s", path);
		rv = -1;
	}
	close(probe);
	return rv;
}

/*
 * Make the socket file with its final mode and group in one step, with
 * no later chown or chmod by path that a user who can write to the
 * directory could redirect to another file: the mode through the umask,
 * the group as root through the effective gid at bind(2).
 */
static int
listener_bind(int s, const struct sockaddr_un *sun, mode_t mode, gid_t gid)
{
	mode_t	 omask;
	gid_t	 egid = getegid();
	int	 rv, saved;

	if (gid != (gid_t)-1 && geteuid() == 0 && setegid(gid) == -1)
		return -1;
	omask = umask(~mode & 0777);
	rv = bind(s, (const struct sockaddr *)sun, sizeof(*sun));
	saved = errno;
	umask(omask);
	if (gid != (gid_t)-1 && geteuid() == 0 && setegid(egid) == -1)
		fatal("setegid %lu", (unsigned long)egid);
	/* Not root: a chown by path can only reach the user's own files. */
	if (rv == 0 && gid != (gid_t)-1 && geteuid() != 0 &&
	    chown(sun->sun_path, (uid_t)-1, gid) == -1)
		return -1;
	errno = saved;
	return rv;
}

/*
 * Bind path, replacing a socket left by a dead server but never one a
 * live server answers on, and check that what the path now names is
 * the socket made: ours, with the mode and group asked for.
 */
int
listener_open(struct listener *lst, mode_t mode, gid_t gid)
{
	struct sockaddr_un	 sun;
	struct stat		 st;
	int			 s;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlcpy(sun.sun_path, lst->path, sizeof(sun.sun_path)) >=
	    sizeof(sun.sun_path)) {
		log_warnx("%s: socket path too long", lst->path);
		return -1;
	}
	if (lstat(lst->path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			log_warnx("%s: exists and is not a socket", lst->path);
			return -1;
		}
		switch (listener_live(&sun, lst->path)) {
		case 1:
			log_warnx("%s: another server is listening there",
			    lst->path);
			return -1;
		case -1:
			return -1;
		}
		log_info("%s: removing stale socket", lst->path);
		if (unlink(lst->path) == -1 && errno != ENOENT) {
			log_warn("%s", lst->path);
			return -1;
		}
	}
	if ((s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1) {
		log_warn("socket");
		return -1;
	}
	if (listener_bind(s, &sun, mode, gid) == -1) {
		log_warn("%s", lst->path);
		close(s);
		return -1;
	}
	lst->made = 1;
	if (lstat(lst->path, &st) == -1 || !S_ISSOCK(st.st_mode) ||
	    st.st_uid != geteuid() || (st.st_mode & 07777) != mode ||
	    (gid != (gid_t)-1 && st.st_gid != gid)) {
		log_warnx("%s: replaced or changed while it was made", lst->path);
		lst->made = 0;
		close(s);
		return -1;
	}
	lst->dev = st.st_dev;
	lst->ino = st.st_ino;
	if (listen(s, SOMAXCONN) == -1) {
		log_warn("listen %s", lst->path);
		close(s);
		listener_close(lst);
		return -1;
	}
	lst->fd = s;
	return 0;
}

/* Remove our socket file, unless another server has replaced it. */
void
listener_close(struct listener *lst)
{
	struct stat	 st;

	if (lst->fd != -1)
		close(lst->fd);
	lst->fd = -1;
	if (!lst->made)
		return;
	lst->made = 0;
	if (lstat(lst->path, &st) == 0 && (lst->dev == 0 ||
	    (st.st_dev == lst->dev && st.st_ino == lst->ino)))
		(void)unlink(lst->path);
}
