/*
 * lib.c: what the ivserver test programs share.  See lib.h.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include <ctype.h>
#include <dirent.h>
#include <endian.h>
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib.h"

#define KILL_MAX	64	/* children to kill at the end */
#define PATHS_MAX	32	/* files and directories to remove */
#define EVENTFD_MAX	4096	/* eventfds of one process, to compare */

#ifdef MSG_CMSG_CLOEXEC
#define RECV_FLAGS	MSG_CMSG_CLOEXEC
#else
#define RECV_FLAGS	0
#endif

static void	 at_exit_once(void);
static void	 on_fatal(int);
static void	 on_alarm(int);
static int	 cmp_long(const void *, const void *);
static int	 eventfd_ids(pid_t, long *, int);
static int	 common(const long *, int, const long *, int);

static int			 failures;
/* Read by the signal handlers: slots and counts are sig_atomic_t. */
static volatile sig_atomic_t	 kills[KILL_MAX];
static char			 paths[PATHS_MAX][PATH_MAX];
static volatile sig_atomic_t	 npaths;
static volatile sig_atomic_t	 owner;		/* the pid that registered */
static char			 alarmmsg[128];
static size_t			 alarmlen;

/*
 * Time.
 */

long long
now_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

/* Milliseconds to a deadline, as poll(2) takes them: 0 once past. */
int
ms_left(long long deadline)
{
	long long	left;

	left = deadline - now_ms();
	if (left <= 0)
		return (0);
	return (left > INT_MAX ? INT_MAX : (int)left);
}

void
sleep_ms(int ms)
{
	long long	deadline;

	/* poll(2) ends early on a signal: SIGCHLD comes often here. */
	deadline = now_ms() + ms;
	while ((ms = ms_left(deadline)) > 0)
		poll(NULL, 0, ms);
}

/*
 * Wait for events on fd until the deadline: 1 when they came (or an
 * error or hang-up, which the next call shows), 0 once the deadline
 * has passed, -1 if poll(2) fails.  A deadline in the past looks once.
 */
int
fd_wait(int fd, int events, long long deadline)
{
	struct pollfd	pfd;
	int		left, n;

	pfd.fd = fd;
	pfd.events = events;
	for (;;) {
		left = ms_left(deadline);
		if ((n = poll(&pfd, 1, left)) == 1)
			return (1);
		if (n == -1 && errno != EINTR)
			return (-1);
		if (n == 0 && left == 0)
			return (0);
	}
}

/* Whether fd becomes readable within ms, 0 to look without waiting. */
int
readable(int fd, int ms)
{
	return (fd_wait(fd, POLLIN, now_ms() + ms) == 1);
}

/*
 * Checks: each prints one line, "ok - what" or "not ok - what".
 */

/*
 * The start of a test program called name: its lines go out as they
 * come, a peer that goes away is an error and no signal, and after
 * watchdog seconds it ends (see die_after).
 */
void
test_init(const char *name, int watchdog)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	die_after(watchdog, name);
}

/* A number from the command line, or the end, saying what is wrong. */
long long
getnum(const char *arg, long long min, long long max, const char *what)
{
	const char	*errstr;
	long long	 n;

	n = strtonum(arg, min, max, &errstr);
	if (errstr != NULL)
		errx(1, "%s %s: %s", what, arg, errstr);
	return (n);
}

int
check(int ok, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	vcheck(ok, fmt, ap);
	va_end(ap);
	return (ok);
}

int
vcheck(int ok, const char *fmt, va_list ap)
{
	printf("%s - ", ok ? "ok" : "not ok");
	vprintf(fmt, ap);
	printf("\n");
	/* Before any detail on stderr, and before a watchdog's line. */
	fflush(stdout);
	if (!ok)
		failures++;
	return (ok);
}

int
check_failures(void)
{
	return (failures);
}

/*
 * Children and files that do not outlive the test: registered, they
 * are killed and removed at exit, on a fatal signal or by the watchdog.
 */

