/*
 * layout.c: the JSON layout, its regions and their offsets, the shared
 * memory window and the header at its start.
 */

#include <sys/types.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include <ctype.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ivserver.h"
#include "log.h"

#define ALIGN_MAX		(1ULL << 30)
#define HUGETLBFS_MAGIC		0x958458f6

static int	layout_place(struct layout *);
static int	shm_posix(struct layout *);
static int	shm_hugetlb(struct layout *);
static int	shm_write_header(struct layout *);

static int	lockfd = -1;	/* a named shm's lock, never passed on */

static int
valid_name(const char *s, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && strchr("_-.", s[i]) == NULL)
			return 0;
	return 1;
}

static int
parse_name(struct json *c, int t, const char *field, struct layout *l,
    unsigned int idx)
{
	struct region	*r = &l->regions[idx];
	const char	*s;
	size_t		 n;
	unsigned int	 i;

	s = json_text(c, t, &n);
	if (json_type(c, t) != JSON_STRING) {
		json_err(c, t, field, "must be a string");
		return -1;
	}
	if (n == 0 || n > REGION_NAME_MAX) {
		json_err(c, t, field, "\"%.*s\" must be 1 to %d bytes long",
		    (int)n, s, REGION_NAME_MAX);
		return -1;
	}
	if (!valid_name(s, n)) {
		json_err(c, t, field, "\"%.*s\" may hold only letters, digits, "
		    "'_', '-' and '.'", (int)n, s);
		return -1;
	}
	memcpy(r->name, s, n);
	r->name[n] = '\0';
	for (i = 0; i < idx; i++)
		if (strcmp(l->regions[i].name, r->name) == 0) {
			json_err(c, t, field, "\"%s\" is already the name of "
			    "regions[%u]", r->name, i);
			return -1;
		}
	return 0;
}

/* A size field, within the window's limit. */
static int
parse_size_field(struct json *c, int t, const char *field, uint64_t *v)
{
	const char	*s;
	size_t		 n;

	if (json_size(c, t, field, v) == -1)
		return -1;
	if (*v > WINDOW_MAX) {
		s = json_text(c, t, &n);
		json_err(c, t, field, "%.*s is larger than the limit of 1T",
		    (int)n, s);
		return -1;
	}
	return 0;
}

static void
parse_align(struct json *c, int t, const char *field, struct region *r)
{
	if (parse_size_field(c, t, field, &r->align) == -1)
		r->align = 0;
	else if ((r->align & (r->align - 1)) != 0) {
		json_err(c, t, field, "must be a power of two");
		r->align = 0;
	} else if (r->align > ALIGN_MAX) {
		json_err(c, t, field, "must be at most 1G");
		r->align = 0;
	}
}

static const char *const region_fields[] = { "name", "size", "align", NULL };
enum { R_NAME, R_SIZE, R_ALIGN };

static int
parse_region(struct json *c, int t, struct layout *l, unsigned int idx)
{
	struct json_members	 m;
	struct region		*r = &l->regions[idx];
	char			 what[32];

	snprintf(what, sizeof(what), "regions[%u]", idx);
	if (json_type(c, t) != JSON_OBJECT) {
		json_err(c, t, what, "must be an object");
		return json_skip(c, t);
	}
	memset(r, 0, sizeof(*r));
	r->g2h = r->h2g = -1;
	r->vector = idx;
	json_members(&m, c, t, what, region_fields);
	for (;;) {
		switch (json_member(&m)) {
		case R_NAME:
			if (parse_name(c, m.val, m.field, l, idx) == -1)
				r->name[0] = '?';	/* reported */
			continue;
		case R_SIZE:
			if (parse_size_field(c, m.val, m.field, &r->size) == -1)
				r->size = 1;		/* reported */
			continue;
		case R_ALIGN:
			parse_align(c, m.val, m.field, r);
			continue;
		}
		break;
	}
	(void)json_require(&m, R_NAME);
	(void)json_require(&m, R_SIZE);
	return m.next;
}

static int
parse_regions(struct json *c, int t, struct layout *l)
{
	unsigned int	 i, n = json_kids(c, t);

	if (json_type(c, t) != JSON_ARRAY) {
		json_err(c, t, "regions", "must be an array");
		return json_skip(c, t);
	}
	if (n == 0 || n > IVSHM_REGIONS_MAX) {
		json_err(c, t, "regions", "must hold 1 to %d regions, not %u",
		    IVSHM_REGIONS_MAX, n);
		return json_skip(c, t);
	}
	if ((l->regions = calloc(n, sizeof(*l->regions))) == NULL)
		fatal("regions");
	l->nregions = n;
	for (i = 0; i < n; i++)
		l->regions[i].g2h = l->regions[i].h2g = -1;
	t++;
	for (i = 0; i < n; i++)
		t = parse_region(c, t, l, i);
	return t;
}

