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

void
usage(void)
{
	fprintf(stderr, "usage: ivctl [-s socket] list | status | watch\n"
	    "       ivctl [-s socket] ring region [count]\n"
	    "       ivctl [-s socket] wait region [-t ms]\n"
	    "       ivctl [-s socket] read region [offset [length]]\n"
	    "       ivctl [-s socket] write region [offset] < data\n"
	    "       ivctl -P [-S socket] peer\n");
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

/* Bounds against the region, as offset [length]. */
static void
span(const struct ivshm_port *p, int argc, char **argv, uint64_t *off,
    uint64_t *len, int haslen)
{
	*off = argc > 1 ? number(argv[1], "offset") : 0;
	if (*off > p->len)
		die(EX_FAIL, "%s: offset 0x%jx past its %zu bytes", p->name,
		    (uintmax_t)*off, p->len);
	*len = p->len - *off;
	if (haslen && argc > 2) {
		*len = number(argv[2], "length");
		if (*len > p->len - *off)
			die(EX_FAIL, "%s: 0x%jx bytes at 0x%jx pass its end, "
			    "0x%zx", p->name, (uintmax_t)*len,
			    (uintmax_t)*off, p->len);
	}
}

static int
cmd_read(const char *path, int argc, char **argv)
{
	struct ivshm_conn	*c;
	struct ivshm_port	*p;
	unsigned char		*buf;
	const volatile unsigned char *base;
	uint64_t		 off, len, n;
	int			 tty = isatty(STDOUT_FILENO);

	if (argc < 1 || argc > 3)
		usage();
	c = conn(path);
	p = port(c, argv[0]);
	ivshm_close(c);
	span(p, argc, argv, &off, &len, 1);
	if (ivshm_map(p, PROT_READ) == -1)
		die(EX_FAIL, "%s", ivshm_port_error(p));
	if ((buf = malloc(IO_CHUNK)) == NULL)
		die(EX_FAIL, "%s", strerror(errno));
	base = p->base;
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
	size_t			 len = 0, n;

	if (argc < 1 || argc > 2)
		usage();
	c = conn(path);
	p = port(c, argv[0]);
	ivshm_close(c);
	span(p, argc, argv, &off, &room, 0);
	if ((buf = malloc(room + 1)) == NULL)
		die(EX_FAIL, "%s", strerror(errno));
	while ((n = fread(buf + len, 1, room + 1 - len, stdin)) > 0)
		if ((len += n) > room)
			die(EX_FAIL, "%s: the input passes its end at 0x%zx",
			    p->name, p->len);
	if (ferror(stdin))
		die(EX_FAIL, "stdin: %s", strerror(errno));
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

int
main(int argc, char *argv[])
{
	const char	*path = NULL;
	int		 ch, pflag = 0;

	/* -D, the guest side, dispatches here too. */
	while ((ch = getopt(argc, argv, "+PS:s:")) != -1) {
		switch (ch) {
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
	if (pflag)
		return peer_main(path, argc, argv);
	return host_main(path, argc, argv);
}
