/*
 * ivctl: ask a running ivserver, ring and wait on its regions, read and
 * write them (here), or join a peer-mode server as a peer (ivctl_peer.c);
 * see ivctl(8).
 *
 * Exit status: 0 done, 1 the command failed (no such region, a wait
 * that timed out, out of bounds), 2 a usage error or no server.
 */

#include <sys/types.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <ctype.h>
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ivshm.h"
#include "ivctl.h"

#define IO_CHUNK	65536

static uint64_t	number(const char *, const char *);
static struct ivshm_conn *conn(const char *);
static struct ivshm_port *port(struct ivshm_conn *, const char *);
static void	human(uint64_t, char *, size_t);
static void	when(uint64_t, char *, size_t);
static int	cmd_list(const char *);
static int	cmd_status(const char *);
static int	cmd_watch(const char *);
static void	print_event(const struct ivshm_event *);
static int	cmd_ring(const char *, int, char **);
static int	cmd_wait(const char *, int, char **);
static int	cmd_read(const char *, int, char **);
static int	cmd_write(const char *, int, char **);
static void	hexdump(const unsigned char *, size_t, uint64_t);
static int	host_main(const char *, int, char **);
static int	dev_main(int, char **);

void
usage(void)
{
	fprintf(stderr, "usage: ivctl [-s socket] list | status | watch\n"
	    "       ivctl [-s socket] ring region [count]\n"
	    "       ivctl [-s socket] wait region [-t ms]\n"
	    "       ivctl [-s socket] read region [offset [length]]\n"
	    "       ivctl [-s socket] write region [offset] < data\n"
	    "       ivctl -P [-S socket] peer\n"
	    "       ivctl -D [pci-address] list | info\n"
	    "       ivctl -D [pci-address] ring [-p peer] region|vector "
	    "[count]\n"
	    "       ivctl -D [pci-address] wait region|vector [-t ms]\n"
	    "       ivctl -D [pci-address] read region [offset [length]]\n"
	    "       ivctl -D [pci-address] write region [offset] < data\n");
	exit(EX_USAGE);
}

