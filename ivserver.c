/*
 * ivserver: a host-side ivshmem server.
 *
 * main() reads top to bottom: options, layout, sockets, shared memory,
 * daemon, signals, the loop, clean-up.
 */

#include <sys/types.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "ivserver.h"

#define MAXCLIENTS_DEFAULT	1024
#define TIMEOUT_DEFAULT		10	/* seconds */
#define RUNDIR_ROOT		"/run/ivserver"

/* conf/layout.json, compiled in. */
static const char builtin_layout[] = {
#include "layout-default.inc"
};

static int		 log_stderr = 1;
static int		 log_verbose;
static int		 sigpipe[2] = { -1, -1 };

static __dead void	usage(void);
static void	vlog(int, const char *, va_list)
		    __attribute__((__format__(__printf__, 2, 0)));
static void	vlog_errno(int, const char *, va_list)
		    __attribute__((__format__(__printf__, 2, 0)));

static void
vlog(int pri, const char *fmt, va_list ap)
{
	if (log_stderr) {
		fprintf(stderr, "%s: ", getprogname());
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
	} else
		vsyslog(pri, fmt, ap);
}

static void
vlog_errno(int pri, const char *fmt, va_list ap)
{
	char	 buf[512];
	int	 saved = errno;

	vsnprintf(buf, sizeof(buf), fmt, ap);
	if (log_stderr)
		fprintf(stderr, "%s: %s: %s\n", getprogname(), buf,
		    strerror(saved));
	else
		syslog(pri, "%s: %s", buf, strerror(saved));
	errno = saved;
}

