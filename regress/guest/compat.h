/*
 * compat.h: what libbsd gives the host build of ivctl and the guest's
 * static libc lacks; included first when guest.sh builds ivctl.
 */
long long	strtonum(const char *, long long, long long, const char **);