static void
at_exit_once(void)
{
	if (owner != 0)
		return;
	owner = getpid();
	if (atexit(kill_all) != 0)
		errx(1, "atexit");
}

void
kill_add(pid_t pid)
{
	int	i;

	at_exit_once();
	for (i = 0; i < KILL_MAX; i++) {
		if (kills[i] == 0) {
			kills[i] = pid;
			return;
		}
	}
	errx(1, "more than %d children to kill", KILL_MAX);
}

/* Once reaped: its pid may be another process's soon. */
void
kill_del(pid_t pid)
{
	int	i;

	for (i = 0; i < KILL_MAX; i++)
		if (kills[i] == pid)
			kills[i] = 0;
}

/* Removed last added first: a directory before the files in it. */
void
path_add(const char *path)
{
	int	i;

	at_exit_once();
	for (i = 0; i < npaths; i++)
		if (strcmp(paths[i], path) == 0)
			return;
	if (npaths == PATHS_MAX)
		errx(1, "more than %d paths to remove", PATHS_MAX);
	if (strlcpy(paths[npaths], path, sizeof(paths[npaths])) >=
	    sizeof(paths[npaths]))
		errx(1, "%s: path too long", path);
	npaths++;
}

/*
 * Kill every registered child and remove every registered path, with
 * async-signal-safe calls only.  A child between fork and exec has
 * the handlers too, and must not do it.
 */
void
kill_all(void)
{
	int	i, saved = errno;

	if (owner == 0 || getpid() != owner)
		return;
	for (i = 0; i < KILL_MAX; i++)
		if (kills[i] > 0)
			kill(kills[i], SIGKILL);
	for (i = npaths - 1; i >= 0; i--)
		if (unlink(paths[i]) == -1)
			rmdir(paths[i]);
	errno = saved;
}

static void
on_fatal(int sig)
{
	(void)sig;
	kill_all();
	_exit(1);
}

static void
on_alarm(int sig)
{
	(void)sig;
	kill_all();
	(void)write(STDOUT_FILENO, alarmmsg, alarmlen);
	_exit(1);
}

/*
 * A broken server must fail the test, never hang it: after secs the
 * test says so on a line of its own and ends, and so it does, quietly,
 * on SIGHUP, SIGINT and SIGTERM.  Its children and files go with it.
 */
void
die_after(int secs, const char *name)
{
	struct sigaction	sa;

	at_exit_once();
	snprintf(alarmmsg, sizeof(alarmmsg), "not ok - %s ends within the "
	    "watchdog time\n", name);
	alarmlen = strlen(alarmmsg);
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_fatal;
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = on_alarm;
	sigaction(SIGALRM, &sa, NULL);
	alarm(secs);
}

/*
 * Run argv[0], found in PATH, with in, out and err as its standard
 * fds.  It is killed at the end of the test, and when the test dies
 * unannounced, where the system can do that.
 */
pid_t
spawn(char *const argv[], int in, int out, int errfd)
{
	pid_t	pid;

	switch (pid = fork()) {
	case -1:
		warn("fork");
		return (-1);
	case 0:
#ifdef __linux__
		prctl(PR_SET_PDEATHSIG, SIGKILL);
#endif
		if (dup2(in, STDIN_FILENO) == -1 ||
		    dup2(out, STDOUT_FILENO) == -1 ||
		    dup2(errfd, STDERR_FILENO) == -1)
			_exit(127);
		execvp(argv[0], argv);
		dprintf(STDERR_FILENO, "exec %s: %s\n", argv[0],
		    strerror(errno));
		_exit(127);
	}
	kill_add(pid);
	return (pid);
}

/*
 * Wait up to ms for the child *pid to exit: 1 once it has, with *pid
 * -1 and its status in *status, 0 while it runs.  0 ms looks once.
 */
