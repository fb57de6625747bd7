/*
 * host.c: the host side of the ivserver end-to-end guest test.
 *
 *	host -s client.sock [-b boots] [-n rings] [-t seconds] region ...
 *
 * Asks the server for every region on one connection and then answers
 * the guest: on a ring of a region's g2h eventfd it checks the words
 * the guest wrote at the start of the region (see init.c), writes its
 * own answer and writes h2g.  It never reconnects and never reopens an
 * fd, so a guest that reboots talks to the very same eventfds; that is
 * what the test is about.
 *
 * Prints "socket ..." per region and "ready" once it holds them all,
 * then, after n rings (by default every region once in each of the
 * boots), one "ok - ..."/"not ok - ..." line per boot.  Exits 1 on any
 * failure or after t seconds without a ring.
 */

#include <sys/types.h>

#include <err.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../ivclient.h"
#include "../lib.h"

/* The words at the start of every region; init.c has the same. */
#define MSG_GMAGIC	UINT64_C(0x49564753)
#define MSG_HXOR	UINT64_C(0x5a5a5a5a00000000)
enum {
	MSG_GUEST,
	MSG_HOST,
	MSG_BEGIN,
	MSG_END,
	MSG_VECTOR,
	MSG_BOOT,
	MSG_WORDS
};

#define BOOTS_MAX	8
#define REQ_TIMEOUT	5000	/* ms, for the client socket */

struct hregion {
	struct ivclient_region	 r;
	volatile uint64_t	*msg;
	unsigned long		 rings[BOOTS_MAX + 1];
	int			 bad;
};

static struct hregion	*regions;
static int		 nregions;
static volatile sig_atomic_t quit;

static void	 usage(void) __attribute__((__noreturn__));
static void	 onsignal(int);
static int	 answer(struct hregion *, unsigned int);

static void
usage(void)
{
	fprintf(stderr, "usage: host -s socket [-b boots] [-n rings] "
	    "[-t seconds] region ...\n");
	exit(2);
}

static void
onsignal(int sig)
{
	(void)sig;
	quit = 1;
}

/*
 * One ring: the guest wrote what it found in the header and then its
 * marker.  The offsets it found must be the socket's, the vector the
 * header's, the boot one the driver announced.
 */
static int
answer(struct hregion *h, unsigned int boots)
{
	struct ivclient_region	*r = &h->r;
	uint64_t		 cnt, mine, begin, end, vector, boot;
	ssize_t			 n;

	n = read(r->g2h, &cnt, sizeof(cnt));
	if (n == -1 && errno == EAGAIN)
		return (0);
	if (n != sizeof(cnt)) {
		warn("%s: read g2h", r->name);
		return (-1);
	}
	__sync_synchronize();
	mine = h->msg[MSG_GUEST];
	begin = h->msg[MSG_BEGIN];
	end = h->msg[MSG_END];
	vector = h->msg[MSG_VECTOR];
	boot = h->msg[MSG_BOOT];
	if (cnt != 1)
		warnx("%s: %" PRIu64 " rings at once", r->name, cnt);
	if (mine >> 32 != MSG_GMAGIC) {
		warnx("%s: no guest marker (0x%016" PRIx64 ")", r->name,
		    mine);
		h->bad = 1;
		return (0);
	}
	if (begin != r->begin || end != r->end || vector != r->vector) {
		warnx("%s: guest found 0x%" PRIx64 "-0x%" PRIx64 " vector %"
		    PRIu64 " in the header, the socket said 0x%" PRIx64
		    "-0x%" PRIx64 " vector %u", r->name, begin, end, vector,
		    r->begin, r->end, r->vector);
		h->bad = 1;
	}
	if (boot == 0 || boot > boots) {
		warnx("%s: ring from boot %" PRIu64 ", expected 1 to %u",
		    r->name, boot, boots);
		h->bad = 1;
		boot = 0;
	}
	h->rings[boot]++;
	h->msg[MSG_HOST] = mine ^ MSG_HXOR;
	__sync_synchronize();
	cnt = 1;
	if (write(r->h2g, &cnt, sizeof(cnt)) != sizeof(cnt)) {
		warn("%s: write h2g", r->name);
		return (-1);
	}
	return (1);
}

