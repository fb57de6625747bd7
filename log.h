/*
 * log.h: logging for both ivserver processes.
 */

#ifndef LOG_H
#define LOG_H

#include <stdarg.h>

#ifndef __dead
#define __dead	__attribute__((__noreturn__))
#endif

void	log_init(int, int);
void	log_procinit(const char *);
void	log_setverbose(int);
void	log_sandboxed(void);
void	log_warn(const char *, ...)
	    __attribute__((__format__(__printf__, 1, 2)));
void	log_warnx(const char *, ...)
	    __attribute__((__format__(__printf__, 1, 2)));
void	log_info(const char *, ...)
	    __attribute__((__format__(__printf__, 1, 2)));
void	log_debug(const char *, ...)
	    __attribute__((__format__(__printf__, 1, 2)));
void	logit(int, const char *, ...)
	    __attribute__((__format__(__printf__, 2, 3)));
void	vlog(int, const char *, va_list)
	    __attribute__((__format__(__printf__, 2, 0)));
__dead void fatal(const char *, ...)
	    __attribute__((__format__(__printf__, 1, 2)));
__dead void fatalx(const char *, ...)
	    __attribute__((__format__(__printf__, 1, 2)));

#endif /* LOG_H */
