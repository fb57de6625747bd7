/*
 * ivserver: a host-side ivshmem server.
 *
 * This file is main().  It reads top to bottom: options, configuration,
 * sockets, shared memory, daemon, the split into the serving process
 * (server.c) and the privileged parent (parent.c), which launches and
 * supervises QEMU and replaces a serving process that dies, and
 * clean-up.
 */

#include <sys/types.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "ivserver.h"
#include "log.h"

#define MAXCLIENTS_DEFAULT	1024
#define FD_RESERVE		32	/* fds the server keeps for itself */
#define TIMEOUT_DEFAULT		10	/* seconds */
#define USER_DEFAULT		"_ivserver"
#define USER_FALLBACK		"nobody"
#define COMPAT_VECTORS_MAX	64	/* as ivshmem-server */

/* conf/layout.json, compiled in. */
static const char builtin_layout[] = {
#include "layout-default.inc"
};

static __dead void	usage(void);

static __dead void
usage(void)
{
	fprintf(stderr, "usage: %s [-dnv] [-a allow] [-c maxclients] "
	    "[-f layout] [-g group]\n"
	    "\t[-M shmname | -m hugetlbdir] [-Q qemu-config] "
	    "[-q qemu-socket]\n"
	    "\t[-s client-socket] [-t timeout] [-u user]\n"
	    "       %s -P vectors [-dnv] [-a allow] [-c maxpeers] "
	    "[-f layout | -l size]\n"
	    "\t[-g group] [-M shmname | -m hugetlbdir] [-q socket] "
	    "[-u user]\n", getprogname(), getprogname());
	exit(1);
}

/*
 * Make or check the runtime directory: owned by uid, writable only by
 * it, and for a user given -g, of that group and open to it for
 * search, so that the group reaches the sockets inside.
 */
static void
rundir_make(const char *dir, uid_t uid, gid_t gid)
{
	struct stat	 st;
	int		 fd;

	if (mkdir(dir, uid == 0 ? 0755 : 0700) == -1 && errno != EEXIST)
		fatal("%s", dir);
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1)
		fatal("%s", dir);
	if (fstat(fd, &st) == -1)
		fatal("%s", dir);
	if (!S_ISDIR(st.st_mode) || st.st_uid != uid ||
	    (st.st_mode & (S_IWGRP | S_IWOTH)) != 0)
		fatalx("%s: not a directory owned by uid %lu and writable "
		    "only by it", dir, (unsigned long)uid);
	if (uid != 0 && gid != (gid_t)-1 && (st.st_gid != gid ||
	    (st.st_mode & 07777) != 0750) && (fchown(fd, (uid_t)-1,
	    gid) == -1 || fchmod(fd, 0750) == -1))
		fatal("%s: giving group %lu search permission", dir,
		    (unsigned long)gid);
	close(fd);
}

/*
 * The directory for the default socket paths: /run/ivserver for root,
 * else one private to the user.  It must not be writable by others.
 * With -g, a user's directory is one the group can traverse, so not
 * under XDG_RUNTIME_DIR, which only its owner can enter.
 */
static const char *
rundir(int nflag, gid_t gid)
{
	static char	 dir[PATH_MAX];
	uid_t		 uid = geteuid();
	int		 n = 0;

	if (dir[0] != '\0')
		return dir;
	/* The rule libivshm's clients follow too, but for a group. */
	if (uid != 0 && gid != (gid_t)-1)
		n = snprintf(dir, sizeof(dir), "/tmp/ivserver-%lu",
		    (unsigned long)uid);
	else if (ivshm_rundir(dir, sizeof(dir)) == -1)
		n = -1;
	if (n < 0 || (size_t)n >= sizeof(dir))
		fatalx("runtime directory path too long");
	if (!nflag)
		rundir_make(dir, uid, gid);
	return dir;
}

/* Paths are kept absolute: the daemon changes to /. */
static const char *
sockpath(const char *path, const char *name, int nflag, gid_t gid,
    char *buf, size_t len)
{
	char	 cwd[PATH_MAX];
	int	 n;

	if (path != NULL && path[0] == '/')
		return path;
	if (path == NULL)
		n = snprintf(buf, len, "%s/%s", rundir(nflag, gid), name);
	else {
		if (getcwd(cwd, sizeof(cwd)) == NULL)
			fatal("getcwd");
		n = snprintf(buf, len, "%s/%s", cwd, path);
	}
	if (n < 0 || (size_t)n >= len)
		fatalx("%s: path too long", path ? path : name);
	return buf;
}

