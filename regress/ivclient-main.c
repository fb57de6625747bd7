/*
 * ivclient: ask an ivserver for regions and check what it hands out.
 *
 * For each name, on one connection, prints
 *	name 0xBEGIN 0xEND VECTOR
 * with the offsets from the socket and the vector from the in-shm
 * header, or "name unknown".  Exits 1 if anything failed a check.
 */

#include <err.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "ivclient.h"
#include "lib.h"

static void	usage(void);

static void
usage(void)
{
	fprintf(stderr, "usage: %s [-t seconds] -s socket name ...\n",
	    getprogname());
	exit(1);
}

int
main(int argc, char *argv[])
{
	struct ivclient_region	 r;
	struct ivshm_conn	*s;
	const char		*path = NULL;
	int			 ch, i, rv, status = 0, timeout = 5;

	while ((ch = getopt(argc, argv, "s:t:")) != -1) {
		switch (ch) {
		case 's':
			path = optarg;
			break;
		case 't':
			timeout = getnum(optarg, 1, 3600, "timeout");
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (path == NULL || argc == 0)
		usage();

	if ((s = ivclient_connect(path, timeout * 1000)) == NULL)
		return (1);
	for (i = 0; i < argc; i++) {
		rv = ivclient_request(s, argv[i], &r, timeout * 1000);
		if (rv == -1)
			return (1);	/* the connection is out of step */
		if (rv == 0) {
			printf("%s unknown\n", argv[i]);
			continue;
		}
		if (ivclient_check(&r) == -1)
			status = 1;
		else
			printf("%s 0x%012jx 0x%012jx %u\n", r.name,
			    (uintmax_t)r.begin, (uintmax_t)r.end, r.vector);
		ivclient_release(&r);
	}
	ivshm_close(s);
	return (status);
}
