/*
 * peerq.c: what the server has to tell each peer of ivshmem protocol 0,
 * kept in order and sent in batches, and the budgets of the descriptors
 * that news costs.
 *
 * A queued message names its fd through the set of eventfds it belongs
 * to, reference counted: the set stays open while any message refers
 * to it, so nothing is duplicated.  Two things are bounded, both
 * against the serving user's RLIMIT_NOFILE: the fds the server holds
 * (news of a peer that has left keeps its set open; past a budget, or
 * once a peer is behind, that news is taken back) and the fds in flight
 * (passed and not yet received, charged by the kernel to the serving
 * user, which past its limit fails every pass with ETOOMANYREFS): a
 * budget per peer for news, and one for all.
 */

#include <sys/types.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/queue.h>
#include <sys/socket.h>
#ifdef __linux__
#include <linux/sockios.h>
#endif

#include <endian.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ivserver.h"
#include "log.h"

#define PQ_QUEUE_MAX	65536	/* messages waiting for one peer */
#define PQ_BATCH	64	/* messages in one system call */
#define PQ_KEEP		64	/* room for messages kept once sent */
#define PQ_NEWS_MIN	64	/* unread fds of news one peer may hold */
#define PQ_BEHIND_MS	1000	/* a peer whose news waits longer is behind */
#define PQ_SHORT_MS	20	/* or this long, while fds are short */
#define PQ_STALL_MS	1000	/* no newcomer this long after ETOOMANYREFS */
#define PQ_FD_RESERVE	32	/* fds kept for listeners, logs, accepts */
#define PQ_SKB_MIN	256	/* bytes a queued message costs, at least */

/* One 8-byte message and the fd that goes with it, if any. */
struct pqmsg {
	int64_t			 val;
	int			 fd;
	int			 flags;
	struct vecset		*set;	/* holds fd open, or names a leave */
	int64_t			 since;	/* ms, when queued */
};

static TAILQ_HEAD(, peerq)	 queues = TAILQ_HEAD_INITIALIZER(queues);
static unsigned int		 nqueues;
static unsigned int		 nofile;
static unsigned int		 inflight, inflight_max;
static unsigned int		 news_max;	/* per peer */
static unsigned int		 setfds;	/* eventfds the sets hold */
static unsigned int		 zombiefds;	/* of sets whose peer left */
static unsigned int		 zombie_max;
static unsigned int		 gonegen;	/* counts peers gone */
static int64_t			 toomany_at;	/* last ETOOMANYREFS */
unsigned int			 pq_nwaiting;

/*
 * The budgets: nofile is the serving process's RLIMIT_NOFILE, passing
 * how many fds may be in flight to peers in all, nvec the most vectors
 * one peer has.
 */
void
pq_limits(unsigned int lim, unsigned int passing, unsigned int nvec)
{
	nofile = lim;
	inflight_max = passing;
	news_max = 2 * nvec > PQ_NEWS_MIN ? 2 * nvec : PQ_NEWS_MIN;
	zombie_max = lim / 4;
}

/*
 * A peer's eventfds, one per vector.  A set made here owns them; a
 * borrowed one (host mode: the regions' eventfds) is only named.
 */
struct vecset *
vecset_new(unsigned int id, unsigned int nvec)
{
	struct vecset	*s;
	int		*fds;
	unsigned int	 v;

	if ((fds = reallocarray(NULL, nvec, sizeof(int))) == NULL)
		return NULL;
	for (v = 0; v < nvec; v++)
		if ((fds[v] = eventfd(0, EFD_CLOEXEC)) == -1)
			break;
	if (v == nvec && (s = vecset_adopt(id, fds, nvec)) != NULL)
		return s;
	while (v-- > 0)
		close(fds[v]);
	free(fds);
	return NULL;
}

/*
 * A set of eventfds made before: by vecset_new, or by a serving process
 * that died and whose parent held them.  The set owns fds from now on,
 * the array included.
 */
struct vecset *
vecset_adopt(unsigned int id, int *fds, unsigned int nvec)
{
	struct vecset	*s;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->id = id;
	s->nvec = nvec;
	s->refs = 1;
	s->own = fds;
	s->fds = fds;
	setfds += nvec;
	return s;
}

void
vecset_borrow(struct vecset *s, unsigned int id, const int *fds,
    unsigned int nvec)
{
	memset(s, 0, sizeof(*s));
	s->id = id;
	s->fds = fds;
	s->nvec = nvec;
	s->refs = 1;
	s->borrowed = 1;
}