/*
 * Each client costs an fd, and the fds sent to it count against the
 * same limit until it reads them: allow as many as the hard limit
 * does.  In peer mode a limit that cannot hold two peers and what the
 * server keeps (FD_RESERVE) is an error, as is a -c given that it
 * cannot hold; without -c, past the limit peers are refused.
 */
static void
raise_nofile(const struct server *srv, int cflag)
{
	struct rlimit	 rl;
	uint64_t	 need, lim;
	const char	*vopt;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur == RLIM_INFINITY)
		return;
	lim = rl.rlim_cur;
	vopt = strcmp(getprogname(), "ivshmem-server") == 0 ? "-n" : "-P";
	if (srv->peermode && 2 * (1 + (uint64_t)srv->nvectors) + FD_RESERVE >
	    lim)
		fatalx("%s %u: two peers and the server need %ju descriptors, "
		    "more than the limit of %ju (ulimit -n)", vopt,
		    srv->nvectors, (uintmax_t)(2 * (1 + srv->nvectors) +
		    FD_RESERVE), (uintmax_t)lim);
	if (srv->peermode)
		need = (uint64_t)srv->maxclients * (1 + srv->nvectors) +
		    FD_RESERVE;
	else
		need = (uint64_t)srv->maxclients * 4;
	if (need <= lim)
		return;
	if (cflag && srv->peermode)
		fatalx("-c %u: %u peers of %u vectors need %ju descriptors, "
		    "more than the limit of %ju (ulimit -n)", srv->maxclients,
		    srv->maxclients, srv->nvectors, (uintmax_t)need,
		    (uintmax_t)lim);
	if (cflag)
		log_warnx("-c %u: the clients and their replies may need %ju "
		    "descriptors, more than the limit of %ju (ulimit -n): "
		    "past it, connections wait", srv->maxclients,
		    (uintmax_t)need, (uintmax_t)lim);
}

static gid_t
group_id(const char *name, int opt)
{
	struct group	*gr;
	const char	*errstr;
	gid_t		 gid;

	if ((gr = getgrnam(name)) != NULL)
		return gr->gr_gid;
	gid = (gid_t)strtonum(name, 0, INT_MAX, &errstr);
	if (errstr != NULL)
		fatalx("-%c %s: no such group", opt, name);
	return gid;
}

/* -a: a user name or uid, or :group or :gid. */
static void
allow_add(struct server *srv, const char *who)
{
	struct passwd	*pw;
	const char	*errstr;
	uid_t		 uid;

	if (who[0] == ':') {
		srv->allow_gid = reallocarray(srv->allow_gid,
		    srv->nallow_gid + 1, sizeof(gid_t));
		if (srv->allow_gid == NULL)
			fatal("-a");
		srv->allow_gid[srv->nallow_gid++] = group_id(who + 1, 'a');
		return;
	}
	if ((pw = getpwnam(who)) != NULL)
		uid = pw->pw_uid;
	else {
		uid = (uid_t)strtonum(who, 0, INT_MAX, &errstr);
		if (errstr != NULL)
			fatalx("-a %s: no such user", who);
	}
	srv->allow_uid = reallocarray(srv->allow_uid, srv->nallow_uid + 1,
	    sizeof(uid_t));
	if (srv->allow_uid == NULL)
		fatal("-a");
	srv->allow_uid[srv->nallow_uid++] = uid;
}

/* The user the server runs as when started as root. */
static struct passwd *
server_user(const char *name)
{
	static struct passwd	 copy;
	struct passwd		*pw;
	struct stat		 st;

	if (geteuid() != 0) {
		if (name != NULL)
			fatalx("-u %s: only root can change user", name);
		return NULL;
	}
	if (name != NULL) {
		if ((pw = getpwnam(name)) == NULL)
			fatalx("-u %s: no such user", name);
	} else if ((pw = getpwnam(USER_DEFAULT)) == NULL &&
	    (pw = getpwnam(USER_FALLBACK)) == NULL)
		fatalx("no user %s or %s to run as: use -u", USER_DEFAULT,
		    USER_FALLBACK);
	if (pw->pw_uid == 0)
		fatalx("%s: will not serve as root", pw->pw_name);
	/* Every other process running as nobody could signal the server. */
	if (name == NULL && strcmp(pw->pw_name, USER_FALLBACK) == 0)
		log_warnx("no user %s: serving as %s, which other daemons "
		    "share; see ivserver(8) on creating %s", USER_DEFAULT,
		    USER_FALLBACK, USER_DEFAULT);
	copy = *pw;		/* only the ids are used */
	if (mkdir(CHROOT_DIR, 0755) == -1 && errno != EEXIST)
		fatal("%s", CHROOT_DIR);
	if (lstat(CHROOT_DIR, &st) == -1)
		fatal("%s", CHROOT_DIR);
	if (!S_ISDIR(st.st_mode) || st.st_uid != 0 ||
	    (st.st_mode & (S_IWGRP | S_IWOTH)) != 0)
		fatalx("%s: must be a directory owned by root and writable "
		    "only by it", CHROOT_DIR);
	return &copy;
}