/* Log to stderr until the server detaches, to syslog afterwards. */
void
log_init(int to_stderr, int verbose)
{
	log_stderr = to_stderr;
	log_verbose = verbose;
	if (!to_stderr)
		openlog(getprogname(), LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void
log_warn(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vlog_errno(LOG_ERR, fmt, ap);
	va_end(ap);
}

void
log_warnx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vlog(LOG_ERR, fmt, ap);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vlog(LOG_INFO, fmt, ap);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list	 ap;

	if (!log_verbose)
		return;
	va_start(ap, fmt);
	vlog(LOG_DEBUG, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vlog_errno(LOG_CRIT, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vlog(LOG_CRIT, fmt, ap);
	va_end(ap);
	exit(1);
}

static __dead void
usage(void)
{
	fprintf(stderr, "usage: %s [-dnv] [-c maxclients] [-f layout] "
	    "[-g group]\n"
	    "\t[-M shmname | -m hugetlbdir] [-q qemu-socket] "
	    "[-s client-socket]\n\t[-t timeout]\n", getprogname());
	exit(1);
}

/* Signals only leave a byte in the pipe: the loop does the work. */
static void
sighandler(int sig)
{
	int		 saved = errno;
	unsigned char	 c = (unsigned char)sig;

	(void)write(sigpipe[1], &c, 1);
	errno = saved;
}

static void
signals_init(void)
{
	struct sigaction	 sa;
	int			 i;

	if (pipe(sigpipe) == -1)
		err(1, "pipe");
	for (i = 0; i < 2; i++)
		if (fcntl(sigpipe[i], F_SETFL, O_NONBLOCK) == -1 ||
		    fcntl(sigpipe[i], F_SETFD, FD_CLOEXEC) == -1)
			err(1, "fcntl");
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = sighandler;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
}

/*
 * The directory for the default socket paths: /run/ivserver for root,
 * else one private to the user.  It must not be writable by others.
 */
static const char *
rundir(void)
{
	static char	 dir[PATH_MAX];
	const char	*xdg = getenv("XDG_RUNTIME_DIR");
	struct stat	 st;
	uid_t		 uid = geteuid();
	int		 n;

	if (dir[0] != '\0')
		return dir;
	if (uid == 0)
		n = snprintf(dir, sizeof(dir), "%s", RUNDIR_ROOT);
	else if (xdg != NULL && xdg[0] == '/')
		n = snprintf(dir, sizeof(dir), "%s/ivserver", xdg);
	else
		n = snprintf(dir, sizeof(dir), "/tmp/ivserver-%lu",
		    (unsigned long)uid);
	if (n < 0 || (size_t)n >= sizeof(dir))
		errx(1, "runtime directory path too long");
	if (mkdir(dir, uid == 0 ? 0755 : 0700) == -1 && errno != EEXIST)
		err(1, "%s", dir);
	if (lstat(dir, &st) == -1)
		err(1, "%s", dir);
	if (!S_ISDIR(st.st_mode) || st.st_uid != uid ||
	    (st.st_mode & (S_IWGRP | S_IWOTH)) != 0)
		errx(1, "%s: not a directory owned by uid %lu and writable "
		    "only by it", dir, (unsigned long)uid);
	return dir;
}

/* Socket paths are kept absolute: the daemon changes to /. */
static const char *
sockpath(const char *path, const char *name)
{
	char	 buf[PATH_MAX], cwd[PATH_MAX];
	int	 n;
	char	*p;

	if (path != NULL && path[0] == '/')
		return path;
	if (path == NULL)
		n = snprintf(buf, sizeof(buf), "%s/%s", rundir(), name);
	else {
		if (getcwd(cwd, sizeof(cwd)) == NULL)
			err(1, "getcwd");
		n = snprintf(buf, sizeof(buf), "%s/%s", cwd, path);
	}
	if (n < 0 || (size_t)n >= sizeof(buf))
		errx(1, "%s: path too long", path ? path : name);
	if ((p = strdup(buf)) == NULL)
		err(1, NULL);
	return p;
}

/* Each client costs an fd: allow as many as the hard limit does. */
static void
raise_nofile(void)
{
	struct rlimit	 rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static gid_t
group_id(const char *name)
{
	struct group	*gr;
	const char	*errstr;
	gid_t		 gid;

	if ((gr = getgrnam(name)) != NULL)
		return gr->gr_gid;
	gid = (gid_t)strtonum(name, 0, INT_MAX, &errstr);
	if (errstr != NULL)
		errx(1, "-g %s: no such group", name);
	return gid;
}

int
main(int argc, char *argv[])
{
	struct layout	 layout;
	struct server	 srv;
	const char	*file = NULL, *qpath = NULL, *cpath = NULL;
	const char	*errstr;
	gid_t		 gid = (gid_t)-1;
	int		 ch, dflag = 0, nflag = 0, verbose = 0, rv;

	memset(&layout, 0, sizeof(layout));
	layout.shmfd = -1;
	memset(&srv, 0, sizeof(srv));
	srv.qemu.fd = srv.client.fd = -1;
	srv.maxclients = MAXCLIENTS_DEFAULT;
	srv.timeout = TIMEOUT_DEFAULT * 1000;

	while ((ch = getopt(argc, argv, "c:df:g:M:m:nq:s:t:v")) != -1) {
		switch (ch) {
		case 'c':
			srv.maxclients = strtonum(optarg, 1, 65536, &errstr);
			if (errstr != NULL)
				errx(1, "-c %s: %s", optarg, errstr);
			break;
		case 'd':
			dflag = 1;
			break;
		case 'f':
			file = optarg;
			break;
		case 'g':
			gid = group_id(optarg);
			break;
		case 'M':
			if (layout.backing == BACKING_HUGETLB)
				errx(1, "-M and -m exclude each other");
			layout.backing = BACKING_POSIX;
			layout.shmname = optarg;
			break;
		case 'm':
			if (layout.backing == BACKING_POSIX)
				errx(1, "-M and -m exclude each other");
			layout.backing = BACKING_HUGETLB;
			layout.hugedir = optarg;
			break;
		case 'n':
			nflag = 1;
			break;
		case 'q':
			qpath = optarg;
			break;
		case 's':
			cpath = optarg;
			break;
		case 't':
			srv.timeout = strtonum(optarg, 1, 3600, &errstr) * 1000;
			if (errstr != NULL)
				errx(1, "-t %s: %s", optarg, errstr);
			break;
		case 'v':
			verbose++;
			break;
		default:
			usage();
		}
	}
	if (argc != optind)
		usage();
	if (layout.backing == BACKING_POSIX && (layout.shmname[0] != '/' ||
	    strchr(layout.shmname + 1, '/') != NULL))
		errx(1, "-M %s: the name must be one '/' and a file name",
		    layout.shmname);

	if (layout_backing(&layout) == -1)
		exit(1);
	if (file != NULL)
		rv = layout_load(&layout, file);
	else
		rv = layout_parse(&layout, "built-in layout", builtin_layout,
		    sizeof(builtin_layout));
	if (rv == -1)
		errx(1, "%s: invalid layout", layout.file);
	if (nflag) {
		layout_print(&layout);
		layout_free(&layout);
		return 0;
	}

	srv.layout = &layout;
	srv.qemu.path = sockpath(qpath, "qemu.sock");
	srv.client.path = sockpath(cpath, "client.sock");
	raise_nofile();
	log_init(1, verbose);
	signals_init();
	srv.sigfd = sigpipe[0];

	/*
	 * The client socket first: probing a live server there costs it
	 * a silent connection, while a probe of its QEMU socket looks
	 * like a VM arriving.
	 */
	if (proto_listen(&srv.client, gid == (gid_t)-1 ? 0600 : 0660, gid) ==
	    -1)
		exit(1);
	if (proto_listen(&srv.qemu, gid == (gid_t)-1 ? 0600 : 0660, gid) ==
	    -1) {
		proto_unlisten(&srv.client);
		exit(1);
	}
	if (layout_open_shm(&layout) == -1 || layout_eventfds(&layout) == -1) {
		proto_unlisten(&srv.qemu);
		proto_unlisten(&srv.client);
		layout_free(&layout);
		exit(1);
	}
	if (!dflag) {
		if (daemon(0, 0) == -1)
			err(1, "daemon");
		log_init(0, verbose);
	}
	log_info("serving %u regions in %ju bytes; VMs on %s, clients on %s",
	    layout.nregions, (uintmax_t)layout.size, srv.qemu.path,
	    srv.client.path);

	rv = proto_loop(&srv);

	proto_unlisten(&srv.qemu);
	proto_unlisten(&srv.client);
	layout_free(&layout);
	return rv == 0 ? 0 : 1;
}
