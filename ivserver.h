/*
 * ivserver.h: declarations shared by the ivserver source files.
 */

#ifndef IVSERVER_H
#define IVSERVER_H

#include <sys/types.h>
#include <sys/queue.h>

#include <stdint.h>

#include "ivshm.h"

#ifndef __dead
#define __dead	__attribute__((__noreturn__))
#endif

struct passwd;
struct pollfd;

#define IVSERVER_VERSION	"0.1"
#define REGION_NAME_MAX		(IVSHM_NAME_SIZE - 1)
#define IVSHM_PEER_MAX		65535	/* QEMU's highest peer ID */
#define VECTORS_MAX		1024
#define WINDOW_MAX		(1ULL << 40)	/* 1 TiB */
#define CHROOT_DIR		"/var/empty"

struct region {
	char		 name[IVSHM_NAME_SIZE];
	uint64_t	 size;		/* as asked for */
	uint64_t	 align;		/* power of two, >= page */
	uint64_t	 begin;
	uint64_t	 end;
	unsigned int	 vector;
	int		 g2h;		/* guest-to-host eventfd */
	int		 h2g;		/* host-to-guest eventfd */
};

enum backing {
	BACKING_MEMFD,
	BACKING_POSIX,
	BACKING_HUGETLB
};

struct layout {
	const char	*file;		/* for messages */
	struct region	*regions;
	unsigned int	 nregions;
	uint64_t	 size;		/* window, a power of two */
	uint64_t	 minsize;	/* asked for by the file, or 0 */
	uint64_t	 page;		/* alignment unit */
	uint64_t	 hdrsize;	/* header and region table */
	enum backing	 backing;
	const char	*shmname;	/* BACKING_POSIX */
	const char	*hugedir;	/* BACKING_HUGETLB */
	int		 shmfd;
};

struct listener {
	const char	*path;
	int		 fd;
	int		 made;		/* we created the socket file */
	dev_t		 dev;		/* and it is this one */
	ino_t		 ino;
};

struct server {
	struct layout	*layout;
	struct listener	 qemu;
	struct listener	 client;
	int		 sigfd;		/* read end of the signal pipe */
	int		 ipcfd;		/* the channel to the parent */
	unsigned int	 maxclients;
	unsigned int	 nofile;	/* RLIMIT_NOFILE of the server */
	int		 timeout;	/* client deadline, milliseconds */
	int		 launched;	/* only the launched QEMU may attach */
	int		 peermode;	/* every client a peer, no host side */
	unsigned int	 nvectors;	/* per peer, in peer mode */
	pid_t		 qemu_pid;
	uid_t		*allow_uid;	/* if any list is set, only these */
	size_t		 nallow_uid;
	gid_t		*allow_gid;
	size_t		 nallow_gid;
};

/*
 * The serving process's records to the parent, one per message on the
 * SOCK_SEQPACKET channel, each checked whole: IPC_VECS carries count
 * eventfds of peer id, from its vector first on; IPC_HOLD carries the
 * peer's connection once its handshake is out, count its vectors (all
 * sent before, in peer mode; 0 in host mode, whose VM rings the
 * parent's own eventfds); IPC_DROP says the peer left.
 */
#define IPC_HOLD	1
#define IPC_VECS	2
#define IPC_DROP	3
#define IPC_FDS_MAX	250	/* below the kernel's SCM_MAX_FD, 253 */

struct ipc_up {
	uint32_t	 type;
	uint32_t	 id;
	uint32_t	 first;
	uint32_t	 count;
};

/*
 * A VM's or peer's connection the parent holds, with its eventfds in
 * peer mode, so that a new serving process adopts it.
 */
struct held {
	TAILQ_ENTRY(held)	 entry;
	unsigned int		 id;
	int			 fd;	/* -1 until IPC_HOLD */
	pid_t			 pid;	/* SO_PEERCRED, as the parent reads it */
	int			*vec;
	unsigned int		 nvec;
	unsigned int		 got;	/* eventfds received so far */
};
TAILQ_HEAD(heldq, held);

enum respawn {
	RESPAWN_NO,
	RESPAWN_FAILURE,
	RESPAWN_ALWAYS
};

struct qemu {
	const char	*file;
	char		*binary;	/* NULL: ivserver launches no QEMU */
	char		**args;
	size_t		 nargs;
	char		*pciaddr;
	enum respawn	 respawn;
	unsigned int	 respawn_limit;	/* 0: none */
	unsigned int	 respawn_delay;	/* seconds, doubled per quick exit */
	unsigned int	 stop_timeout;	/* seconds before SIGKILL */
	char		*chardev;	/* the arguments ivserver adds */
	char		*device;
	char		**argv;
	size_t		 nargv;
	pid_t		 pid;
	int64_t		 started;	/* ms */
	int64_t		 restart_at;	/* ms, or 0 */
	unsigned int	 backoff;
	unsigned int	 respawns;
	int		 stopping;
	int		 ownpgrp;	/* start QEMU in its own group */
};

/* What the serving process polls: one entry per pollfd. */
enum pollkind {
	POLL_SIGNAL,
	POLL_PARENT,
	POLL_QEMU,		/* the QEMU listener */
	POLL_CLIENT,		/* the host-client listener */
	POLL_PEER,
	POLL_CONN
};

struct pollref {
	enum pollkind	 kind;
	void		*ptr;
};

struct pollset {
	struct pollfd	*pfd;
	struct pollref	*ref;
	size_t		 n;
	size_t		 size;
};

enum json_type {
	JSON_OBJECT = 1,
	JSON_ARRAY,
	JSON_STRING,
	JSON_PRIMITIVE
};

