/*
 * sandbox.c: what the serving process gives up before it talks to
 * anyone: root, the file system, resources, and all system calls but
 * the few its poll loop makes.  seccomp-bpf on Linux, pledge(2) on
 * OpenBSD, a warning elsewhere, or in a build made with -DNO_SANDBOX
 * for tools such as valgrind that cannot run under a filter.  Never on
 * the process that starts QEMU: a filter is inherited across fork and
 * exec.
 */

#include <sys/types.h>
#include <sys/resource.h>

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ivserver.h"
#include "log.h"

/*
 * chroot to an empty directory and become user for good.  Called as
 * root only; the check at the end is the one that matters.
 */
void
sandbox_drop(const struct passwd *pw, const char *root)
{
	gid_t	 gid = pw->pw_gid;
	uid_t	 uid = pw->pw_uid;

	tzset();	/* before /etc/localtime is out of reach */
	if (chroot(root) == -1)
		fatal("chroot %s", root);
	if (chdir("/") == -1)
		fatal("chdir /");
	if (setgroups(0, NULL) == -1)
		fatal("setgroups");
	if (setresgid(gid, gid, gid) == -1)
		fatal("setresgid %lu", (unsigned long)gid);
	if (setresuid(uid, uid, uid) == -1)
		fatal("setresuid %lu", (unsigned long)uid);
	if (uid != 0 && (setuid(0) != -1 || seteuid(0) != -1))
		fatalx("privileges could be regained after the drop");
	if (getgid() != gid || getegid() != gid || getuid() != uid ||
	    geteuid() != uid)
		fatalx("privilege drop did not take");
}

/*
 * No core files and no new processes.  RLIMIT_FSIZE stays: stderr may
 * be a log file that grows, and the filter already forbids opening
 * anything new.
 */
void
sandbox_limits(void)
{
	struct rlimit	 rl;

	rl.rlim_cur = rl.rlim_max = 0;
	if (setrlimit(RLIMIT_CORE, &rl) == -1)
		fatal("setrlimit RLIMIT_CORE");
	if (getuid() != 0 && setrlimit(RLIMIT_NPROC, &rl) == -1)
		fatal("setrlimit RLIMIT_NPROC");
}

#if defined(__linux__) && !defined(NO_SANDBOX)

#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <linux/sockios.h>

#include <endian.h>
#include <fcntl.h>
#include <stddef.h>

#if defined(__x86_64__)
#define SC_ARCH		AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define SC_ARCH		AUDIT_ARCH_AARCH64
#elif defined(__riscv) && __riscv_xlen == 64
#define SC_ARCH		AUDIT_ARCH_RISCV64
#endif

#if BYTE_ORDER == LITTLE_ENDIAN
#define SC_ARG_LO(n)	offsetof(struct seccomp_data, args[(n)])
#else
#define SC_ARG_LO(n)	(offsetof(struct seccomp_data, args[(n)]) + 4)
#endif

#define SC_NR		offsetof(struct seccomp_data, nr)
#define SC_RET(v)	BPF_STMT(BPF_RET | BPF_K, (v))
#define SC_ALLOW(nr)						\
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1),	\
	SC_RET(SECCOMP_RET_ALLOW)
#define SC_FAIL(nr, e)						\
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1),	\
	SC_RET(SECCOMP_RET_ERRNO | ((e) & SECCOMP_RET_DATA))
/* Allowed unless argument a has one of the bits in mask. */
#define SC_ALLOW_UNLESS(nr, a, mask)				\
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 4),	\
	BPF_STMT(BPF_LD | BPF_W | BPF_ABS, SC_ARG_LO(a)),	\
	BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, (mask), 1, 0),	\
	SC_RET(SECCOMP_RET_ALLOW),				\
	SC_RET(SECCOMP_RET_KILL_PROCESS)
/* Allowed only if argument a is one of three values. */
#define SC_ALLOW_ONLY(nr, a, v1, v2, v3)			\
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 6),	\
	BPF_STMT(BPF_LD | BPF_W | BPF_ABS, SC_ARG_LO(a)),	\
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (v1), 3, 0),	\
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (v2), 2, 0),	\
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (v3), 1, 0),	\
	SC_RET(SECCOMP_RET_KILL_PROCESS),			\
	SC_RET(SECCOMP_RET_ALLOW)

/*
 * What the serving process's poll loop, its allocator and its logging
 * need, each with its reason; anything else kills the process.
 */
static const struct sock_filter filter[] = {
	BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
	    offsetof(struct seccomp_data, arch)),
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SC_ARCH, 1, 0),
	SC_RET(SECCOMP_RET_KILL_PROCESS),
	BPF_STMT(BPF_LD | BPF_W | BPF_ABS, SC_NR),
#if defined(__x86_64__) && defined(__X32_SYSCALL_BIT)
	BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, __X32_SYSCALL_BIT, 0, 1),
	SC_RET(SECCOMP_RET_KILL_PROCESS),