static const char *const layout_fields[] = { "regions", "size", NULL };
enum { L_REGIONS, L_SIZE };

static void
parse_layout(struct json *c, struct layout *l)
{
	struct json_members	 m;

	json_members(&m, c, 0, "", layout_fields);
	for (;;) {
		switch (json_member(&m)) {
		case L_REGIONS:
			(void)parse_regions(c, m.val, l);
			continue;
		case L_SIZE:
			if (parse_size_field(c, m.val, m.field,
			    &l->minsize) == 0 &&
			    (l->minsize & (l->minsize - 1)) != 0)
				json_err(c, m.val, m.field,
				    "must be a power of two");
			continue;
		}
		break;
	}
	(void)json_require(&m, L_REGIONS);
}

static int
layout_json(struct layout *l, struct json *c)
{
	int	 errors;

	l->file = c->file;
	parse_layout(c, l);
	errors = c->errors;
	if (errors == 0 && layout_place(l) == -1)
		errors++;
	return errors ? -1 : 0;
}

/*
 * Parse and check a layout held in memory; name is used in messages.
 * Every error is reported; returns -1 if there was any.
 */
int
layout_parse(struct layout *l, const char *name, const char *js, size_t len)
{
	struct json	 c;
	int		 rv;

	l->file = name;
	if (json_parse(&c, name, js, len) == -1)
		return -1;
	rv = layout_json(l, &c);
	json_free(&c);
	return rv;
}

/* Read and check a layout file. */
int
layout_load(struct layout *l, const char *file)
{
	struct json	 c;
	int		 rv;

	l->file = file;
	if (json_load(&c, file) == -1)
		return -1;
	rv = layout_json(l, &c);
	json_free(&c);
	return rv;
}

static uint64_t
roundup_pow2(uint64_t v)
{
	uint64_t	 p = 1;

	while (p < v)
		p <<= 1;
	return p;
}

/*
 * Place the header at 0 and each region at the next multiple of its
 * alignment; the window is the total rounded up to a power of two,
 * because QEMU maps it as a PCI BAR.
 */
static int
layout_place(struct layout *l)
{
	uint64_t	 off, align, size;
	unsigned int	 i;

	if (l->page == 0)
		l->page = (uint64_t)sysconf(_SC_PAGESIZE);
	l->hdrsize = sizeof(struct ivshm_header) +
	    (uint64_t)l->nregions * sizeof(struct ivshm_region);
	off = l->hdrsize;
	for (i = 0; i < l->nregions; i++) {
		struct region *r = &l->regions[i];

		align = r->align > l->page ? r->align : l->page;
		off = (off + align - 1) & ~(align - 1);
		r->begin = off;
		r->end = off + r->size;
		off = (r->end + l->page - 1) & ~(l->page - 1);
		if (off > WINDOW_MAX) {
			log_warnx("%s: regions[%u]: \"%s\" ends past the 1T "
			    "limit of the window", l->file, i, r->name);
			return -1;
		}
	}
	size = roundup_pow2(off);
	if (l->minsize != 0) {
		if (l->minsize < off) {
			log_warnx("%s: size: %ju bytes is too small: the "
			    "regions need %ju", l->file, (uintmax_t)l->minsize,
			    (uintmax_t)off);
			return -1;
		}
		size = l->minsize;
	}
	if (size < l->page)
		size = l->page;
	l->size = size;
	return 0;
}

/*
 * Peer mode without a layout: a bare window of at least size bytes,
 * rounded up to a power of two, with no header, as QEMU's own server
 * makes it.
 */
int
layout_raw(struct layout *l, uint64_t size)
{
	l->file = "raw window";
	if (l->page == 0)
		l->page = (uint64_t)sysconf(_SC_PAGESIZE);
	if (size < l->page)
		size = l->page;
	if (size > WINDOW_MAX) {
		log_warnx("-l: a window of %ju bytes is larger than the 1T "
		    "limit", (uintmax_t)size);
		return -1;
	}
	l->nregions = 0;
	l->hdrsize = 0;
	l->size = roundup_pow2(size);
	return 0;
}

static const char *
backing_name(const struct layout *l)
{
	switch (l->backing) {
	case BACKING_POSIX:
		return "posix shm";
	case BACKING_HUGETLB:
		return "file";
	default:
		return "memfd";
	}
}

static void
human(uint64_t v, char *buf, size_t len)
{
	const char	*u = "KMGT";
	int		 i = -1;

	while ((v & 1023) == 0 && v >= 1024 && u[i + 1] != '\0') {
		v >>= 10;
		i++;
	}
	if (i < 0)
		snprintf(buf, len, "%ju", (uintmax_t)v);
	else
		snprintf(buf, len, "%ju%c", (uintmax_t)v, u[i]);
}