void
die(int status, const char *fmt, ...)
{
	va_list	 ap;

	fflush(stdout);
	fprintf(stderr, "ivctl: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(status);
}

/* A decimal, 0x hexadecimal or 0 octal number, whole. */
static uint64_t
number(const char *s, const char *what)
{
	unsigned long long	 v;
	char			*end;

	errno = 0;
	if (!isdigit((unsigned char)s[0]))
		die(EX_USAGE, "%s: %s is not a number", what, s);
	v = strtoull(s, &end, 0);
	if (errno != 0 || *end != '\0')
		die(EX_USAGE, "%s: %s is not a number", what, s);
	return v;
}

static struct ivshm_conn *
conn(const char *path)
{
	struct ivshm_conn	*c;
	char			 err[IVSHM_ERRSIZE];

	if ((c = ivshm_connect(path, err, sizeof(err))) == NULL)
		die(EX_USAGE, "%s", err);
	return c;
}

static struct ivshm_port *
port(struct ivshm_conn *c, const char *name)
{
	struct ivshm_port	*p;

	if ((p = ivshm_open(c, name)) == NULL)
		die(errno == ENOENT || errno == EINVAL ? EX_FAIL : EX_USAGE,
		    "%s", ivshm_error(c));
	return p;
}

/* As ivserver -n prints sizes. */
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

static void
when(uint64_t ms, char *buf, size_t len)
{
	struct tm	 tm;
	time_t		 t = (time_t)(ms / 1000);

	if (ms == 0 || gmtime_r(&t, &tm) == NULL)
		snprintf(buf, len, "-");
	else if (strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, len, "-");
}

/* The table of ivserver -n, from the window's header. */
static int
cmd_list(const char *path)
{
	struct ivshm_conn	*c = conn(path);
	struct ivshm_region	*r;
	uint64_t		 size, flags;
	char			 hs[32];
	int			 fd, i, n;

	if (ivshm_get_window(c, &fd, &size, &flags) == -1)
		die(EX_FAIL, "%s", ivshm_error(c));
	close(fd);
	if ((n = ivshm_list(c, &r)) == -1)
		die(EX_FAIL, "%s", ivshm_error(c));
	printf("%-15s %-14s %-14s %14s %6s\n", "name", "begin", "end",
	    "size", "vector");
	for (i = 0; i < n; i++)
		printf("%-15s 0x%012jx 0x%012jx %14ju %6u\n", r[i].name,
		    (uintmax_t)r[i].begin, (uintmax_t)r[i].end,
		    (uintmax_t)(r[i].end - r[i].begin), r[i].vector);
	human(size, hs, sizeof(hs));
	printf("total 0x%012jx (%s) in %d regions\n", (uintmax_t)size, hs,
	    n);
	free(r);
	ivshm_close(c);
	return 0;
}

static int
cmd_status(const char *path)
{
	struct ivshm_conn	*c = conn(path);
	struct ivshm_status	 st;
	char			 t[64];

	if (ivshm_get_status(c, &st) == -1)
		die(EX_FAIL, "%s", ivshm_error(c));
	when(st.vm_since, t, sizeof(t));
	if (st.flags & IVSHM_STATUS_VM)
		printf("vm attached\nvm_peer %u\nvm_pid %ju\nvm_since %s\n",
		    st.vm_peer, (uintmax_t)st.vm_pid, t);
	else
		printf("vm detached\nvm_since %s\n", t);
	printf("generation %ju\nclients %u\nwatchers %u\nregions %u\n"
	    "server_pid %u\nversion %s\n", (uintmax_t)st.generation,
	    st.clients, st.watchers, st.regions, st.server_pid, st.version);
	ivshm_close(c);
	return 0;
}

static void
print_event(const struct ivshm_event *ev)
{
	char	 t[64];

	when(ev->time, t, sizeof(t));
	if (ev->flags & IVSHM_EVENT_INITIAL)
		printf("state %s", ev->type == IVSHM_EVENT_ATTACH ?
		    "attached" : "detached");
	else
		printf("%s", ev->type == IVSHM_EVENT_ATTACH ?
		    "attach" : "detach");
	if (ev->peer != UINT32_MAX)
		printf(" peer %u pid %ju", ev->peer, (uintmax_t)ev->pid);
	printf(" generation %ju time %s\n", (uintmax_t)ev->generation, t);
	fflush(stdout);
}

/* One line per event until the server goes. */
static int
cmd_watch(const char *path)
{
	struct ivshm_conn	*c = conn(path);
	struct ivshm_event	 ev;

	if (ivshm_watch(c, &ev) == -1)
		die(EX_FAIL, "%s", ivshm_error(c));
	print_event(&ev);
	while (ivshm_next_event(c, &ev, -1) == 1)
		print_event(&ev);
	die(EX_FAIL, "%s", ivshm_error(c));
}

static int
cmd_ring(const char *path, int argc, char **argv)
{
	struct ivshm_conn	*c;
	struct ivshm_port	*p;
	uint64_t		 n = 1, i;

	if (argc < 1 || argc > 2)
		usage();
	if (argc == 2 && (n = number(argv[1], "count")) == 0)
		die(EX_USAGE, "count: 0 rings nothing");
	c = conn(path);
	p = port(c, argv[0]);
	for (i = 0; i < n; i++)
		if (ivshm_ring(p) == -1)
			die(EX_FAIL, "%s", ivshm_port_error(p));
	ivshm_port_close(p);
	ivshm_close(c);
	return 0;
}

/* wait region [-t ms], or wait -t ms region. */
static int
cmd_wait(const char *path, int argc, char **argv)
{
	struct ivshm_conn	*c;
	struct ivshm_port	*p;
	const char		*name = NULL;
	uint64_t		 t;
	int64_t			 n;
	int			 i, ms = -1;

	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "-t") == 0 && i + 1 < argc) {
			if ((t = number(argv[++i], "-t")) > INT_MAX)
				die(EX_USAGE, "-t: %s ms is too long", argv[i]);
			ms = (int)t;
		} else if (name == NULL && argv[i][0] != '-')
			name = argv[i];
		else
			usage();
	}
	if (name == NULL)
		usage();
	c = conn(path);
	p = port(c, name);
	/* The fds outlive the connection: nothing more to ask. */
	ivshm_close(c);
	if ((n = ivshm_wait(p, ms)) == -1)
		die(EX_FAIL, "%s", ivshm_port_error(p));
	if (n == 0)
		die(EX_FAIL, "%s: no ring within %d ms", name, ms);
	printf("%jd\n", (intmax_t)n);
	ivshm_port_close(p);
	return 0;
}