#endif
	/*
	 * The C library may open files or reconnect to syslogd on its
	 * own: let that fail softly rather than kill.
	 */
#ifdef __NR_open
	SC_FAIL(__NR_open, EACCES),
#endif
	SC_FAIL(__NR_openat, EACCES),
	SC_FAIL(__NR_socket, EACCES),
	SC_FAIL(__NR_connect, EACCES),
	/* The event loop. */
#ifdef __NR_poll
	SC_ALLOW(__NR_poll),
#endif
	SC_ALLOW(__NR_ppoll),
	/* New VMs, peers and clients on the listening sockets. */
	SC_ALLOW(__NR_accept4),
	/* Requests, the signal pipe, QEMU's pid from the parent. */
	SC_ALLOW(__NR_read),
	SC_ALLOW(__NR_recvmsg),
	/* Log lines, to standard error or to syslogd. */
	SC_ALLOW(__NR_write),
	SC_ALLOW(__NR_writev),
	SC_ALLOW(__NR_sendto),
	/*
	 * Protocol messages with their descriptors, and to the parent
	 * the connections (and eventfds) of the VMs and peers admitted,
	 * for it to hold across a restart of this process.
	 */
	SC_ALLOW(__NR_sendmsg),
	/* A peer's queued messages in one call, each with its one fd. */
	SC_ALLOW(__NR_sendmmsg),
	/*
	 * SIOCOUTQ: whether a client has read the fds sent to it.  And
	 * TCGETS, isatty(3), which sanitizer runtimes ask of stderr.
	 */
	SC_ALLOW_ONLY(__NR_ioctl, 1, SIOCOUTQ, TCGETS, SIOCOUTQ),
	/* SO_PEERCRED: who each connection is, for the allow lists. */
	SC_ALLOW(__NR_getsockopt),
	/* Connections that end; a gone peer's eventfds, its news sent. */
	SC_ALLOW(__NR_close),
	/* Peer mode: each peer's vectors. */
	SC_ALLOW(__NR_eventfd2),
	/*
	 * Duplicates for a peer's output queue, and looking at flags.
	 * No F_SETOWN, F_SETSIG or O_ASYNC: they would let the process
	 * signal others of its uid, which kill(2) may not.
	 */
	SC_ALLOW_ONLY(__NR_fcntl, 1, F_DUPFD_CLOEXEC, F_GETFD, F_GETFL),
	/* The C library's standard I/O looks at its descriptors. */
	SC_ALLOW(__NR_fstat),
#ifdef __NR_newfstatat
	SC_ALLOW(__NR_newfstatat),
#endif
	/* Deadlines, timers and syslog's time stamps. */
	SC_ALLOW(__NR_clock_gettime),
	SC_ALLOW(__NR_gettimeofday),
	/* syslog(3) puts the pid in every line. */
	SC_ALLOW(__NR_getpid),
	/* The allocator and its locks. */
	SC_ALLOW(__NR_getrandom),
	SC_ALLOW(__NR_brk),
	SC_ALLOW(__NR_munmap),
	SC_ALLOW(__NR_mremap),
	SC_ALLOW(__NR_madvise),
	SC_ALLOW(__NR_futex),
	/* Signal handlers, which write to the signal pipe. */
	SC_ALLOW(__NR_rt_sigreturn),
	SC_ALLOW(__NR_rt_sigprocmask),
	SC_ALLOW(__NR_restart_syscall),
	/* The exit path of sanitizer runtimes. */
	SC_ALLOW(__NR_sigaltstack),
	SC_ALLOW(__NR_exit),
	SC_ALLOW(__NR_exit_group),
	/* Memory for the allocator, never executable. */
	SC_ALLOW_UNLESS(__NR_mmap, 2, PROT_EXEC),
	SC_ALLOW_UNLESS(__NR_mprotect, 2, PROT_EXEC),
	SC_RET(SECCOMP_RET_KILL_PROCESS)
};

/* Failing to install the filter is fatal: never run half-sandboxed. */
void
sandbox_enter(void)
{
#ifdef SC_ARCH
	struct sock_fprog	 prog;

	memset(&prog, 0, sizeof(prog));
	prog.len = sizeof(filter) / sizeof(filter[0]);
	prog.filter = (struct sock_filter *)(uintptr_t)filter;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1)
		fatal("prctl PR_SET_NO_NEW_PRIVS");
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == -1)
		fatal("prctl PR_SET_SECCOMP");
#else
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1)
		fatal("prctl PR_SET_NO_NEW_PRIVS");
	log_warnx("no seccomp filter for this architecture: running "
	    "without a system-call sandbox");
#endif
}

#elif defined(__OpenBSD__) && !defined(NO_SANDBOX)

void
sandbox_enter(void)
{
	if (pledge("stdio unix sendfd", NULL) == -1)
		fatal("pledge");
}

#else

void
sandbox_enter(void)
{
	log_warnx("no system-call sandbox on this system or in this build");
}

#endif