/* The table printed by -n. */
void
layout_print(const struct layout *l)
{
	const struct region	*r;
	char			 hs[32];
	unsigned int		 i;

	human(l->size, hs, sizeof(hs));
	if (l->nregions == 0) {
		printf("total 0x%012jx (%s) raw, no header, page %ju, %s\n",
		    (uintmax_t)l->size, hs, (uintmax_t)l->page,
		    backing_name(l));
		return;
	}
	printf("%-15s %-14s %-14s %14s %6s\n", "name", "begin", "end",
	    "size", "vector");
	for (i = 0; i < l->nregions; i++) {
		r = &l->regions[i];
		printf("%-15s 0x%012jx 0x%012jx %14ju %6u\n", r->name,
		    (uintmax_t)r->begin, (uintmax_t)r->end,
		    (uintmax_t)r->size, r->vector);
	}
	printf("total 0x%012jx (%s) in %u regions, header %ju bytes, "
	    "page %ju, %s\n", (uintmax_t)l->size, hs, l->nregions,
	    (uintmax_t)l->hdrsize, (uintmax_t)l->page, backing_name(l));
}

struct region *
layout_find(const struct layout *l, const char *name, size_t len)
{
	unsigned int	 i;

	if (len > REGION_NAME_MAX)
		return NULL;
	for (i = 0; i < l->nregions; i++)
		if (strlen(l->regions[i].name) == len &&
		    memcmp(l->regions[i].name, name, len) == 0)
			return &l->regions[i];
	return NULL;
}

/*
 * The hugetlbfs page size decides the alignment, so it must be known
 * before the layout is placed: call before layout_parse.
 */
int
layout_backing(struct layout *l)
{
	struct statfs	 sfs;

	if (l->backing != BACKING_HUGETLB)
		return 0;
	if (statfs(l->hugedir, &sfs) == -1) {
		log_warn("%s", l->hugedir);
		return -1;
	}
	if (sfs.f_type == HUGETLBFS_MAGIC)
		l->page = (uint64_t)sfs.f_bsize;
	return 0;
}

/*
 * A named object survives a crash, so a running server holds a lock on
 * it through a descriptor of its own.  A name nobody holds locked is
 * left over and is replaced; a locked one belongs to a live server.
 */
static int
shm_posix(struct layout *l)
{
	int	 fd, i;

	for (i = 0; i < 2; i++) {
		fd = shm_open(l->shmname, O_RDWR | O_CREAT | O_EXCL |
		    O_CLOEXEC, 0600);
		if (fd != -1 || errno != EEXIST)
			break;
		if ((lockfd = shm_open(l->shmname, O_RDONLY | O_CLOEXEC,
		    0)) != -1) {
			if (flock(lockfd, LOCK_EX | LOCK_NB) == -1) {
				log_warnx("shm %s is in use by a running server",
				    l->shmname);
				close(lockfd);
				lockfd = -1;
				return -1;
			}
			close(lockfd);
			lockfd = -1;
		}
		log_warnx("replacing stale shm %s", l->shmname);
		(void)shm_unlink(l->shmname);
	}
	if (fd == -1) {
		log_warn("shm_open %s", l->shmname);
		return -1;
	}
	if ((lockfd = shm_open(l->shmname, O_RDONLY | O_CLOEXEC, 0)) == -1 ||
	    flock(lockfd, LOCK_EX | LOCK_NB) == -1) {
		log_warn("lock shm %s", l->shmname);
		close(fd);
		(void)shm_unlink(l->shmname);
		return -1;
	}
	return fd;
}

static int
shm_hugetlb(struct layout *l)
{
	char	 path[PATH_MAX];
	int	 fd;

	if ((size_t)snprintf(path, sizeof(path), "%s/ivserver.XXXXXX",
	    l->hugedir) >= sizeof(path)) {
		log_warnx("%s: path too long", l->hugedir);
		return -1;
	}
	if ((fd = mkstemp(path)) == -1) {
		log_warn("%s", path);
		return -1;
	}
	(void)unlink(path);
	if (fcntl(fd, F_SETFD, FD_CLOEXEC) == -1) {
		log_warn("%s", path);
		close(fd);
		return -1;
	}
	return fd;
}

