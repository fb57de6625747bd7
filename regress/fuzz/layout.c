/*
 * Fuzz the layout reader: JSON bytes in, through json.c and layout.c,
 * as ivserver -f reads them.  Every input must end in a placed layout
 * or in reported errors, with nothing leaked.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../ivserver.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct layout	 l;
	unsigned int	 i;

	memset(&l, 0, sizeof(l));
	l.shmfd = -1;
	if (layout_parse(&l, "fuzz", (const char *)data, len) == 0) {
		/* What the server relies on when it accepts a layout. */
		if (l.nregions == 0 || l.nregions > IVSHM_REGIONS_MAX ||
		    (l.size & (l.size - 1)) != 0 || l.size > WINDOW_MAX)
			abort();
		for (i = 0; i < l.nregions; i++)
			if (l.regions[i].begin < l.hdrsize ||
			    l.regions[i].begin % l.page != 0 ||
			    l.regions[i].end > l.size ||
			    l.regions[i].end <= l.regions[i].begin ||
			    (i > 0 && l.regions[i].begin <
			    l.regions[i - 1].end))
				abort();
	}
	layout_free(&l);
	return 0;
}
