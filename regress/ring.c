/*
 * ring: a host client that keeps one region's descriptors and rings
 * the guest with them on request, so that a test can show they still
 * work after the VM behind the server was restarted.
 *
 *	ring -s socket region
 *
 * Prints "ready BEGIN END VECTOR" once served, then reads commands, one
 * a line, from standard input: "ring" writes the host-to-guest eventfd
 * and prints "rang N", N the rings so far.  Exits at end of input.
 */

#include <err.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ivclient.h"
#include "lib.h"

static void	usage(void);

static void
usage(void)
{
	fprintf(stderr, "usage: %s -s socket region\n", getprogname());
	exit(1);
}

int
main(int argc, char *argv[])
{
	struct ivclient_region	 r;
	const char		*path = NULL;
	char			 line[64];
	uint64_t		 one = 1;
	unsigned long		 rings = 0;
	struct ivshm_conn	*c;
	int			 ch;

	while ((ch = getopt(argc, argv, "s:")) != -1) {
		switch (ch) {
		case 's':
			path = optarg;
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (path == NULL || argc != 1)
		usage();
	setvbuf(stdout, NULL, _IOLBF, 0);
	if ((c = ivclient_connect(path, 5000)) == NULL)
		return 1;
	if (ivclient_request(c, argv[0], &r, 5000) != 1 ||
	    ivclient_check(&r) == -1)
		errx(1, "%s: not served", argv[0]);
	ivshm_close(c);
	printf("ready 0x%jx 0x%jx %u\n", (uintmax_t)r.begin,
	    (uintmax_t)r.end, r.vector);
	while (fgets(line, sizeof(line), stdin) != NULL) {
		if (strcmp(line, "ring\n") != 0) {
			warnx("unknown command: %s", line);
			continue;
		}
		if (write(r.h2g, &one, sizeof(one)) != sizeof(one))
			err(1, "%s: host-to-guest eventfd", r.name);
		printf("rang %lu\n", ++rings);
	}
	ivclient_release(&r);
	return 0;
}