/* Closed with the last reference; freed once no leave names it. */
static void
vecset_release(struct vecset *s, int weak)
{
	unsigned int	 v;

	if (s == NULL || s->borrowed)
		return;
	if (weak)
		s->weak--;
	else if (--s->refs == 0) {
		for (v = 0; v < s->nvec; v++)
			close(s->own[v]);
		setfds -= s->nvec;
		if (s->gone)
			zombiefds -= s->nvec;
		free(s->own);
		s->own = NULL;
		s->fds = NULL;
	}
	if (s->refs == 0 && s->weak == 0)
		free(s);
}

/* The peer of s has left: its fds stay for the news still queued. */
void
vecset_gone(struct vecset *s)
{
	if (s == NULL || s->borrowed)
		return;
	s->gone = 1;
	gonegen++;
	zombiefds += s->nvec;	/* until the last reference goes */
	vecset_release(s, 0);
}

void
pq_init(struct peerq *q, int fd)
{
	memset(q, 0, sizeof(*q));
	q->fd = fd;
	TAILQ_INSERT_TAIL(&queues, q, entry);
	nqueues++;
}

static struct pqmsg *
pq_at(const struct peerq *q, unsigned int i)
{
	return &q->ring[(q->head + i) & (q->cap - 1)];
}

static void
pq_drop_msg(struct pqmsg *m)
{
	vecset_release(m->set, (m->flags & PQ_LEAVE) != 0);
}

static void
pq_wait(struct peerq *q, int on)
{
	if (on && !q->waiting)
		pq_nwaiting++;
	else if (!on && q->waiting)
		pq_nwaiting--;
	q->waiting = on;
}

void
pq_free(struct peerq *q)
{
	unsigned int	 i;

	for (i = 0; i < q->len; i++)
		pq_drop_msg(pq_at(q, i));
	free(q->ring);
	inflight -= q->unread;
	pq_wait(q, 0);
	TAILQ_REMOVE(&queues, q, entry);
	nqueues--;
	q->ring = NULL;
	q->len = q->cap = 0;
}

/* Grow the ring, unwrapped, to twice its size. */
static int
pq_grow(struct peerq *q)
{
	struct pqmsg	*r;
	unsigned int	 cap = q->cap ? 2 * q->cap : 16, i;

	if ((r = reallocarray(NULL, cap, sizeof(*r))) == NULL)
		return -1;
	for (i = 0; i < q->len; i++)
		r[i] = *pq_at(q, i);
	free(q->ring);
	q->ring = r;
	q->cap = cap;
	q->head = 0;
	return 0;
}

/*
 * Queue one message: fd is -1, or one of set's (which it then holds
 * open), or one that lives as long as the server (the shm's, with no
 * set).  A leave names its set without holding it.  -1 with errno set
 * when the queue is full or memory short.
 */
int
pq_put(struct peerq *q, int64_t val, int fd, struct vecset *set, int flags)
{
	struct pqmsg	*m;

	if (q->len >= PQ_QUEUE_MAX) {
		errno = ENOBUFS;
		return -1;
	}
	if (q->len == q->cap && pq_grow(q) == -1)
		return -1;
	m = pq_at(q, q->len++);
	m->val = val;
	m->fd = fd;
	m->flags = flags;
	m->set = set;
	m->since = now_ms();
	if (set != NULL && !set->borrowed) {
		if (flags & PQ_LEAVE)
			set->weak++;
		else
			set->refs++;
	}
	return 0;
}

/*
 * How many of the fds sent to the peer it may not have read yet.  The
 * bytes it has not read tell: each message is a buffer of its own, of
 * PQ_SKB_MIN bytes or more as the kernel counts them, with one fd at
 * most, so a peer that reads is given more before it has read all.
 */
static void
pq_refresh(struct peerq *q)
{
	unsigned int	 most = 0;
#ifdef SIOCOUTQ
	int		 n;

	if (q->unread == 0 || ioctl(q->fd, SIOCOUTQ, &n) == -1)
		return;
	if (n > 0)
		most = n / PQ_SKB_MIN + 1;
#endif
	if (most < q->unread) {
		inflight -= q->unread - most;
		q->unread = most;
	}
}

/* Each peer's count, at most once a millisecond. */
static void
pq_refresh_all(void)
{
	static int64_t	 last;
	struct peerq	*q;
	int64_t		 now = now_ms();

	if (now == last)
		return;
	last = now;
	TAILQ_FOREACH(q, &queues, entry)
		pq_refresh(q);
}