static void
hexdump(const unsigned char *buf, size_t len, uint64_t off)
{
	size_t	 i, j;

	for (i = 0; i < len; i += 16) {
		printf("%08jx ", (uintmax_t)(off + i));
		for (j = 0; j < 16; j++) {
			if (j == 8)
				putchar(' ');
			if (i + j < len)
				printf(" %02x", buf[i + j]);
			else
				printf("   ");
		}
		printf("  |");
		for (j = 0; j < 16 && i + j < len; j++)
			putchar(isprint(buf[i + j]) ? buf[i + j] : '.');
		printf("|\n");
	}
}

/*
 * Bounds against a region of size bytes, as offset [length]; for both
 * sides, host and guest.
 */
static void
span(const char *name, uint64_t size, int argc, char **argv,
    uint64_t *off, uint64_t *len, int haslen)
{
	*off = argc > 1 ? number(argv[1], "offset") : 0;
	if (*off > size)
		die(EX_FAIL, "%s: offset 0x%jx past its 0x%jx bytes", name,
		    (uintmax_t)*off, (uintmax_t)size);
	*len = size - *off;
	if (haslen && argc > 2) {
		*len = number(argv[2], "length");
		if (*len > size - *off)
			die(EX_FAIL, "%s: 0x%jx bytes at 0x%jx pass its end, "
			    "0x%jx", name, (uintmax_t)*len,
			    (uintmax_t)*off, (uintmax_t)size);
	}
}

/* read: len bytes of a mapped region from off, on stdout. */
static void
dump(const volatile unsigned char *base, uint64_t off, uint64_t len)
{
	unsigned char	*buf;
	uint64_t	 n;
	int		 tty = isatty(STDOUT_FILENO);

	if ((buf = malloc(IO_CHUNK)) == NULL)
		die(EX_FAIL, "%s", strerror(errno));
	while (len > 0) {
		n = len < IO_CHUNK ? len : IO_CHUNK;
		ivshm_copy_in(buf, base + off, (size_t)n);
		if (tty)
			hexdump(buf, (size_t)n, off);
		else if (fwrite(buf, 1, (size_t)n, stdout) != n)
			die(EX_FAIL, "stdout: %s", strerror(errno));
		off += n;
		len -= n;
	}
	if (fflush(stdout) == EOF)
		die(EX_FAIL, "stdout: %s", strerror(errno));
	free(buf);
}

/*
 * write: all of standard input, at most room bytes, or nothing; the
 * buffer, its length in *lenp.
 */
static unsigned char *
slurp(const char *name, uint64_t room, size_t *lenp)
{
	unsigned char	*buf;
	size_t		 len = 0, n;

	if (room >= SIZE_MAX || (buf = malloc(room + 1)) == NULL)
		die(EX_FAIL, "%s", strerror(ENOMEM));
	while ((n = fread(buf + len, 1, room + 1 - len, stdin)) > 0)
		if ((len += n) > room)
			die(EX_FAIL, "%s: the input is over the 0x%jx bytes "
			    "from there to its end", name, (uintmax_t)room);
	if (ferror(stdin))
		die(EX_FAIL, "stdin: %s", strerror(errno));
	*lenp = len;
	return buf;
}

