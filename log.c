/*
 * log.c: logging for both ivserver processes: to standard error until
 * the daemon detaches, to syslog(3) afterwards.  Once a process has
 * named itself with log_procinit(), each of its lines says who spoke.
 */

#include <sys/types.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "log.h"

static int		 log_debug_mode = 1;	/* stderr, not syslog */
static int		 log_verbose;
static const char	*log_procname;
/*
 * How fatal() ends a process: exit(3), or _exit(2) once the process is
 * sandboxed, since the filter allows none of the work that atexit
 * handlers (a sanitizer's leak check, say) would do.
 */
static int		 log_quick_exit;

static void	vlog_errno(int, const char *, va_list)
		    __attribute__((__format__(__printf__, 2, 0)));

/* n_debug: log to standard error; else to syslog with facility. */
void
log_init(int n_debug, int facility)
{
	log_debug_mode = n_debug;
	if (!n_debug)
		openlog(getprogname(), LOG_PID | LOG_NDELAY, facility);
}

void
log_procinit(const char *procname)
{
	log_procname = procname;
}

void
log_setverbose(int v)
{
	log_verbose = v;
}

void
log_sandboxed(void)
{
	log_quick_exit = 1;
}

/*
 * One line, one write(2): lines from the two processes must not
 * interleave, and stdio may split a line into several writes.
 */
void
vlog(int pri, const char *fmt, va_list ap)
{
	char	 msg[1024], line[1200];
	int	 n, saved = errno;

	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	if (log_debug_mode) {
		n = snprintf(line, sizeof(line), "%s: %s%s%s\n",
		    getprogname(), log_procname ? log_procname : "",
		    log_procname ? ": " : "", msg);
		if (n < 0)
			n = 0;
		else if ((size_t)n >= sizeof(line)) {
			n = sizeof(line);
			line[n - 1] = '\n';
		}
		/* Nowhere to report a failed report. */
		if (write(STDERR_FILENO, line, n) == -1)
			n = 0;
	} else if (log_procname != NULL)
		syslog(pri, "%s: %s", log_procname, msg);
	else
		syslog(pri, "%s", msg);
	errno = saved;
}

void
logit(int pri, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vlog(pri, fmt, ap);
	va_end(ap);
}

/* The message, then the error errno holds. */
static void
vlog_errno(int pri, const char *fmt, va_list ap)
{
	char	 msg[1024];
	int	 saved = errno;

	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	logit(pri, "%s: %s", msg, strerror(saved));
	errno = saved;
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

static __dead void
log_exit(void)
{
	if (log_quick_exit)
		_exit(1);
	exit(1);
}

void
fatal(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vlog_errno(LOG_CRIT, fmt, ap);
	va_end(ap);
	log_exit();
}

void
fatalx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vlog(LOG_CRIT, fmt, ap);
	va_end(ap);
	log_exit();
}