/*
 * Whether one more fd may go to q: its handshake is checked in full
 * before it starts, the news after it within the peer's budget, and
 * everything within the budget of all.
 */
static int
pq_may_pass(struct peerq *q, const struct pqmsg *m, unsigned int batch)
{
	if (!(m->flags & PQ_HS) && q->unread + batch + 1 > news_max) {
		pq_refresh(q);
		if (q->unread + batch + 1 > news_max)
			return 0;
	}
	if (inflight + batch + 1 > inflight_max) {
		pq_refresh_all();
		if (inflight + batch + 1 > inflight_max)
			return 0;
	}
	return 1;
}

/* The control messages of a batch: one fd each, at most. */
union pqcmsg {
	size_t		 align;		/* a cmsghdr's, which has a size_t */
	unsigned char	 buf[CMSG_SPACE(sizeof(int))];
};

/* Set up mh for m; returns 1 if it carries an fd. */
static int
pq_msghdr(struct msghdr *mh, struct iovec *iov, uint64_t *le,
    union pqcmsg *cm, const struct pqmsg *m)
{
	struct cmsghdr	*c;

	memset(mh, 0, sizeof(*mh));
	*le = htole64((uint64_t)m->val);
	iov->iov_base = le;
	iov->iov_len = sizeof(*le);
	mh->msg_iov = iov;
	mh->msg_iovlen = 1;
	if (m->fd == -1)
		return 0;
	memset(cm, 0, sizeof(*cm));
	mh->msg_control = cm->buf;
	mh->msg_controllen = CMSG_SPACE(sizeof(int));
	c = CMSG_FIRSTHDR(mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &m->fd, sizeof(int));
	return 1;
}

/*
 * Send n prepared messages in one call where the system has one.
 * Returns how many went, or -1.
 */
static int
pq_sendv(int s, struct mmsghdr *mm, unsigned int n)
{
	ssize_t	 r;
	int	 k;

#ifdef __linux__
	if (n > 1) {
		do {
			k = sendmmsg(s, mm, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		} while (k == -1 && errno == EINTR);
		return k;
	}
#endif
	for (k = 0; k < (int)n; k++) {
		do {
			r = sendmsg(s, &mm[k].msg_hdr, MSG_NOSIGNAL |
			    MSG_DONTWAIT);
		} while (r == -1 && errno == EINTR);
		if (r == -1)
			return k > 0 ? k : -1;
		mm[k].msg_len = r;
	}
	return k;
}

/*
 * The serving user's fds in flight are at its limit: the system's
 * condition, not a peer's fault.  Said at most once every 10 seconds.
 */
static void
pq_toomany_log(void)
{
	static int64_t	 said;
	int64_t		 now = now_ms();

	toomany_at = now;
	if (said == 0 || now - said >= 10000) {
		log_warnx("descriptors in flight: the limit of the serving "
		    "user is reached; messages to peers wait, and no peer "
		    "joins, until peers read theirs");
		said = now;
	}
}

/*
 * Send what is queued, in batches, as far as the socket and the budgets
 * allow.  Returns 0, the rest waiting for room (POLLOUT) or for a tick
 * (q->waiting), or -1 on an error of the peer's, errno set.
 */
int
pq_flush(struct peerq *q)
{
	struct mmsghdr	 mm[PQ_BATCH];
	struct iovec	 iov[PQ_BATCH];
	uint64_t	 le[PQ_BATCH];
	union pqcmsg	 cm[PQ_BATCH];
	struct pqmsg	*m;
	unsigned int	 n, nfd, i;
	int		 k;

	pq_wait(q, 0);
	q->full = 0;
	while (q->len > 0) {
		for (n = nfd = 0; n < PQ_BATCH && n < q->len; n++) {
			m = pq_at(q, n);
			if (m->fd != -1 && !pq_may_pass(q, m, nfd))
				break;
			nfd += pq_msghdr(&mm[n].msg_hdr, &iov[n], &le[n],
			    &cm[n], m);
		}
		if (n == 0) {
			pq_wait(q, 1);
			return 0;
		}
		if ((k = pq_sendv(q->fd, mm, n)) == -1) {
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				q->full = 1;
				return 0;
			}
			if (errno == ETOOMANYREFS) {
				pq_toomany_log();
				pq_wait(q, 1);
				return 0;
			}
			return -1;
		}
		for (i = 0; i < (unsigned int)k; i++) {
			/* 8 bytes in a fresh skb are never split. */
			if (mm[i].msg_len != sizeof(uint64_t)) {
				errno = EPROTO;
				return -1;
			}
			m = pq_at(q, 0);
			if (m->fd != -1) {
				q->unread++;
				inflight++;
			}
			pq_drop_msg(m);
			q->head = (q->head + 1) & (q->cap - 1);
			q->len--;
		}
	}
	/* A handshake's worth of room is not kept for every peer. */
	if (q->cap > PQ_KEEP) {
		free(q->ring);
		q->ring = NULL;
		q->cap = q->head = 0;
	}
	return 0;
}