static int
cmd_read(const char *path, int argc, char **argv)
{
	struct ivshm_conn	*c;
	struct ivshm_port	*p;
	uint64_t		 off, len;

	if (argc < 1 || argc > 3)
		usage();
	c = conn(path);
	p = port(c, argv[0]);
	ivshm_close(c);
	span(p->name, p->len, argc, argv, &off, &len, 1);
	if (ivshm_map(p, PROT_READ) == -1)
		die(EX_FAIL, "%s", ivshm_port_error(p));
	dump(p->base, off, len);
	ivshm_port_close(p);
	return 0;
}

/* All of standard input, or nothing if it does not fit. */
static int
cmd_write(const char *path, int argc, char **argv)
{
	struct ivshm_conn	*c;
	struct ivshm_port	*p;
	unsigned char		*buf;
	uint64_t		 off, room;
	size_t			 len;

	if (argc < 1 || argc > 2)
		usage();
	c = conn(path);
	p = port(c, argv[0]);
	ivshm_close(c);
	span(p->name, p->len, argc, argv, &off, &room, 0);
	buf = slurp(p->name, room, &len);
	if (ivshm_map(p, PROT_READ | PROT_WRITE) == -1)
		die(EX_FAIL, "%s", ivshm_port_error(p));
	ivshm_copy_out((volatile unsigned char *)p->base + off, buf, len);
	free(buf);
	ivshm_port_close(p);
	return 0;
}

static int
host_main(const char *path, int argc, char **argv)
{
	if (argc < 1)
		usage();
	if (strcmp(argv[0], "list") == 0 && argc == 1)
		return cmd_list(path);
	if (strcmp(argv[0], "status") == 0 && argc == 1)
		return cmd_status(path);
	if (strcmp(argv[0], "watch") == 0 && argc == 1)
		return cmd_watch(path);
	if (strcmp(argv[0], "ring") == 0)
		return cmd_ring(path, argc - 1, argv + 1);
	if (strcmp(argv[0], "wait") == 0)
		return cmd_wait(path, argc - 1, argv + 1);
	if (strcmp(argv[0], "read") == 0)
		return cmd_read(path, argc - 1, argv + 1);
	if (strcmp(argv[0], "write") == 0)
		return cmd_write(path, argc - 1, argv + 1);
	usage();
}

/*
 * The guest side (-D): the ivshmem device of the VM this runs in,
 * through libivshm's guest half.  Linux only.
 */
#ifdef __linux__

/* The device, with interrupts when the command waits for one. */
static struct ivshm_dev *
dev_open(const char *addr, int flags)
{
	struct ivshm_dev	*d;
	char			 err[IVSHM_ERRSIZE];

	if ((d = ivshm_dev_open(addr, flags, err, sizeof(err))) == NULL)
		die(EX_FAIL, "%s", err);
	/* The fallback's reason, so that a user can fix it. */
	if (ivshm_dev_strerror(d)[0] != '\0')
		fprintf(stderr, "ivctl: %s: %s\n", ivshm_dev_addr(d),
		    ivshm_dev_strerror(d));
	return d;
}

/* A region by name, or a vector by number for ring and wait. */
static void
dev_region(struct ivshm_dev *d, const char *name, struct ivshm_region *r,
    int vector)
{
	if (vector && isdigit((unsigned char)name[0])) {
		memset(r, 0, sizeof(*r));
		r->vector = (uint32_t)number(name, "vector");
		if (r->vector > 255)
			die(EX_USAGE, "vector %s: 0 to 255", name);
		snprintf(r->name, sizeof(r->name), "%u", r->vector);
		return;
	}
	if (ivshm_dev_find(d, name, r) == -1)
		die(EX_FAIL, "%s: %s", ivshm_dev_addr(d),
		    ivshm_dev_strerror(d));
}

