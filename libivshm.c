/*
 * libivshm.c: what the host and the guest halves of libivshm share:
 * reading the header of a window that someone else may have written,
 * copies to and from device memory, error strings.
 *
 * The window may be device memory (BAR 2 in a guest) and the other
 * side may rewrite it at any time: every load is a naturally aligned
 * volatile 32- or 64-bit load, each field is read once, and nothing
 * is believed before it has been checked against the window's size.
 */

#include <sys/types.h>

#include <endian.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ivshm.h"

#define HDR_MIN		40	/* the header of version 1 without extensions */
#define ENTRY_MIN	40	/* a version 1 table entry */

static uint64_t	ld64(const volatile void *, uint64_t);
static uint32_t	ld32(const volatile void *, uint64_t);

int
ivshm_errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list	 ap;

	if (err != NULL && errlen > 0) {
		va_start(ap, fmt);
		(void)vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/*
 * The runtime directory of ivserver for this user, by the rule the
 * server itself follows: /run/ivserver for the superuser, else
 * $XDG_RUNTIME_DIR/ivserver if that is an absolute path, else
 * /tmp/ivserver-UID.
 */
int
ivshm_rundir(char *buf, size_t len)
{
	const char	*xdg = getenv("XDG_RUNTIME_DIR");
	uid_t		 uid = geteuid();
	int		 n;

	if (uid == 0)
		n = snprintf(buf, len, "/run/ivserver");
	else if (xdg != NULL && xdg[0] == '/')
		n = snprintf(buf, len, "%s/ivserver", xdg);
	else
		n = snprintf(buf, len, "/tmp/ivserver-%lu",
		    (unsigned long)uid);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

static uint64_t
ld64(const volatile void *win, uint64_t off)
{
	const volatile unsigned char	*p = win;

	return le64toh(*(const volatile uint64_t *)(p + off));
}

static uint32_t
ld32(const volatile void *win, uint64_t off)
{
	const volatile unsigned char	*p = win;

	return le32toh(*(const volatile uint32_t *)(p + off));
}

int
ivshm_window_check(const volatile void *win, uint64_t winsize, char *err,
    size_t errlen)
{
	uint64_t	 magic, size, tabend, off, begin, end;
	uint32_t	 version, hsize, count, roff, rsize, i;
	unsigned char	 name[IVSHM_NAME_SIZE];
	uint64_t	 w[2];

	if (win == NULL || winsize < HDR_MIN)
		return ivshm_errf(err, errlen, "window of %ju bytes is too "
		    "small for a header", (uintmax_t)winsize);
	if ((uintptr_t)win % 8 != 0)
		return ivshm_errf(err, errlen, "window not 8-byte aligned");
	magic = ld64(win, offsetof(struct ivshm_header, magic));
	version = ld32(win, offsetof(struct ivshm_header, version));
	hsize = ld32(win, offsetof(struct ivshm_header, header_size));
	size = ld64(win, offsetof(struct ivshm_header, size));
	count = ld32(win, offsetof(struct ivshm_header, region_count));
	roff = ld32(win, offsetof(struct ivshm_header, region_offset));
	rsize = ld32(win, offsetof(struct ivshm_header, region_size));
	if (magic != IVSHM_MAGIC)
		return ivshm_errf(err, errlen, "header magic 0x%016jx, not "
		    "ivserver's", (uintmax_t)magic);
	if (version != IVSHM_VERSION)
		return ivshm_errf(err, errlen, "header version %u, this "
		    "library reads version %u", version, IVSHM_VERSION);
	if (size != winsize || (size & (size - 1)) != 0)
		return ivshm_errf(err, errlen, "header size 0x%jx, the "
		    "window has 0x%jx", (uintmax_t)size, (uintmax_t)winsize);
	if (count > IVSHM_REGIONS_MAX)
		return ivshm_errf(err, errlen, "header region_count %u above "
		    "%u", count, IVSHM_REGIONS_MAX);
	tabend = (uint64_t)roff + (uint64_t)count * rsize;
	if (roff < HDR_MIN || roff % 8 != 0 || rsize < ENTRY_MIN ||
	    rsize % 8 != 0 || tabend > hsize || hsize > size)
		return ivshm_errf(err, errlen, "header table of %u entries "
		    "of %u bytes at %u does not fit its %u bytes", count,
		    rsize, roff, hsize);
	for (i = 0; i < count; i++) {
		off = roff + (uint64_t)i * rsize;
		w[0] = *(const volatile uint64_t *)
		    ((const volatile unsigned char *)win + off);
		w[1] = *(const volatile uint64_t *)
		    ((const volatile unsigned char *)win + off + 8);
		memcpy(name, w, sizeof(name));
		begin = ld64(win, off + offsetof(struct ivshm_region, begin));
		end = ld64(win, off + offsetof(struct ivshm_region, end));
		if (memchr(name, '\0', sizeof(name)) == NULL)
			return ivshm_errf(err, errlen, "header region %u: "
			    "name not terminated", i);
		if (begin > end || end > size)
			return ivshm_errf(err, errlen, "header region %u: "
			    "0x%jx-0x%jx outside the window", i,
			    (uintmax_t)begin, (uintmax_t)end);
	}
	return 0;
}

/*
 * Each field is loaded once, so the entry is consistent with itself
 * even if the other side rewrites it meanwhile; check it again.
 */
int
ivshm_window_region(const volatile void *win, uint64_t winsize, uint32_t i,
    struct ivshm_region *out, char *err, size_t errlen)
{
	uint64_t	 off, w[2];
	uint32_t	 count, roff, rsize;

	if (ivshm_window_check(win, winsize, err, errlen) == -1)
		return -1;
	count = ld32(win, offsetof(struct ivshm_header, region_count));
	roff = ld32(win, offsetof(struct ivshm_header, region_offset));
	rsize = ld32(win, offsetof(struct ivshm_header, region_size));
	if (i >= count || count > IVSHM_REGIONS_MAX || roff < HDR_MIN ||
	    roff % 8 != 0 || rsize < ENTRY_MIN || rsize % 8 != 0 ||
	    (uint64_t)roff + ((uint64_t)i + 1) * rsize > winsize)
		return ivshm_errf(err, errlen, "no region %u", i);
	off = roff + (uint64_t)i * rsize;
	w[0] = *(const volatile uint64_t *)
	    ((const volatile unsigned char *)win + off);
	w[1] = *(const volatile uint64_t *)
	    ((const volatile unsigned char *)win + off + 8);
	memset(out, 0, sizeof(*out));
	memcpy(out->name, w, sizeof(out->name));
	out->begin = ld64(win, off + offsetof(struct ivshm_region, begin));
	out->end = ld64(win, off + offsetof(struct ivshm_region, end));
	out->vector = ld32(win, off + offsetof(struct ivshm_region, vector));
	out->flags = ld32(win, off + offsetof(struct ivshm_region, flags));
	if (memchr(out->name, '\0', sizeof(out->name)) == NULL ||
	    out->begin > out->end || out->end > winsize)
		return ivshm_errf(err, errlen, "header region %u changed "
		    "while being read", i);
	return 0;
}

int
ivshm_window_find(const volatile void *win, uint64_t winsize,
    const char *name, struct ivshm_region *out, char *err, size_t errlen)
{
	uint32_t	 i, count;

	if (ivshm_window_check(win, winsize, err, errlen) == -1)
		return -1;
	count = ld32(win, offsetof(struct ivshm_header, region_count));
	for (i = 0; i < count && i < IVSHM_REGIONS_MAX; i++) {
		if (ivshm_window_region(win, winsize, i, out, err,
		    errlen) == -1)
			return -1;
		if (strncmp(out->name, name, sizeof(out->name)) == 0 &&
		    strlen(name) < sizeof(out->name))
			return 0;
	}
	memset(out, 0, sizeof(*out));
	return ivshm_errf(err, errlen, "no region %s", name);
}

/*
 * The device side is accessed with the widest aligned load or store
 * that fits; the normal-memory side goes through memcpy, which may be
 * unaligned.
 */
void
ivshm_copy_in(void *dst, const volatile void *src, size_t len)
{
	const volatile unsigned char	*s = src;
	unsigned char			*d = dst;
	uint64_t			 q;
	uint32_t			 l;

	while (len > 0) {
		if ((uintptr_t)s % 8 == 0 && len >= 8) {
			q = *(const volatile uint64_t *)s;
			memcpy(d, &q, 8);
			s += 8, d += 8, len -= 8;
		} else if ((uintptr_t)s % 4 == 0 && len >= 4) {
			l = *(const volatile uint32_t *)s;
			memcpy(d, &l, 4);
			s += 4, d += 4, len -= 4;
		} else {
			*d++ = *s++;
			len--;
		}
	}
}

void
ivshm_copy_out(volatile void *dst, const void *src, size_t len)
{
	volatile unsigned char	*d = dst;
	const unsigned char	*s = src;
	uint64_t		 q;
	uint32_t		 l;

	while (len > 0) {
		if ((uintptr_t)d % 8 == 0 && len >= 8) {
			memcpy(&q, s, 8);
			*(volatile uint64_t *)d = q;
			s += 8, d += 8, len -= 8;
		} else if ((uintptr_t)d % 4 == 0 && len >= 4) {
			memcpy(&l, s, 4);
			*(volatile uint32_t *)d = l;
			s += 4, d += 4, len -= 4;
		} else {
			*d++ = *s++;
			len--;
		}
	}
}