int
reap(pid_t *pid, int *status, int ms)
{
	long long	deadline;
	pid_t		r;

	if (*pid <= 0)
		return (1);
	deadline = now_ms() + ms;
	for (;;) {
		r = waitpid(*pid, status, WNOHANG);
		if (r == *pid || (r == -1 && errno == ECHILD)) {
			kill_del(*pid);
			*pid = -1;
			return (1);
		}
		if (ms_left(deadline) == 0)
			return (0);
		sleep_ms(5);
	}
}

/* execv(3) takes writable strings: hand it copies. */
void
argv_add(char **argv, int *argc, const char *s)
{
	if (*argc >= ARGV_MAX - 1)
		errx(1, "more than %d arguments", ARGV_MAX - 1);
	if ((argv[(*argc)++] = strdup(s)) == NULL)
		err(1, NULL);
	argv[*argc] = NULL;
}

void
argv_free(char **argv, int argc)
{
	int	i;

	for (i = 0; i < argc; i++)
		free(argv[i]);
}

/* Copy to stderr what a child wrote to path since the last time. */
void
showfile(const char *path, off_t *shown, const char *what)
{
	char	 buf[4096];
	ssize_t	 n;
	int	 fd;

	if (path[0] == '\0' || (fd = open(path, O_RDONLY)) == -1)
		return;
	if (lseek(fd, *shown, SEEK_SET) != -1) {
		while ((n = read(fd, buf, sizeof(buf))) > 0) {
			fprintf(stderr, "--- %s stderr:\n", what);
			fwrite(buf, 1, n, stderr);
			*shown += n;
		}
	}
	close(fd);
}

/*
 * A private directory in TMPDIR, removed at the end.  It may hold a
 * socket, whose path must be short: dir is best small.
 */
void
make_tmpdir(char *dir, size_t size, const char *name)
{
	const char	*tmp;

	if ((tmp = getenv("TMPDIR")) == NULL || *tmp == '\0')
		tmp = "/tmp";
	if ((size_t)snprintf(dir, size, "%s/%s.XXXXXXXX", tmp, name) >= size)
		errx(1, "TMPDIR %s too long", tmp);
	if (mkdtemp(dir) == NULL)
		err(1, "mkdtemp %s", dir);
	path_add(dir);
}

/*
 * Sockets and fds.
 */

int
unix_addr(struct sockaddr_un *sun, const char *path)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	if (strlcpy(sun->sun_path, path, sizeof(sun->sun_path)) >=
	    sizeof(sun->sun_path)) {
		errno = ENAMETOOLONG;
		return (-1);
	}
	return (0);
}

/*
 * One recvmsg: bytes into buf, the fds of any SCM_RIGHTS message added
 * to fds[*nfds], close-on-exec.  *nfds counts every fd received, also
 * those past RECV_MAXFDS, or all with fds NULL, which are closed at
 * once: a message that carries too many is seen.  Returns the bytes
 * read, or -1 with errno set, EMSGSIZE when the kernel dropped fds.
 */
ssize_t
recv_fds(int s, void *buf, size_t len, int *fds, int *nfds)
{
	union {
		struct cmsghdr	hdr;
		unsigned char	buf[CMSG_SPACE(RECV_MAXFDS * sizeof(int))];
	}		 cm;
	struct msghdr	 mh;
	struct iovec	 iov;
	struct cmsghdr	*c;
	ssize_t		 n;
	size_t		 i, k;
	int		 fd;

	memset(&mh, 0, sizeof(mh));
	iov.iov_base = buf;
	iov.iov_len = len;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cm.buf;
	mh.msg_controllen = sizeof(cm.buf);
	if ((n = recvmsg(s, &mh, RECV_FLAGS)) == -1)
		return (-1);
	for (c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (i = 0; i < k; i++) {
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
			if (fds != NULL && *nfds < RECV_MAXFDS)
				fds[*nfds] = fd;
			else
				close(fd);
			(*nfds)++;
		}
	}
	if (mh.msg_flags & MSG_CTRUNC) {
		errno = EMSGSIZE;
		return (-1);
	}
	return (n);
}