/* The table of ivserver -n and of ivctl list, from the device. */
static int
dev_list(const char *addr)
{
	struct ivshm_dev	*d = dev_open(addr, 0);
	struct ivshm_header	 h;
	struct ivshm_region	 r;
	volatile void		*win;
	uint64_t		 size;
	uint32_t		 i;
	char			 err[IVSHM_ERRSIZE], hs[32];

	win = ivshm_dev_window(d, &size);
	if (ivshm_window_check(win, size, err, sizeof(err)) == -1)
		die(EX_FAIL, "%s: %s", ivshm_dev_addr(d), err);
	ivshm_copy_in(&h, win, sizeof(h));
	printf("%-15s %-14s %-14s %14s %6s\n", "name", "begin", "end",
	    "size", "vector");
	for (i = 0; i < h.region_count; i++) {
		if (ivshm_window_region(win, size, i, &r, err,
		    sizeof(err)) == -1)
			die(EX_FAIL, "%s: %s", ivshm_dev_addr(d), err);
		printf("%-15s 0x%012jx 0x%012jx %14ju %6u\n", r.name,
		    (uintmax_t)r.begin, (uintmax_t)r.end,
		    (uintmax_t)(r.end - r.begin), r.vector);
	}
	human(size, hs, sizeof(hs));
	printf("total 0x%012jx (%s) in %u regions\n", (uintmax_t)size, hs,
	    h.region_count);
	ivshm_dev_close(d);
	return 0;
}

static int
dev_info(const char *addr)
{
	struct ivshm_dev	*d = dev_open(addr, 0);
	struct ivshm_header	 h;
	volatile void		*win;
	uint64_t		 size;
	uint32_t		 pos;
	char			 err[IVSHM_ERRSIZE];

	if (ivshm_dev_position(d, &pos) == -1)
		die(EX_FAIL, "%s", ivshm_dev_strerror(d));
	win = ivshm_dev_window(d, &size);
	printf("device %s\nivposition %u\nwindow %ju\nvectors %u\n",
	    ivshm_dev_addr(d), pos, (uintmax_t)size, ivshm_dev_vectors(d));
	if (ivshm_window_check(win, size, err, sizeof(err)) == -1) {
		printf("header none (%s)\n", err);
	} else {
		ivshm_copy_in(&h, win, sizeof(h));
		printf("header %u\nregions %u\n", h.version, h.region_count);
		if ((h.flags & IVSHM_HEADER_GENERATION) &&
		    h.region_offset >= 48)
			printf("generation %ju\n", (uintmax_t)h.generation);
	}
	ivshm_dev_close(d);
	return 0;
}

/* ring [-p peer] region|vector [count] */
static int
dev_ring(const char *addr, int argc, char **argv)
{
	struct ivshm_dev	*d;
	struct ivshm_region	 r;
	uint64_t		 n = 1, peer = IVSHM_HOST_PEER, i;

	if (argc >= 2 && strcmp(argv[0], "-p") == 0) {
		if ((peer = number(argv[1], "-p")) > 0xffff)
			die(EX_USAGE, "-p: peer IDs go to 65535");
		argc -= 2;
		argv += 2;
	}
	if (argc < 1 || argc > 2)
		usage();
	if (argc == 2 && (n = number(argv[1], "count")) == 0)
		die(EX_USAGE, "count: 0 rings nothing");
	d = dev_open(addr, 0);
	dev_region(d, argv[0], &r, 1);
	for (i = 0; i < n; i++)
		if (ivshm_dev_ring(d, (uint32_t)peer, r.vector) == -1)
			die(EX_FAIL, "%s", ivshm_dev_strerror(d));
	ivshm_dev_close(d);
	return 0;
}

