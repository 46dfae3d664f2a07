/* scratch.h: per-thread, grow-only scratch buffers for kernels (im2col columns, per-thread accumulators),
 * so that steady-state training and HVP loops allocate nothing. A slot's contents are undefined on return;
 * a kernel owns the slots it uses for the duration of one call. Slots: 0-1 inside parallel regions (per
 * thread), 2-3 on the calling thread (shared across the team). */
#ifndef HS_SCRATCH_H
#define HS_SCRATCH_H

#include <stddef.h>

#define SCRATCH_SLOTS 4

/* Returns a buffer of at least `bytes` bytes (64-byte aligned), or NULL with hs_error() set. */
void *scratch_get(int slot, size_t bytes);
/* Frees the calling thread's buffers. */
void scratch_release(void);

#endif
