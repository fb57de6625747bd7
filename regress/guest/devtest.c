/*
 * devtest.c: libivshm's guest half against what it must refuse, run on
 * the host by guest.sh.
 *
 *	devtest address|- [msix|poll|fallback]
 *
 * Opens the device at address ("-": the first ivshmem device) and
 * prints "open ADDR" or "error: REASON"; exits 0 if the open worked.
 */

#include <stdio.h>
#include <string.h>

#include "ivshm.h"

int
main(int argc, char *argv[])
{
	struct ivshm_dev	*d;
	char			 err[IVSHM_ERRSIZE];
	int			 flags = 0;

	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: devtest address|- "
		    "[msix|poll|fallback]\n");
		return (2);
	}
	if (argc == 3 && strcmp(argv[2], "msix") == 0)
		flags = IVSHM_DEV_MSIX;
	else if (argc == 3 && strcmp(argv[2], "poll") == 0)
		flags = IVSHM_DEV_POLL;
	else if (argc == 3 && strcmp(argv[2], "fallback") == 0)
		flags = IVSHM_DEV_MSIX | IVSHM_DEV_POLL;
	d = ivshm_dev_open(strcmp(argv[1], "-") == 0 ? NULL : argv[1], flags,
	    err, sizeof(err));
	if (d == NULL) {
		printf("error: %s\n", err);
		return (1);
	}
	printf("open %s\n", ivshm_dev_addr(d));
	ivshm_dev_close(d);
	return (0);
}
