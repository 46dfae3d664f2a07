/* scratch.h: per-thread, grow-only scratch buffers for kernels (im2col columns, per-thread accumulators),
 * so that steady-state training and HVP loops allocate nothing. A slot's contents are undefined on return;
 * a kernel owns the slots it uses for the duration of one call. Slots 0-4 are used inside parallel
 * regions (each thread its own), 5-7 on the calling thread (shared across the team), 8-12 by src/curvature
 * for its per-chunk buffers. */
#ifndef HS_SCRATCH_H
#define HS_SCRATCH_H

#include <stddef.h>

#define SCRATCH_SLOTS 13

/* Returns a buffer of at least `bytes` bytes (64-byte aligned), or NULL with hs_error() set. */
void *scratch_get(int slot, size_t bytes);
/* Frees the calling thread's buffers. */
void scratch_release(void);

#endif
