/*
 * sandboxtest: install the serving process's sandbox (../sandbox.c) in
 * a child and check what it may and may not do.  One line per check:
 * "ok - what" or "not ok - what".
 */

#include <sys/types.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <linux/sockios.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "../ivserver.h"
#include "../log.h"

static int	 failures;
static int	 lsock = -1, csock = -1;	/* made before the sandbox */

static void
report(int good, const char *what)
{
	printf("%s - %s\n", good ? "ok" : "not ok", what);
	fflush(stdout);
	if (!good)
		failures++;
}

/* Run fn in a sandboxed child; return its wait status. */
static int
sandboxed(void (*fn)(void))
{
	pid_t	 pid;
	int	 status;

	fflush(stdout);
	if ((pid = fork()) == -1)
		fatal("fork");
	if (pid == 0) {
		sandbox_enter();
		fn();
		_exit(0);
	}
	if (waitpid(pid, &status, 0) == -1)
		fatal("waitpid");
	return status;
}

static int
killed_by_sigsys(int status)
{
	return WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS;
}

static void
do_unlink(void)
{
	(void)syscall(SYS_unlinkat, AT_FDCWD, "/nonexistent", 0);
}

static void
do_exec(void)
{
	char	*argv[] = { NULL };

	(void)syscall(SYS_execve, "/bin/true", argv, argv);
}

static void
do_mmap_exec(void)
{
	(void)mmap(NULL, 4096, PROT_READ | PROT_EXEC,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
}

static void
do_kill(void)
{
	(void)kill(getppid(), 0);
}

/* No signals by way of fcntl: F_SETOWN, F_SETSIG, O_ASYNC. */
static void
do_setown(void)
{
	(void)fcntl(STDIN_FILENO, F_SETOWN, getppid());
}

static void
do_async(void)
{
	(void)fcntl(STDIN_FILENO, F_SETFL, O_ASYNC);
}

static void
do_setsig(void)
{
	(void)fcntl(STDIN_FILENO, F_SETSIG, SIGKILL);
}

/* ioctl: SIOCOUTQ on a socket, and nothing else but TCGETS. */
static void
do_outq(void)
{
	int	 n = -1;

	_exit(ioctl(lsock, SIOCOUTQ, &n) == 0 && n == 0 ? 0 : 1);
}

static void
do_fionread(void)
{
	int	 n;

	(void)ioctl(lsock, FIONREAD, &n);
}

/* libc's own file access must fail softly, not kill. */
static void
do_open(void)
{
	int	 fd;

	fd = open("/etc/passwd", O_RDONLY);
	_exit(fd == -1 && errno == EACCES ? 0 : 1);
}

/* log.c's lines, to standard error and to syslog, under the filter. */
static void
do_log(void)
{
	log_procinit("sandboxtest");
	log_info("a line to standard error under the filter");
	log_init(0, LOG_DAEMON);
	log_info("a line to syslog under the filter");
	log_warn("and one with an error");
	_exit(0);
}

/*
 * What the poll loop does: poll, accept4, recvmsg, sendmsg with fds,
 * sendmmsg (a peer's queued messages), fcntl, close, malloc.  The
 * sockets are made before the sandbox.
 */

static void
do_loop(void)
{
	struct pollfd	 pfd;
	struct msghdr	 mh;
	struct iovec	 iov;
	union {
		struct cmsghdr	hdr;
		unsigned char	buf[CMSG_SPACE(3 * sizeof(int))];
	}		 cm;
	struct cmsghdr	*c;
	struct mmsghdr	 mm[2];
	char		 byte = 'x', two[2], *p;
	int		 s, fds[3], d;

	pfd.fd = lsock;
	pfd.events = POLLIN;
	if (poll(&pfd, 1, 5000) != 1)
		_exit(10);
	if ((s = accept4(lsock, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC))
	    == -1)
		_exit(11);
	if ((d = fcntl(s, F_DUPFD_CLOEXEC, 0)) == -1)
		_exit(12);
	fds[0] = fds[1] = fds[2] = d;
	memset(&mh, 0, sizeof(mh));
	memset(&cm, 0, sizeof(cm));
	iov.iov_base = &byte;
	iov.iov_len = 1;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cm.buf;
	mh.msg_controllen = sizeof(cm.buf);
	c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(fds));
	memcpy(CMSG_DATA(c), fds, sizeof(fds));
	if (sendmsg(s, &mh, MSG_NOSIGNAL) != 1)
		_exit(13);
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cm.buf;
	mh.msg_controllen = sizeof(cm.buf);
	if (recvmsg(csock, &mh, 0) != 1)
		_exit(14);
	memset(mm, 0, sizeof(mm));
	mm[0].msg_hdr.msg_iov = mm[1].msg_hdr.msg_iov = &iov;
	mm[0].msg_hdr.msg_iovlen = mm[1].msg_hdr.msg_iovlen = 1;
	if (sendmmsg(s, mm, 2, MSG_NOSIGNAL) != 2 ||
	    read(csock, two, sizeof(two)) != 2)
		_exit(16);
	if ((p = malloc(1 << 20)) == NULL)
		_exit(15);
	memset(p, 1, 1 << 20);
	free(p);
	close(d);
	close(s);
	_exit(0);
}

static void
loop_setup(void)
{
	struct sockaddr_un	 sun;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	/* An abstract name: nothing to clean up. */
	snprintf(sun.sun_path + 1, sizeof(sun.sun_path) - 1,
	    "ivserver-sandboxtest-%ld", (long)getpid());
	if ((lsock = socket(AF_UNIX, SOCK_STREAM, 0)) == -1 ||
	    bind(lsock, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    listen(lsock, 1) == -1 ||
	    (csock = socket(AF_UNIX, SOCK_STREAM, 0)) == -1 ||
	    connect(csock, (struct sockaddr *)&sun, sizeof(sun)) == -1)
		fatal("loop_setup");
}

int
main(void)
{
	int	 st;

	loop_setup();
	st = sandboxed(do_loop);
	report(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	    "poll, accept4, sendmsg and recvmsg with fds, sendmmsg, close, "
	    "malloc pass the filter");
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fprintf(stderr, "loop: status %#x\n", st);
	st = sandboxed(do_open);
	report(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	    "open fails with EACCES instead of killing");
	st = sandboxed(do_log);
	report(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	    "log lines to standard error and to syslog pass the filter");
	st = sandboxed(do_outq);
	report(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	    "ioctl SIOCOUTQ passes the filter");
	report(killed_by_sigsys(sandboxed(do_fionread)),
	    "ioctl FIONREAD kills with SIGSYS");
	report(killed_by_sigsys(sandboxed(do_setown)),
	    "fcntl F_SETOWN kills with SIGSYS");
	report(killed_by_sigsys(sandboxed(do_setsig)),
	    "fcntl F_SETSIG kills with SIGSYS");
	report(killed_by_sigsys(sandboxed(do_async)),
	    "fcntl F_SETFL (O_ASYNC) kills with SIGSYS");
	report(killed_by_sigsys(sandboxed(do_unlink)),
	    "unlink kills with SIGSYS");
	report(killed_by_sigsys(sandboxed(do_exec)),
	    "execve kills with SIGSYS");
	report(killed_by_sigsys(sandboxed(do_mmap_exec)),
	    "mmap with PROT_EXEC kills with SIGSYS");
	report(killed_by_sigsys(sandboxed(do_kill)),
	    "kill kills with SIGSYS");
	return failures ? 1 : 0;
}