/* wait region|vector [-t ms]: MSI-X through vfio-pci, else polled. */
static int
dev_wait(const char *addr, int argc, char **argv)
{
	struct ivshm_dev	*d;
	struct ivshm_region	 r;
	const char		*name = NULL;
	uint64_t		 t;
	int			 i, n, ms = -1;

	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "-t") == 0 && i + 1 < argc) {
			if ((t = number(argv[++i], "-t")) > INT_MAX)
				die(EX_USAGE, "-t: %s ms is too long", argv[i]);
			ms = (int)t;
		} else if (name == NULL && argv[i][0] != '-')
			name = argv[i];
		else
			usage();
	}
	if (name == NULL)
		usage();
	d = dev_open(addr, IVSHM_DEV_MSIX | IVSHM_DEV_POLL);
	dev_region(d, name, &r, 1);
	if ((n = ivshm_dev_wait(d, r.vector, ms)) == -1)
		die(EX_FAIL, "%s", ivshm_dev_strerror(d));
	if (n == 0)
		die(EX_FAIL, "%s: no ring within %d ms", name, ms);
	printf("%d\n", n);
	ivshm_dev_close(d);
	return 0;
}

static int
dev_read(const char *addr, int argc, char **argv)
{
	struct ivshm_dev	*d;
	struct ivshm_region	 r;
	uint64_t		 off, len;

	if (argc < 1 || argc > 3)
		usage();
	d = dev_open(addr, 0);
	dev_region(d, argv[0], &r, 0);
	span(r.name, r.end - r.begin, argc, argv, &off, &len, 1);
	dump((const volatile unsigned char *)ivshm_dev_window(d, NULL) +
	    r.begin, off, len);
	ivshm_dev_close(d);
	return 0;
}

/* All of standard input, or nothing if it does not fit. */
static int
dev_write(const char *addr, int argc, char **argv)
{
	struct ivshm_dev	*d;
	struct ivshm_region	 r;
	unsigned char		*buf;
	uint64_t		 off, room;
	size_t			 len;

	if (argc < 1 || argc > 2)
		usage();
	d = dev_open(addr, 0);
	dev_region(d, argv[0], &r, 0);
	span(r.name, r.end - r.begin, argc, argv, &off, &room, 0);
	buf = slurp(r.name, room, &len);
	ivshm_copy_out((volatile unsigned char *)ivshm_dev_window(d, NULL) +
	    r.begin + off, buf, len);
	free(buf);
	ivshm_dev_close(d);
	return 0;
}

/* -D [pci-address] command: an address has a colon, commands do not. */
static int
dev_main(int argc, char **argv)
{
	const char	*addr = NULL;

	if (argc >= 1 && strchr(argv[0], ':') != NULL) {
		addr = argv[0];
		argc--;
		argv++;
	}
	if (argc < 1)
		usage();
	if (strcmp(argv[0], "list") == 0 && argc == 1)
		return dev_list(addr);
	if (strcmp(argv[0], "info") == 0 && argc == 1)
		return dev_info(addr);
	if (strcmp(argv[0], "ring") == 0)
		return dev_ring(addr, argc - 1, argv + 1);
	if (strcmp(argv[0], "wait") == 0)
		return dev_wait(addr, argc - 1, argv + 1);
	if (strcmp(argv[0], "read") == 0)
		return dev_read(addr, argc - 1, argv + 1);
	if (strcmp(argv[0], "write") == 0)
		return dev_write(addr, argc - 1, argv + 1);
	usage();
}

#else /* !__linux__ */

static int
dev_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	die(EX_USAGE, "-D: the guest side runs on Linux only");
}

#endif /* __linux__ */
int
main(int argc, char *argv[])
{
	const char	*path = NULL;
	int		 ch, dflag = 0, pflag = 0;

	while ((ch = getopt(argc, argv, "+DPS:s:")) != -1) {
		switch (ch) {
		case 'D':
			dflag = 1;
			break;
		case 'P':
			pflag = 1;
			break;
		case 'S':
		case 's':
			path = optarg;
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (dflag && (pflag || path != NULL))
		usage();
	if (dflag)
		return dev_main(argc, argv);
	if (pflag)
		return peer_main(path, argc, argv);
	return host_main(path, argc, argv);
}
