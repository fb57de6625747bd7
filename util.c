/*
 * util.c: helpers more than one file uses: the monotonic clock, sizes,
 * the signal pipe, and stopping and reporting on a child process.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ivserver.h"
#include "log.h"

#define STOP_POLL	10	/* ms between looks at a stopping child */

static int	sigpipe[2] = { -1, -1 };

/* Milliseconds on the monotonic clock, for deadlines and timers. */
int64_t
now_ms(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * A size: a decimal number with an optional K, M, G or T suffix
 * (powers of 1024).  Returns 0 and sets *errstr on error.
 */
uint64_t
parse_size(const char *s, const char **errstr)
{
	char		 num[24];
	size_t		 n = strspn(s, "0123456789");
	long long	 v;
	unsigned int	 shift = 0;

	*errstr = NULL;
	if (n == 0 || n >= sizeof(num)) {
		*errstr = "not a size";
		return 0;
	}
	memcpy(num, s, n);
	num[n] = '\0';
	switch (s[n]) {
	case '\0':
		break;
	case 'K': case 'k':
		shift = 10;
		break;
	case 'M': case 'm':
		shift = 20;
		break;
	case 'G': case 'g':
		shift = 30;
		break;
	case 'T': case 't':
		shift = 40;
		break;
	default:
		*errstr = "has an unknown suffix (use K, M, G or T)";
		return 0;
	}
	if (s[n] != '\0' && s[n + 1] != '\0') {
		*errstr = "has trailing characters";
		return 0;
	}
	v = strtonum(num, 0, LLONG_MAX, errstr);
	if (*errstr != NULL)
		return 0;
	if ((unsigned long long)v > (UINT64_MAX >> shift)) {
		*errstr = "too large";
		return 0;
	}
	return (uint64_t)v << shift;
}

/* Signals only leave a byte in the pipe: the loop does the work. */
static void
sighandler(int sig)
{
	int		 saved = errno;
	unsigned char	 c = (unsigned char)sig;

	/* A full pipe already holds a wake-up: the loop reads them all. */
	if (write(sigpipe[1], &c, 1) == -1)
		c = 0;
	errno = saved;
}

/*
 * Catch the signals both processes act on and return the pipe's read
 * end.  Called again in the serving process, which gets a pipe of its
 * own: a byte must reach the process the signal was sent to.
 */
int
signals_init(void)
{
	struct sigaction	 sa;
	int			 i;

	if (sigpipe[0] != -1) {
		close(sigpipe[0]);
		close(sigpipe[1]);
	}
	if (pipe(sigpipe) == -1)
		fatal("pipe");
	for (i = 0; i < 2; i++)
		if (fcntl(sigpipe[i], F_SETFL, O_NONBLOCK) == -1 ||
		    fcntl(sigpipe[i], F_SETFD, FD_CLOEXEC) == -1)
			fatal("fcntl");
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = sighandler;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGCHLD, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	return sigpipe[0];
}

/*
 * Hold the signals signals_init() catches, across a fork: until the
 * child has a pipe of its own, a signal sent to it would land in the
 * parent's pipe and be lost to it.  Released in each process once its
 * handlers write where they should.
 */
void
signals_hold(int hold)
{
	sigset_t	 set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGCHLD);
	if (sigprocmask(hold ? SIG_BLOCK : SIG_UNBLOCK, &set, NULL) == -1)
		fatal("sigprocmask");
}

/*
 * The signals that arrived, all of them at once, as SIGNAL_* bits: a ^C
 * reaches the whole process group, and a child's exit must not be taken
 * for a crash when a stop was asked for in the same breath.
 */
int
signals_read(void)
{
	unsigned char	 sig;
	int		 got = 0;

	while (read(sigpipe[0], &sig, 1) == 1) {
		switch (sig) {
		case SIGTERM:
		case SIGINT:
			log_info("received signal %d, exiting", sig);
			got |= SIGNAL_STOP;
			break;
		case SIGHUP:
			log_info("SIGHUP ignored: the layout is fixed for the "
			    "life of the server");
			break;
		case SIGCHLD:
			got |= SIGNAL_CHILD;
			break;
		}
	}
	return got;
}

/* "exited with status 1", "killed by signal 9", from a wait status. */
const char *
exit_status(int status)
{
	static char	 buf[48];

	if (WIFSIGNALED(status))
		snprintf(buf, sizeof(buf), "killed by signal %d",
		    WTERMSIG(status));
	else if (WIFEXITED(status))
		snprintf(buf, sizeof(buf), "exited with status %d",
		    WEXITSTATUS(status));
	else
		snprintf(buf, sizeof(buf), "ended with wait status %#x",
		    status);
	return buf;
}

/*
 * Stop a child: SIGTERM (and SIGCONT, since a stopped process cannot
 * exit), then SIGKILL after timeout milliseconds.  Returns its wait
 * status, or -1 if it was no child of ours.
 */
int
child_stop(pid_t pid, const char *what, int timeout)
{
	struct timespec	 ts = { 0, STOP_POLL * 1000000 };
	int64_t		 deadline;
	pid_t		 r;
	int		 status;

	(void)kill(pid, SIGTERM);
	(void)kill(pid, SIGCONT);
	deadline = now_ms() + timeout;
	for (;;) {
		r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			return status;
		if (r == -1 && errno != EINTR)
			return -1;
		if (now_ms() >= deadline)
			break;
		nanosleep(&ts, NULL);
	}
	log_warnx("%s pid %ld still running after %d ms: SIGKILL", what,
	    (long)pid, timeout);
	(void)kill(pid, SIGKILL);
	while ((r = waitpid(pid, &status, 0)) == -1 && errno == EINTR)
		;
	return r == pid ? status : -1;
}

/*
 * Send data with up to IPC_FDS_MAX fds in one message, without
 * blocking: to a client, a VM, or the parent.  Returns bytes sent, 0
 * when the socket is full, -1 on error.
 */
ssize_t
send_fds(int s, const void *buf, size_t len, const int *fds, int nfds)
{
	struct msghdr	 mh;
	struct iovec	 iov;
	union {
		struct cmsghdr	hdr;
		unsigned char	buf[CMSG_SPACE(IPC_FDS_MAX * sizeof(int))];
	}		 cm;
	struct cmsghdr	*c;
	ssize_t		 n;

	if (nfds < 0 || nfds > IPC_FDS_MAX) {
		errno = EINVAL;
		return -1;
	}
	memset(&mh, 0, sizeof(mh));
	iov.iov_base = (void *)(uintptr_t)buf;
	iov.iov_len = len;
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
	do {
		n = sendmsg(s, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	} while (n == -1 && errno == EINTR);
	if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	return n;
}