/* A parsed JSON file (json.c); tokens are indices, 0 the top object. */
struct json {
	const char	*file;
	const char	*js;
	size_t		 len;
	char		*buf;		/* owned copy of the file, or NULL */
	void		*tok;
	int		 ntok;
	int		 errors;
};

/* Walking an object's members (json.c): at most 32 known fields. */
struct json_members {
	struct json		*c;
	const char *const	*fields;
	const char		*path;
	int			 obj;
	int			 k;		/* members walked */
	int			 key;		/* the current member */
	int			 val;
	int			 next;		/* the token after it */
	unsigned int		 seen;		/* bit i: fields[i] given */
	char			 field[64];	/* path.key, for messages */
};

/* json.c */
int	json_parse(struct json *, const char *, const char *, size_t);
int	json_load(struct json *, const char *);
void	json_free(struct json *);
void	json_err(struct json *, int, const char *, const char *, ...)
	    __attribute__((__format__(__printf__, 4, 5)));
int	json_type(const struct json *, int);
int	json_kids(const struct json *, int);
int	json_skip(const struct json *, int);
int	json_eq(const struct json *, int, const char *);
const char *json_text(const struct json *, int, size_t *);
int	json_string(struct json *, int, const char *, char **);
int	json_number(struct json *, int, const char *, long long, long long,
	    long long *);
int	json_size(struct json *, int, const char *, uint64_t *);
void	json_members(struct json_members *, struct json *, int,
	    const char *, const char *const *);
int	json_member(struct json_members *);
int	json_require(struct json_members *, int);

/* layout.c */
int	layout_parse(struct layout *, const char *, const char *, size_t);
int	layout_load(struct layout *, const char *);
int	layout_raw(struct layout *, uint64_t);
void	layout_print(const struct layout *);
int	layout_open_shm(struct layout *);
void	layout_close_shm(struct layout *);
void	layout_forget(struct layout *);
void	layout_free(struct layout *);
int	layout_eventfds(struct layout *);
uint64_t layout_generation(struct layout *, int);
int	layout_backing(struct layout *);
struct region *layout_find(const struct layout *, const char *, size_t);

/* qemu.c */
int	qemu_load(struct qemu *, const char *, const char *, unsigned int);
void	qemu_print(const struct qemu *);
void	qemu_free(struct qemu *);
pid_t	qemu_start(struct qemu *);
void	qemu_exited(struct qemu *, int);
int	qemu_timeout(const struct qemu *);
pid_t	qemu_due(struct qemu *);
void	qemu_stop(struct qemu *);

/* sandbox.c */
void	sandbox_drop(const struct passwd *, const char *);
void	sandbox_limits(void);
void	sandbox_enter(void);

/* proto.c */
int	listener_open(struct listener *, mode_t, gid_t);
void	listener_close(struct listener *);
void	proto_init(struct server *);
void	proto_fini(void);
int64_t	proto_pollset(struct pollset *);
void	proto_dispatch(enum pollkind, void *, short);
void	proto_reap(void);
void	proto_adopt(int, unsigned int, int *, unsigned int);

/* server.c */
__dead void server_main(struct server *, const struct passwd *, int,
	    struct heldq *);
void	pollset_add(struct pollset *, int, short, enum pollkind, void *);
void	server_hold(int, unsigned int, const int *, unsigned int);
void	server_drop(unsigned int);

/* parent.c */
int	parent_main(struct server *, const struct passwd *, struct qemu *,
	    int, int);

/* util.c */
#define SIGNAL_STOP	0x1	/* SIGTERM or SIGINT */
#define SIGNAL_CHILD	0x2
int64_t	now_ms(void);
ssize_t	send_fds(int, const void *, size_t, const int *, int);
uint64_t parse_size(const char *, const char **);
int	signals_init(void);
int	signals_read(void);
void	signals_hold(int);
const char *exit_status(int);
int	child_stop(pid_t, const char *, int);

/* peerq.c: the news for each peer, and the descriptors it costs */
struct vecset {
	unsigned int	 id;
	unsigned int	 nvec;
	const int	*fds;		/* one eventfd per vector */
	int		*own;		/* fds, unless borrowed */
	unsigned int	 refs;		/* its peer's, and each queued fd's */
	unsigned int	 weak;		/* queued leaves, which only name it */
	unsigned int	 mark;
	int		 borrowed;	/* fds that outlive every peer */
	int		 gone;		/* its peer has left */
};

#define PQ_HS		0x1	/* part of a handshake, checked before it */
#define PQ_LEAVE	0x2	/* a leave: names its set, holds no fd */

struct pqmsg;
struct peerq {
	TAILQ_ENTRY(peerq)	 entry;
	int			 fd;
	struct pqmsg		*ring;
	unsigned int		 head, len, cap;
	unsigned int		 unread;	/* fds sent, maybe not read */
	int			 waiting;	/* for a tick, not POLLOUT */
	int			 full;		/* its socket, at the last try */
	unsigned int		 gonegen;
};

extern unsigned int	 pq_nwaiting;

void		 pq_limits(unsigned int, unsigned int, unsigned int);
struct vecset	*vecset_new(unsigned int, unsigned int);
struct vecset	*vecset_adopt(unsigned int, int *, unsigned int);
void		 vecset_borrow(struct vecset *, unsigned int, const int *,
		    unsigned int);
void		 vecset_gone(struct vecset *);
void		 pq_init(struct peerq *, int);
void		 pq_free(struct peerq *);
int		 pq_put(struct peerq *, int64_t, int, struct vecset *, int);
int		 pq_flush(struct peerq *);
int		 pq_forget(struct peerq *, struct vecset *);
void		 pq_compress(struct peerq *);
int		 pq_toomany(void);
const char	*pq_admit(unsigned int, unsigned int);

#endif /* IVSERVER_H */
