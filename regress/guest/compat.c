/*
 * compat.c: strtonum(3) for the guest build of ivctl, which links
 * statically against a libc without libbsd.
 */

#include <errno.h>
#include <limits.h>
#include <stdlib.h>

#include "compat.h"

long long
strtonum(const char *s, long long min, long long max, const char **errstr)
{
	long long	 v;
	char		*end;

	*errstr = NULL;
	errno = 0;
	if (min > max) {
		*errstr = "invalid";
		errno = EINVAL;
		return (0);
	}
	v = strtoll(s, &end, 10);
	if (end == s || *end != '\0') {
		*errstr = "invalid";
		errno = EINVAL;
		return (0);
	}
	if ((v == LLONG_MIN && errno == ERANGE) || v < min) {
		*errstr = "too small";
		errno = ERANGE;
		return (0);
	}
	if ((v == LLONG_MAX && errno == ERANGE) || v > max) {
		*errstr = "too large";
		errno = ERANGE;
		return (0);
	}
	return (v);
}