/* The serving user's fds in flight hit its limit lately. */
int
pq_toomany(void)
{
	return toomany_at != 0 && now_ms() - toomany_at < PQ_STALL_MS;
}

/*
 * Whether a newcomer can be served in full before anything is sent to
 * it: hsfds fds in flight for its handshake, nvec eventfds of its own
 * (0 in host mode), within the budgets.  NULL if so, else why not.
 */
const char *
pq_admit(unsigned int hsfds, unsigned int nvec)
{
	if (pq_toomany())
		return "the serving user's descriptors in flight are at its "
		    "limit";
	if ((uint64_t)setfds + nvec + nqueues + PQ_FD_RESERVE > nofile)
		return "the server's descriptors are at their limit "
		    "(ulimit -n)";
	if (inflight + hsfds > inflight_max) {
		pq_refresh_all();
		if (inflight + hsfds > inflight_max)
			return "too many descriptors in flight to peers "
			    "that have not read them";
	}
	return NULL;
}

/*
 * A peer is behind when the oldest news it has not taken is a second
 * old.  While the fds held for peers gone are over their budget, so is
 * one whose news is 20 ms old, or that can take no more now: its socket
 * is full, or it holds all the unread fds it may.
 */
static int
pq_behind(const struct peerq *q, int64_t now)
{
	int64_t	 lag;

	if (q->len == 0)
		return 0;
	lag = now - pq_at(q, 0)->since;
	if (lag >= PQ_BEHIND_MS)
		return 1;
	return zombiefds > zombie_max && (lag >= PQ_SHORT_MS || q->full ||
	    q->waiting);
}

/*
 * Take back from q the news of sets whose peers have left, where none
 * of it was sent: the join (a run of nvec fds, whole) and the leave
 * after it, which then is of a peer q was never told of.  s: only that
 * set's, whose leave is not queued yet; else every gone set's.
 * Returns how many joins were taken back.
 */
static unsigned int
pq_unqueue(struct peerq *q, struct vecset *s)
{
	static unsigned int	 gen;
	struct pqmsg		*m;
	unsigned int		 i, j, out = 0, taken = 0;

	gen++;
	for (i = 0; i < q->len; i = j) {
		m = pq_at(q, i);
		j = i + 1;
		if ((m->flags & PQ_LEAVE) && m->set->mark == gen) {
			pq_drop_msg(m);
			continue;
		}
		if (m->fd == -1 || m->set == NULL || m->set->borrowed ||
		    (s != NULL ? m->set != s : !m->set->gone)) {
			*pq_at(q, out++) = *m;
			continue;
		}
		while (j < q->len && pq_at(q, j)->set == m->set &&
		    pq_at(q, j)->fd != -1)
			j++;
		if (j - i != m->set->nvec) {
			/* Begun: the peer is to get the rest and the leave. */
			for (; i < j; i++)
				*pq_at(q, out++) = *pq_at(q, i);
			continue;
		}
		m->set->mark = gen;
		taken++;
		for (; i < j; i++)
			pq_drop_msg(pq_at(q, i));
	}
	q->len = out;
	return taken;
}

/*
 * Peer s is leaving: take its news back from q where q has none of it
 * yet and either q is behind or the fds held for peers gone are over
 * their budget.  1 if q is then to hear nothing of s.
 */
int
pq_forget(struct peerq *q, struct vecset *s)
{
	if (q->len == 0 || s->borrowed)
		return 0;
	if (!pq_behind(q, now_ms()) || pq_unqueue(q, s) == 0)
		return 0;
	log_debug("peer %u: news of it taken back from a peer behind",
	    s->id);
	return 1;
}

/*
 * On a tick: a peer that has fallen behind since peers left loses the
 * news of them it has not begun to take.
 */
void
pq_compress(struct peerq *q)
{
	if (q->len == 0 || q->gonegen == gonegen || zombiefds == 0 ||
	    !pq_behind(q, now_ms()))
		return;
	q->gonegen = gonegen;
	if (pq_unqueue(q, NULL) > 0)
		log_debug("news of peers gone taken back from a peer behind");
}