/* Close what recv_fds kept of nfds. */
void
close_fds(const int *fds, int nfds)
{
	int	i;

	for (i = 0; i < nfds && i < RECV_MAXFDS; i++)
		close(fds[i]);
}

/*
 * One message of the ivshmem protocol, as QEMU's ivshmem-doorbell reads
 * it from the non-blocking socket s: a little-endian int64 with at most
 * one fd, whose bytes may come apart, the fd with any of them.  Returns
 * 1, or 0 at an end of file (or a reset) before it, or -1 with errno:
 * ETIMEDOUT once the deadline has passed, EPROTO at an end of file
 * inside it, EMSGSIZE when it carries more than one fd.
 */
int
msg_recv(int s, int64_t *val, int *fd, long long deadline)
{
	unsigned char	buf[8];
	uint64_t	le;
	size_t		got = 0;
	ssize_t		n;
	int		fds[RECV_MAXFDS], nfds = 0, saved;

	*fd = -1;
	while (got < sizeof(buf)) {
		n = recv_fds(s, buf + got, sizeof(buf) - got, fds, &nfds);
		if (n == -1 && (errno == EAGAIN || errno == EINTR)) {
			if ((n = fd_wait(s, POLLIN, deadline)) == 1)
				continue;
			if (n == 0)
				errno = ETIMEDOUT;
			goto fail;
		}
		/* A server that closes on bytes it did not read resets. */
		if (n == -1 && errno == ECONNRESET)
			n = 0;
		if (n == -1)
			goto fail;
		if (n == 0) {
			if (got == 0 && nfds == 0)
				return (0);
			errno = EPROTO;
			goto fail;
		}
		got += n;
	}
	if (nfds > 1) {
		errno = EMSGSIZE;
		goto fail;
	}
	memcpy(&le, buf, sizeof(le));
	*val = (int64_t)le64toh(le);
	*fd = nfds == 1 ? fds[0] : -1;
	return (1);
fail:
	saved = errno;
	close_fds(fds, nfds);
	errno = saved;
	return (-1);
}

/*
 * Other processes, from /proc: -1 where it cannot tell.
 */

int
count_fds(pid_t pid)
{
	char		 path[64];
	DIR		*d;
	struct dirent	*e;
	int		 n = 0;

	snprintf(path, sizeof(path), "/proc/%ld/fd", (long)pid);
	if ((d = opendir(path)) == NULL)
		return (-1);
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return (n);
}

/* The first child of parent whose name does not start with skip. */
pid_t
proc_child(pid_t parent, const char *skip)
{
	char		 path[32 + NAME_MAX], buf[512], *p;
	DIR		*d;
	struct dirent	*e;
	FILE		*f;
	pid_t		 found = -1;
	long		 ppid;

	if ((d = opendir("/proc")) == NULL)
		return (-1);
	while (found == -1 && (e = readdir(d)) != NULL) {
		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		if ((f = fopen(path, "r")) == NULL)
			continue;
		p = fgets(buf, sizeof(buf), f);
		fclose(f);
		/* pid (comm) state ppid: comm may hold anything. */
		if (p == NULL || (p = strrchr(buf, ')')) == NULL ||
		    sscanf(p + 1, " %*c %ld", &ppid) != 1 ||
		    ppid != (long)parent)
			continue;
		if (skip == NULL ||
		    strncmp(strchr(buf, '(') + 1, skip, strlen(skip)) != 0)
			found = (pid_t)strtol(e->d_name, NULL, 10);
	}
	closedir(d);
	return (found);
}

static int
cmp_long(const void *a, const void *b)
{
	long	x = *(const long *)a, y = *(const long *)b;

	return (x < y ? -1 : x > y);
}

/*
 * The eventfds pid holds, by the id the kernel shows in fdinfo, which
 * is the same in every process that holds one: sorted, each once.
 */
