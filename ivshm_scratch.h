/* Scratch: the shared helpers until libivshm.c is merged. */
#ifndef IVSHM_ERRSIZE
#include <stddef.h>
#define IVSHM_ERRSIZE		256
int	ivshm_window_check(const volatile void *, uint64_t, char *, size_t);
int	ivshm_window_region(const volatile void *, uint64_t, uint32_t,
	    struct ivshm_region *, char *, size_t);
int	ivshm_window_find(const volatile void *, uint64_t, const char *,
	    struct ivshm_region *, char *, size_t);
void	ivshm_copy_in(void *, const volatile void *, size_t);
void	ivshm_copy_out(volatile void *, const void *, size_t);
#endif