static int
shm_write_header(struct layout *l)
{
	struct ivshm_header	*h;
	struct ivshm_region	*d;
	size_t			 len;
	unsigned int		 i;
	void			*p;

	/* Map only the pages the header needs: the rest stays untouched. */
	len = (l->hdrsize + l->page - 1) & ~(l->page - 1);
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, l->shmfd, 0);
	if (p == MAP_FAILED) {
		log_warn("mmap shm header");
		return -1;
	}
	h = p;
	h->magic = htole64(IVSHM_MAGIC);
	h->version = htole32(IVSHM_VERSION);
	h->header_size = htole32((uint32_t)l->hdrsize);
	h->size = htole64(l->size);
	h->region_count = htole32(l->nregions);
	h->region_offset = htole32(sizeof(*h));
	h->region_size = htole32(sizeof(*d));
	h->flags = htole32(IVSHM_HEADER_GENERATION);
	h->generation = 0;
	d = (struct ivshm_region *)(h + 1);
	for (i = 0; i < l->nregions; i++) {
		memset(&d[i], 0, sizeof(d[i]));
		strlcpy(d[i].name, l->regions[i].name, sizeof(d[i].name));
		d[i].begin = htole64(l->regions[i].begin);
		d[i].end = htole64(l->regions[i].end);
		d[i].vector = htole32(l->regions[i].vector);
	}
	munmap(p, len);
	return 0;
}

/*
 * The generation in the header, bumped if asked: the serving process
 * maps the header's first page for it on first use (no PROT_EXEC, as
 * its sandbox requires) and starts from what it finds there, so that
 * a server adopting the window goes on counting.  Without a header,
 * or if the map fails, it counts in memory only.
 */
uint64_t
layout_generation(struct layout *l, int bump)
{
	static volatile uint64_t	*gen;
	static uint64_t			 count;
	static int			 mapped;
	void				*p;

	if (!mapped && l->nregions > 0 && l->shmfd != -1) {
		mapped = 1;
		p = mmap(NULL, (size_t)l->page, PROT_READ | PROT_WRITE,
		    MAP_SHARED, l->shmfd, 0);
		if (p == MAP_FAILED)
			log_warn("mmap shm header for the generation");
		else {
			gen = &((struct ivshm_header *)p)->generation;
			count = le64toh(*gen);
		}
	}
	if (bump) {
		count++;
		if (gen != NULL)
			*gen = htole64(count);
	}
	return count;
}

/* Create the window, size it without touching it, write the header. */
int
layout_open_shm(struct layout *l)
{
	int	 fd;

	switch (l->backing) {
	case BACKING_POSIX:
		fd = shm_posix(l);
		break;
	case BACKING_HUGETLB:
		fd = shm_hugetlb(l);
		break;
	default:
		fd = memfd_create("ivserver", MFD_CLOEXEC | MFD_ALLOW_SEALING);
		if (fd == -1)
			log_warn("memfd_create");
		break;
	}
	if (fd == -1)
		return -1;
	l->shmfd = fd;
	if (ftruncate(fd, (off_t)l->size) == -1) {
		log_warn("cannot size the %s to %ju bytes", backing_name(l),
		    (uintmax_t)l->size);
		goto fail;
	}
	/* No client may shrink the window under the others (SIGBUS). */
	if (l->backing == BACKING_MEMFD && fcntl(fd, F_ADD_SEALS,
	    F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) == -1) {
		log_warn("seal memfd");
		goto fail;
	}
	if (l->nregions > 0 && shm_write_header(l) == -1)
		goto fail;
	return 0;
 fail:
	layout_close_shm(l);
	return -1;
}

void
layout_close_shm(struct layout *l)
{
	if (l->shmfd != -1)
		close(l->shmfd);
	l->shmfd = -1;
	if (l->backing == BACKING_POSIX && lockfd != -1) {
		(void)shm_unlink(l->shmname);
		close(lockfd);
		lockfd = -1;
	}
}

/*
 * Two eventfds per region, made once: a host client that holds them
 * keeps working when the VM restarts.  Non-blocking from the start, as
 * QEMU makes them anyway: a client never sees them change under it.
 */
int
layout_eventfds(struct layout *l)
{
	unsigned int	 i;

	for (i = 0; i < l->nregions; i++) {
		l->regions[i].g2h = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		l->regions[i].h2g = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (l->regions[i].g2h == -1 || l->regions[i].h2g == -1) {
			log_warn("eventfd");
			return -1;
		}
	}
	return 0;
}

/*
 * Close the window and the eventfds but remember a named shm, which
 * layout_free then unlinks: what the parent keeps.
 */
void
layout_forget(struct layout *l)
{
	unsigned int	 i;

	if (l->shmfd != -1)
		close(l->shmfd);
	l->shmfd = -1;
	for (i = 0; i < l->nregions; i++) {
		if (l->regions[i].g2h != -1)
			close(l->regions[i].g2h);
		if (l->regions[i].h2g != -1)
			close(l->regions[i].h2g);
		l->regions[i].g2h = l->regions[i].h2g = -1;
	}
}

void
layout_free(struct layout *l)
{
	layout_forget(l);
	layout_close_shm(l);
	free(l->regions);
	l->regions = NULL;
	l->nregions = 0;
}