static int
eventfd_ids(pid_t pid, long *ids, int max)
{
	char		 dir[64], path[sizeof(dir) + NAME_MAX + 1], link[64];
	char		 line[128];
	DIR		*d;
	struct dirent	*e;
	FILE		*f;
	ssize_t		 n;
	long		 id;
	int		 i, k = 0, m;

	snprintf(dir, sizeof(dir), "/proc/%ld/fd", (long)pid);
	if ((d = opendir(dir)) == NULL)
		return (-1);
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		/* An fd closed meanwhile is not held. */
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if ((n = readlink(path, link, sizeof(link) - 1)) == -1)
			continue;
		link[n] = '\0';
		if (strcmp(link, "anon_inode:[eventfd]") != 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%ld/fdinfo/%s",
		    (long)pid, e->d_name);
		if ((f = fopen(path, "r")) == NULL)
			continue;
		id = -1;
		while (fgets(line, sizeof(line), f) != NULL)
			if (sscanf(line, "eventfd-id: %ld", &id) == 1)
				break;
		fclose(f);
		if (id == -1) {
			warnx("%s: no eventfd-id", path);
			closedir(d);
			return (-1);
		}
		if (k == max) {
			warnx("pid %ld: more than %d eventfds", (long)pid, max);
			closedir(d);
			return (-1);
		}
		ids[k++] = id;
	}
	closedir(d);
	qsort(ids, k, sizeof(*ids), cmp_long);
	for (m = 0, i = 0; i < k; i++)
		if (m == 0 || ids[i] != ids[m - 1])
			ids[m++] = ids[i];
	return (m);
}

/* How many values two sorted lists have in common. */
static int
common(const long *a, int na, const long *b, int nb)
{
	int	i = 0, j = 0, n = 0;

	while (i < na && j < nb) {
		if (a[i] < b[j])
			i++;
		else if (a[i] > b[j])
			j++;
		else {
			n++;
			i++;
			j++;
		}
	}
	return (n);
}

/*
 * Wait up to ms until every two of the n processes share exactly want
 * eventfds.  Each peer of an ivshmem server holds its own eventfds and
 * every other peer's, so this is how a test sees that the server's
 * join and leave messages have all been taken: a process has an fd
 * once it has read the message that carried it, and no longer once it
 * has closed it on a leave.  Returns 0, or -1 saying what was shared.
 */
int
wait_shared(const pid_t *pids, int n, int want, int ms)
{
	long		**ids;
	long long	  deadline;
	int		 *nids, i, j, ok, shared;

	if ((ids = calloc(n, sizeof(*ids))) == NULL ||
	    (nids = calloc(n, sizeof(*nids))) == NULL)
		err(1, NULL);
	for (i = 0; i < n; i++)
		if ((ids[i] = calloc(EVENTFD_MAX, sizeof(**ids))) == NULL)
			err(1, NULL);
	deadline = now_ms() + ms;
	for (;;) {
		for (i = 0; i < n; i++)
			nids[i] = eventfd_ids(pids[i], ids[i], EVENTFD_MAX);
		ok = 1;
		for (i = 0; i < n; i++)
			for (j = i + 1; j < n; j++)
				if (nids[i] == -1 || nids[j] == -1 ||
				    common(ids[i], nids[i], ids[j], nids[j]) !=
				    want)
					ok = 0;
		if (ok || ms_left(deadline) == 0)
			break;
		sleep_ms(10);
	}
	for (i = 0; !ok && i < n; i++) {
		for (j = i + 1; j < n; j++) {
			shared = nids[i] == -1 || nids[j] == -1 ? -1 :
			    common(ids[i], nids[i], ids[j], nids[j]);
			if (shared != want)
				warnx("pids %ld and %ld share %d eventfds "
				    "after %d ms, expected %d", (long)pids[i],
				    (long)pids[j], shared, ms, want);
		}
	}
	for (i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
	free(nids);
	return (ok ? 0 : -1);
}
