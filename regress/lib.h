/*
 * lib.h: what the ivserver test programs share.
 *
 * A monotonic clock and waits that end at a deadline; checks that print
 * "ok - ..." or "not ok - ..." and count the failures; children and
 * files that go when the test ends, however it ends, and a watchdog;
 * messages that carry fds; what /proc tells of another process.
 */

#ifndef LIB_H
#define LIB_H

#include <sys/types.h>

#include <stdarg.h>
#include <stdint.h>

#define ARGV_MAX	32	/* arguments of a child, with the NULL */
#define RECV_MAXFDS	16	/* fds recv_fds keeps: more than any message */

struct sockaddr_un;

/* Time: milliseconds on the monotonic clock. */
long long	 now_ms(void);
int		 ms_left(long long);
void		 sleep_ms(int);
int		 fd_wait(int, int, long long);
int		 readable(int, int);

/* Checks, and the start of a test program. */
void		 test_init(const char *, int);
long long	 getnum(const char *, long long, long long, const char *);
int		 check(int, const char *, ...)
		    __attribute__((__format__(__printf__, 2, 3)));
int		 vcheck(int, const char *, va_list)
		    __attribute__((__format__(__printf__, 2, 0)));
int		 check_failures(void);

/* Children and files that do not outlive the test. */
void		 kill_add(pid_t);
void		 kill_del(pid_t);
void		 path_add(const char *);
void		 kill_all(void);
void		 die_after(int, const char *);
pid_t		 spawn(char *const [], int, int, int);
int		 reap(pid_t *, int *, int);
void		 argv_add(char **, int *, const char *);
void		 argv_free(char **, int);
void		 showfile(const char *, off_t *, const char *);
void		 make_tmpdir(char *, size_t, const char *);

/* Sockets and fds. */
int		 unix_addr(struct sockaddr_un *, const char *);
ssize_t		 recv_fds(int, void *, size_t, int *, int *);
void		 close_fds(const int *, int);
int		 msg_recv(int, int64_t *, int *, long long);

/* Other processes, from /proc. */
int		 count_fds(pid_t);
pid_t		 proc_child(pid_t, const char *);
int		 wait_shared(const pid_t *, int, int, int);

#endif /* LIB_H */
