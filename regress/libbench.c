/*
 * libbench: what libivshm costs a host client, for make bench.
 *
 *	libbench -s socket [-l label] [-n count] [-r region]
 *
 * Times count (5000) handshakes each way, alternately so that both see
 * the same machine: raw, the protocol by hand with blocking calls, as
 * the least a client can do (connect, version, request, 16 bytes and
 * three fds, close); and through the library (ivshm_connect, ivshm_open,
 * ivshm_port_close, ivshm_close).  Prints bench.sh's rows: p50 / p99
 * of each, and the ratio of the medians against a target of 1.1; the
 * label goes after the figure's name.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <endian.h>
#include <err.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../ivshm.h"
#include "lib.h"

#define WARMUP		200
#define TARGET		1.1

static int64_t	 ns(void);
static int	 cmp(const void *, const void *);
static int64_t	 raw_once(const struct sockaddr_un *, const char *);
static int64_t	 lib_once(const char *, const char *);

static int64_t
ns(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int
cmp(const void *a, const void *b)
{
	int64_t	 x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/* The protocol by hand, every call blocking, no check it can skip. */
static int64_t
raw_once(const struct sockaddr_un *sun, const char *region)
{
	unsigned char	 req[2 + IVSHM_NAME_SIZE], rep[16];
	uint32_t	 v;
	size_t		 len = strlen(region), got = 0;
	int64_t		 t0 = ns();
	int		 fds[RECV_MAXFDS], nfds = 0, n, s;

	if ((s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    connect(s, (const struct sockaddr *)sun, sizeof(*sun)) == -1 ||
	    read(s, &v, sizeof(v)) != sizeof(v))
		err(1, "raw: %s", sun->sun_path);
	req[0] = (unsigned char)len;
	req[1] = 0;
	memcpy(req + 2, region, len);
	if (write(s, req, 2 + len) != (ssize_t)(2 + len))
		err(1, "raw: request");
	while (got < sizeof(rep)) {
		/* recv_fds adds what comes to fds and nfds. */
		if ((n = recv_fds(s, rep + got, sizeof(rep) - got, fds,
		    &nfds)) <= 0)
			err(1, "raw: reply");
		got += n;
	}
	if (nfds != 3)
		errx(1, "raw: %d fds", nfds);
	close_fds(fds, nfds);
	close(s);
	return ns() - t0;
}

static int64_t
lib_once(const char *path, const char *region)
{
	struct ivshm_conn	*c;
	struct ivshm_port	*p;
	char			 e[IVSHM_ERRSIZE];
	int64_t			 t0 = ns();

	if ((c = ivshm_connect(path, e, sizeof(e))) == NULL)
		errx(1, "%s", e);
	if ((p = ivshm_open(c, region)) == NULL)
		errx(1, "%s", ivshm_error(c));
	ivshm_port_close(p);
	ivshm_close(c);
	return ns() - t0;
}

int
main(int argc, char *argv[])
{
	struct sockaddr_un	 sun;
	const char		*path = NULL, *region = "ril", *label = "";
	int64_t			*raw, *lib;
	double			 ratio;
	long			 i, n = 5000;
	char			 a[64], b[64], r[32];
	int			 ch;

	while ((ch = getopt(argc, argv, "l:n:r:s:")) != -1) {
		switch (ch) {
		case 'l':
			label = optarg;
			break;
		case 'n':
			n = getnum(optarg, 1, 10000000, "count");
			break;
		case 'r':
			region = optarg;
			break;
		case 's':
			path = optarg;
			break;
		default:
			errx(1, "usage: libbench -s socket [-l label] "
			    "[-n count] [-r region]");
		}
	}
	if (path == NULL || unix_addr(&sun, path) == -1)
		errx(1, "usage: libbench -s socket [-n count] [-r region]");
	if ((raw = calloc(n, sizeof(*raw))) == NULL ||
	    (lib = calloc(n, sizeof(*lib))) == NULL)
		err(1, NULL);
	for (i = 0; i < WARMUP; i++) {
		raw_once(&sun, region);
		lib_once(path, region);
	}
	for (i = 0; i < n; i++) {
		if (i % 2 == 0) {
			raw[i] = raw_once(&sun, region);
			lib[i] = lib_once(path, region);
		} else {
			lib[i] = lib_once(path, region);
			raw[i] = raw_once(&sun, region);
		}
	}
	qsort(raw, n, sizeof(*raw), cmp);
	qsort(lib, n, sizeof(*lib), cmp);
	snprintf(a, sizeof(a), "%.1f / %.1f us", lib[n / 2] / 1e3,
	    lib[n * 99 / 100] / 1e3);
	snprintf(b, sizeof(b), "%.1f / %.1f us", raw[n / 2] / 1e3,
	    raw[n * 99 / 100] / 1e3);
	ratio = (double)lib[n / 2] / (double)raw[n / 2];
	snprintf(r, sizeof(r), "%.2fx", ratio);
	printf("row\t8. libivshm handshake p50 / p99%s\t%s\t%s\t%s\t"
	    "p50 <= %.1fx floor\t%s\n", label, a, b, r, TARGET,
	    ratio <= TARGET ? "yes" : "NO");
	free(raw);
	free(lib);
	return 0;
}