/* A POSIX shm name: "/" and a file name, not "." or "..". */
static int
valid_shmname(const char *name)
{
	const char	*f = name + 1;

	return name[0] == '/' && f[0] != '\0' && strchr(f, '/') == NULL &&
	    strcmp(f, ".") != 0 && strcmp(f, "..") != 0 &&
	    strlen(f) <= NAME_MAX;
}

/* What the command line asks for, in either syntax. */
struct opts {
	const char	*file;
	const char	*qpath;
	const char	*cpath;
	const char	*qconf;
	const char	*user;
	const char	*pidfile;
	gid_t		 gid;
	int		 cflag;
	int		 dflag;
	int		 nflag;
	int		 verbose;
	uint64_t	 rawsize;
};

static uint64_t
size_arg(int ch, const char *arg)
{
	const char	*errstr;
	uint64_t	 v;

	v = parse_size(arg, &errstr);
	if (errstr != NULL)
		fatalx("-%c %s: %s", ch, arg, errstr);
	if (v == 0)
		fatalx("-%c %s: must be greater than 0", ch, arg);
	return v;
}

static void
backing_arg(struct layout *l, int ch, const char *arg)
{
	if (l->backing != BACKING_MEMFD && l->backing != (ch == 'M' ?
	    BACKING_POSIX : BACKING_HUGETLB))
		fatalx("-M and -m exclude each other");
	if (ch == 'M') {
		l->backing = BACKING_POSIX;
		l->shmname = arg;
	} else {
		l->backing = BACKING_HUGETLB;
		l->hugedir = arg;
	}
}

static void
options(int argc, char *argv[], struct opts *o, struct server *srv,
    struct layout *l)
{
	const char	*errstr;
	int		 ch;

	while ((ch = getopt(argc, argv, "a:c:df:g:l:M:m:nP:Q:q:s:t:u:v")) !=
	    -1) {
		switch (ch) {
		case 'a':
			allow_add(srv, optarg);
			break;
		case 'c':
			srv->maxclients = strtonum(optarg, 1, 65536, &errstr);
			if (errstr != NULL)
				fatalx("-c %s: %s", optarg, errstr);
			o->cflag = 1;
			break;
		case 'd':
			o->dflag = 1;
			break;
		case 'f':
			o->file = optarg;
			break;
		case 'g':
			o->gid = group_id(optarg, ch);
			break;
		case 'l':
			o->rawsize = size_arg(ch, optarg);
			break;
		case 'M':
		case 'm':
			backing_arg(l, ch, optarg);
			break;
		case 'n':
			o->nflag = 1;
			break;
		case 'P':
			srv->peermode = 1;
			srv->nvectors = strtonum(optarg, 1, VECTORS_MAX,
			    &errstr);
			if (errstr != NULL)
				fatalx("-P %s: %s", optarg, errstr);
			break;
		case 'Q':
			o->qconf = optarg;
			break;
		case 'q':
			o->qpath = optarg;
			break;
		case 's':
			o->cpath = optarg;
			break;
		case 't':
			srv->timeout = strtonum(optarg, 1, 3600, &errstr) * 1000;
			if (errstr != NULL)
				fatalx("-t %s: %s", optarg, errstr);
			break;
		case 'u':
			o->user = optarg;
			break;
		case 'v':
			o->verbose++;
			break;
		default:
			usage();
		}
	}
	if (argc != optind)
		usage();
	if (o->rawsize != 0 && (!srv->peermode || o->file != NULL))
		fatalx("-l sizes the bare window of peer mode without -f");
	if (o->qconf != NULL && srv->peermode)
		fatalx("-Q: ivserver launches QEMU in host mode only");
	if (srv->peermode && o->cpath != NULL)
		fatalx("-s: peer mode has no client socket");
}

