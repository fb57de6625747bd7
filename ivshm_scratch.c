/* Scratch: the shared helpers until libivshm.c is merged. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "ivshm.h"
#include "ivshm_scratch.h"

static uint64_t
ld64(const volatile void *w, uint64_t off)
{
	return (*(const volatile uint64_t *)(const volatile void *)
	    ((const volatile char *)w + off));
}

static uint32_t
ld32(const volatile void *w, uint64_t off)
{
	return (*(const volatile uint32_t *)(const volatile void *)
	    ((const volatile char *)w + off));
}

int
ivshm_window_check(const volatile void *w, uint64_t size, char *err,
    size_t errlen)
{
	uint32_t	n, off, rs, hs;

	if (size < sizeof(struct ivshm_header) || ld64(w, 0) != IVSHM_MAGIC) {
		snprintf(err, errlen, "no ivserver header");
		return (-1);
	}
	hs = ld32(w, 12);
	n = ld32(w, 24);
	off = ld32(w, 28);
	rs = ld32(w, 32);
	if (ld64(w, 16) != size || n > IVSHM_REGIONS_MAX ||
	    rs < sizeof(struct ivshm_region) || off % 8 || rs % 8 ||
	    off + (uint64_t)n * rs > hs || hs > size) {
		snprintf(err, errlen, "bad header");
		return (-1);
	}
	return (0);
}

int
ivshm_window_region(const volatile void *w, uint64_t size, uint32_t i,
    struct ivshm_region *r, char *err, size_t errlen)
{
	uint64_t	off, v[2];

	if (i >= ld32(w, 24)) {
		snprintf(err, errlen, "no region %u", i);
		return (-1);
	}
	off = ld32(w, 28) + (uint64_t)i * ld32(w, 32);
	v[0] = ld64(w, off);
	v[1] = ld64(w, off + 8);
	memcpy(r->name, v, 16);
	r->begin = ld64(w, off + 16);
	r->end = ld64(w, off + 24);
	r->vector = ld32(w, off + 32);
	r->flags = ld32(w, off + 36);
	if (memchr(r->name, 0, 16) == NULL || r->begin > r->end ||
	    r->end > size) {
		snprintf(err, errlen, "bad region %u", i);
		return (-1);
	}
	return (0);
}

int
ivshm_window_find(const volatile void *w, uint64_t size, const char *name,
    struct ivshm_region *r, char *err, size_t errlen)
{
	uint32_t	i;

	if (ivshm_window_check(w, size, err, errlen) == -1)
		return (-1);
	for (i = 0; i < ld32(w, 24); i++) {
		if (ivshm_window_region(w, size, i, r, err, errlen) == -1)
			return (-1);
		if (strcmp(r->name, name) == 0)
			return (0);
	}
	snprintf(err, errlen, "no region %s", name);
	return (-1);
}

void
ivshm_copy_in(void *dst, const volatile void *src, size_t len)
{
	const volatile unsigned char	*s = src;
	unsigned char			*d = dst;
	uint64_t			 v;

	while (len > 0 && ((uintptr_t)s & 7) != 0) {
		*d++ = *s++;
		len--;
	}
	for (; len >= 8; len -= 8, s += 8, d += 8) {
		v = *(const volatile uint64_t *)(const volatile void *)s;
		memcpy(d, &v, 8);
	}
	while (len-- > 0)
		*d++ = *s++;
}

void
ivshm_copy_out(volatile void *dst, const void *src, size_t len)
{
	volatile unsigned char	*d = dst;
	const unsigned char	*s = src;
	uint64_t		 v;

	while (len > 0 && ((uintptr_t)d & 7) != 0) {
		*d++ = *s++;
		len--;
	}
	for (; len >= 8; len -= 8, s += 8, d += 8) {
		memcpy(&v, s, 8);
		*(volatile uint64_t *)(volatile void *)d = v;
	}
	while (len-- > 0)
		*d++ = *s++;
}