int
main(int argc, char *argv[])
{
	struct sigaction	 sa;
	struct pollfd		*pfd;
	const char		*sock = NULL;
	char			 missing[512];
	unsigned long		 want = 0, seen = 0;
	unsigned int		 boots = 1, b;
	struct ivshm_conn	*s;
	int			 ch, i, n, nok, timeout = 60, failed = 0;

	while ((ch = getopt(argc, argv, "b:n:s:t:")) != -1) {
		switch (ch) {
		case 'b':
			boots = getnum(optarg, 1, BOOTS_MAX, "-b");
			break;
		case 'n':
			want = getnum(optarg, 1, INT_MAX, "-n");
			break;
		case 's':
			sock = optarg;
			break;
		case 't':
			timeout = getnum(optarg, 1, 3600, "-t");
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (sock == NULL || argc == 0)
		usage();
	if (want == 0)
		want = (unsigned long)argc * boots;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = onsignal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	if ((s = ivclient_connect(sock, REQ_TIMEOUT)) == NULL)
		return (1);
	nregions = argc;
	if ((regions = calloc(nregions, sizeof(*regions))) == NULL ||
	    (pfd = calloc(nregions, sizeof(*pfd))) == NULL)
		err(1, NULL);
	for (i = 0; i < nregions; i++) {
		struct ivclient_region	*r = &regions[i].r;

		if (ivclient_request(s, argv[i], r, REQ_TIMEOUT) != 1)
			errx(1, "%s: the server does not give it", argv[i]);
		if (ivclient_check(r) == -1)
			return (1);
		if (r->end - r->begin < MSG_WORDS * 8)
			errx(1, "%s: region too small", r->name);
		if ((regions[i].msg = ivclient_map(r)) == NULL)
			return (1);
		printf("socket %s begin 0x%" PRIx64 " end 0x%" PRIx64
		    " vector %u\n", r->name, r->begin, r->end, r->vector);
		pfd[i].fd = r->g2h;
		pfd[i].events = POLLIN;
	}
	printf("ready\n");
	fflush(stdout);

	while (seen < want && !quit) {
		n = poll(pfd, nregions, timeout * 1000);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			err(1, "poll");
		if (n == 0) {
			warnx("no ring for %d s after %lu of %lu", timeout,
			    seen, want);
			failed = 1;
			break;
		}
		for (i = 0; i < nregions; i++) {
			if ((pfd[i].revents & (POLLIN | POLLERR | POLLHUP |
			    POLLNVAL)) == 0)
				continue;
			if ((n = answer(&regions[i], boots)) == -1)
				return (1);
			seen += n;
		}
	}

	/*
	 * One line per boot: every region rang and got its answer, on the
	 * fds this process got once, before the first boot.
	 */
	for (b = 1; b <= boots; b++) {
		nok = 0;
		missing[0] = '\0';
		for (i = 0; i < nregions; i++) {
			struct hregion	*h = &regions[i];

			if (h->rings[b] > 0 && !h->bad)
				nok++;
			else if (strlen(missing) + strlen(h->r.name) + 2 <
			    sizeof(missing)) {
				strlcat(missing, " ", sizeof(missing));
				strlcat(missing, h->r.name, sizeof(missing));
			}
		}
		if (nok == nregions)
			printf("ok - boot %u: the host answered all %d regions "
			    "on the fds it got before boot 1\n", b, nregions);
		else {
			printf("not ok - boot %u: the host answered all %d "
			    "regions (missing or bad:%s)\n", b, nregions,
			    missing);
			failed = 1;
		}
	}
	for (i = 0; i < nregions; i++)
		if (regions[i].rings[0] > 0)
			failed = 1;
	fflush(stdout);
	ivshm_close(s);
	return (failed || seen < want);
}