static __dead void
compat_usage(int rv)
{
	fprintf(rv ? stderr : stdout, "usage: %s [-hvF] [-g group] "
	    "[-p pidfile] [-S socket]\n"
	    "\t[-M shmname | -m hugetlbdir] [-l size] [-n vectors]\n",
	    getprogname());
	exit(rv);
}

/*
 * Invoked as ivshmem-server: QEMU's contrib server's flags, meanings
 * and defaults, served by peer mode.
 */
static void
compat_options(int argc, char *argv[], struct opts *o, struct server *srv,
    struct layout *l)
{
	static char	 shmname[NAME_MAX + 2];
	const char	*errstr;
	int		 ch, named = 0;

	srv->peermode = 1;
	srv->nvectors = 1;
	o->qpath = "/tmp/ivshmem_socket";
	o->pidfile = "/var/run/ivshmem-server.pid";
	o->rawsize = 4 << 20;
	/* -g is ivserver's own: QEMU's server has no such flag. */
	while ((ch = getopt(argc, argv, "hvFg:p:S:M:m:l:n:")) != -1) {
		switch (ch) {
		case 'h':
			compat_usage(0);
		case 'v':
			o->verbose++;
			break;
		case 'F':
			o->dflag = 1;
			break;
		case 'g':
			o->gid = group_id(optarg, ch);
			break;
		case 'p':
			o->pidfile = optarg;
			break;
		case 'S':
			o->qpath = optarg;
			break;
		case 'M':
			/* QEMU's names have no leading slash. */
			if ((size_t)snprintf(shmname, sizeof(shmname), "/%s",
			    optarg + (optarg[0] == '/')) >= sizeof(shmname))
				fatalx("-M %s: name too long", optarg);
			backing_arg(l, ch, shmname);
			named = 1;
			break;
		case 'm':
			backing_arg(l, ch, optarg);
			break;
		case 'l':
			o->rawsize = size_arg(ch, optarg);
			break;
		case 'n':
			/* QEMU's own server and client hold 64 at most. */
			srv->nvectors = strtonum(optarg, 1, COMPAT_VECTORS_MAX,
			    &errstr);
			if (errstr != NULL)
				fatalx("-n %s: %s (QEMU's ivshmem tools take "
				    "1 to %d; -P goes higher)", optarg, errstr,
				    COMPAT_VECTORS_MAX);
			break;
		default:
			compat_usage(1);
		}
	}
	if (argc != optind)
		compat_usage(1);
	if (!named && l->backing == BACKING_MEMFD)
		backing_arg(l, 'M', "/ivshmem");
}

/*
 * A pid file for the daemon, as QEMU's server writes one, held locked
 * for the daemon's life: a second instance given the same file says so
 * and exits rather than take it over.  Never through a link, never a
 * FIFO or device (the open does not block), and only a file with one
 * name: the parent is privileged.
 */
static int
pid_open(const char *path, struct stat *sb)
{
	int	 fd;

	fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK |
	    O_CLOEXEC, 0644);
	if (fd == -1) {
		log_warn("%s", path);
		return -1;
	}
	if (fstat(fd, sb) == -1 || !S_ISREG(sb->st_mode) ||
	    sb->st_nlink != 1) {
		log_warnx("%s: not a regular file with one link", path);
		close(fd);
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		log_warnx("%s: locked by another running instance", path);
		close(fd);
		return -1;
	}
	return fd;
}

/* Once detached: the daemon's own pid. */
static int
pid_write(const char *path, int fd)
{
	char	 buf[32];
	int	 n;

	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) == -1 || pwrite(fd, buf, n, 0) != n) {
		log_warn("%s", path);
		return -1;
	}
	return 0;
}

/*
 * Detach as daemon(3) does, except that the starting process waits for
 * the detached one to have written its pid file: a failure to write it
 * is reported on the terminal, while the standard error output is still
 * there, and in the exit status of the command.  -1 in the detached
 * process if the pid file could not be written.
 */
static int
detach(const char *pidfile, int pidfd)
{
	ssize_t	 n;
	char	 c = 'n';
	int	 p[2], fd;

	if (pipe2(p, O_CLOEXEC) == -1)
		fatal("pipe");
	switch (fork()) {
	case -1:
		fatal("fork");
	case 0:
		break;
	default:
		/* One byte: started.  End of file: it said why and exits. */
		close(p[1]);
		do {
			n = read(p[0], &c, 1);
		} while (n == -1 && errno == EINTR);
		_exit(n == 1 && c == 'y' ? 0 : 1);
	}
	close(p[0]);
	if (setsid() == -1)
		fatal("setsid");
	/* On failure p[1] stays open until exit, after the clean-up. */
	if (pidfd != -1 && pid_write(pidfile, pidfd) == -1)
		return -1;
	if (chdir("/") == -1)
		fatal("chdir /");
	if ((fd = open("/dev/null", O_RDWR)) == -1)
		fatal("/dev/null");
	(void)dup2(fd, STDIN_FILENO);
	(void)dup2(fd, STDOUT_FILENO);
	(void)dup2(fd, STDERR_FILENO);
	if (fd > STDERR_FILENO)
		close(fd);
	c = 'y';
	/* Lost, the byte becomes EOF: the starting process reports that. */
	if (write(p[1], &c, 1) != 1)
		log_debug("telling the starting process: %s", strerror(errno));
	close(p[1]);
	return 0;
}

/* Remove the pid file if it is still the one written, with our pid. */
static void
pid_remove(const char *path, int fd, const struct stat *sb)
{
	struct stat	 st;
	char		 buf[32], want[32];
	ssize_t		 n;

	snprintf(want, sizeof(want), "%ld\n", (long)getpid());
	if (lstat(path, &st) == 0 && st.st_dev == sb->st_dev &&
	    st.st_ino == sb->st_ino &&
	    (n = pread(fd, buf, sizeof(buf) - 1, 0)) > 0) {
		buf[n] = '\0';
		if (strcmp(buf, want) == 0)
			(void)unlink(path);
	}
	close(fd);
}

/*
 * For -n: what attaches a VM to this server, as the <shmem> element of
 * a libvirt domain and as QEMU options, with the vectors the server
 * hands each VM.  In the XML the path is escaped; in QEMU's option
 * list a comma is doubled, and the whole is quoted for a shell.
 */
static void
device_print(const char *path, unsigned int vectors)
{
	const char	*p;

	printf("\nlibvirt domain, in <devices>:\n"
	    "  <shmem name='ivserver'>\n"
	    "    <model type='ivshmem-doorbell'/>\n"
	    "    <server path='");
	for (p = path; *p != '\0'; p++) {
		if (*p == '&')
			fputs("&amp;", stdout);
		else if (*p == '<')
			fputs("&lt;", stdout);
		else if (*p == '\'')
			fputs("&apos;", stdout);
		else if ((unsigned char)*p < 0x20)
			printf("&#%d;", *p);
		else
			putchar(*p);
	}
	printf("'/>\n    <msi vectors='%u'/>\n  </shmem>\n", vectors);
	printf("QEMU:\n  -chardev 'socket,path=");
	for (p = path; *p != '\0'; p++) {
		if (*p == ',')
			fputs(",,", stdout);
		else if (*p == '\'')
			fputs("'\\''", stdout);
		else
			putchar(*p);
	}
	printf(",id=ivserver' -device ivshmem-doorbell,chardev=ivserver,"
	    "vectors=%u\n", vectors);
}

int
main(int argc, char *argv[])
{
	struct layout	 layout;
	struct server	 srv;
	struct qemu	 qemu;
	struct opts	 o;
	struct passwd	*pw;
	char		 qbuf[PATH_MAX], cbuf[PATH_MAX], pbuf[PATH_MAX];
	mode_t		 mode;
	struct stat	 pidsb;
	int		 rv, sigfd, pidfd = -1;

	log_init(1, LOG_DAEMON);	/* stderr until the daemon detaches */
	memset(&layout, 0, sizeof(layout));
	layout.shmfd = -1;
	memset(&srv, 0, sizeof(srv));
	srv.qemu.fd = srv.client.fd = srv.ipcfd = -1;
	srv.maxclients = MAXCLIENTS_DEFAULT;
	srv.timeout = TIMEOUT_DEFAULT * 1000;
	memset(&qemu, 0, sizeof(qemu));
	qemu.pid = -1;
	memset(&o, 0, sizeof(o));
	o.gid = (gid_t)-1;

	if (strcmp(getprogname(), "ivshmem-server") == 0)
		compat_options(argc, argv, &o, &srv, &layout);
	else
		options(argc, argv, &o, &srv, &layout);
	log_setverbose(o.verbose);
	if (layout.backing == BACKING_POSIX && !valid_shmname(layout.shmname))
		fatalx("-M %s: the name must be one '/' and a file name",
		    layout.shmname);

	/* Parse and check: -n needs no privileges and touches nothing. */
	if (layout_backing(&layout) == -1)
		exit(1);
	if (o.file != NULL)
		rv = layout_load(&layout, o.file);
	else if (srv.peermode)
		rv = layout_raw(&layout, o.rawsize ? o.rawsize : 4 << 20);
	else
		rv = layout_parse(&layout, "built-in layout", builtin_layout,
		    sizeof(builtin_layout));
	if (rv == -1)
		fatalx("%s: invalid layout", layout.file);
	srv.layout = &layout;
	srv.qemu.path = sockpath(o.qpath, "qemu.sock", o.nflag, o.gid, qbuf,
	    sizeof(qbuf));
	if (o.pidfile != NULL)
		o.pidfile = sockpath(o.pidfile, NULL, 1, o.gid, pbuf,
		    sizeof(pbuf));
	if (!srv.peermode)
		srv.client.path = sockpath(o.cpath, "client.sock", o.nflag,
		    o.gid, cbuf, sizeof(cbuf));
	if (o.qconf != NULL && qemu_load(&qemu, o.qconf, srv.qemu.path,
	    layout.nregions) == -1)
		fatalx("%s: invalid QEMU configuration", o.qconf);
	if (o.nflag) {
		if (o.user != NULL && getpwnam(o.user) == NULL)
			fatalx("-u %s: no such user", o.user);
		layout_print(&layout);
		if (o.qconf != NULL)
			qemu_print(&qemu);
		else
			device_print(srv.qemu.path, srv.peermode ?
			    srv.nvectors : layout.nregions);
		qemu_free(&qemu);
		layout_free(&layout);
		return 0;
	}
	pw = server_user(o.user);
	srv.launched = qemu.binary != NULL;
	qemu.ownpgrp = !o.dflag;

	/* Set up what both processes need, while still privileged. */
	raise_nofile(&srv, o.cflag);
	sigfd = signals_init();
	mode = o.gid == (gid_t)-1 ? 0600 : 0660;
	/*
	 * The client socket first: probing a live server there costs it
	 * a silent connection, while a probe of its QEMU socket looks
	 * like a VM arriving.
	 */
	if (srv.client.path != NULL &&
	    listener_open(&srv.client, mode, o.gid) == -1)
		exit(1);
	if (listener_open(&srv.qemu, mode, o.gid) == -1) {
		listener_close(&srv.client);
		exit(1);
	}
	if (layout_open_shm(&layout) == -1 ||
	    (!srv.peermode && layout_eventfds(&layout) == -1)) {
		listener_close(&srv.qemu);
		listener_close(&srv.client);
		layout_free(&layout);
		exit(1);
	}
	if (!o.dflag && o.pidfile != NULL &&
	    (pidfd = pid_open(o.pidfile, &pidsb)) == -1) {
		listener_close(&srv.qemu);
		listener_close(&srv.client);
		layout_free(&layout);
		exit(1);
	}
	if (!o.dflag) {
		if (detach(o.pidfile, pidfd) == -1) {
			close(pidfd);
			listener_close(&srv.qemu);
			listener_close(&srv.client);
			layout_free(&layout);
			exit(1);
		}
		log_init(0, LOG_DAEMON);
	}
	if (srv.peermode && layout.nregions > srv.nvectors)
		log_warnx("%u regions but %u vectors per peer: the vectors of "
		    "regions %u and on cannot be rung", layout.nregions,
		    srv.nvectors, srv.nvectors);
	if (srv.peermode)
		log_info("peer mode: %u vectors per peer, %ju bytes; peers on "
		    "%s", srv.nvectors, (uintmax_t)layout.size,
		    srv.qemu.path);
	else
		log_info("serving %u regions in %ju bytes; VMs on %s, "
		    "clients on %s", layout.nregions, (uintmax_t)layout.size,
		    srv.qemu.path, srv.client.path);

	/*
	 * Split: the serving process drops everything.  The parent keeps
	 * the listening sockets, the window and the eventfds, for the
	 * next serving process should this one die.
	 */
	rv = parent_main(&srv, pw, &qemu, sigfd, pidfd);

	listener_close(&srv.qemu);
	listener_close(&srv.client);
	layout_free(&layout);
	qemu_free(&qemu);
	if (pidfd != -1)
		pid_remove(o.pidfile, pidfd, &pidsb);
	free(srv.allow_uid);
	free(srv.allow_gid);
	return rv;
}
