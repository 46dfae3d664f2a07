/* scratch.c: per-thread grow-only scratch buffers (see scratch.h). */
#define _POSIX_C_SOURCE 200809L
#include "scratch.h"

#include <stdlib.h>

#include "common.h"

typedef struct {
    void *ptr;
    size_t bytes;
} ScratchSlot;

static _Thread_local ScratchSlot slots[SCRATCH_SLOTS];

void *scratch_get(int slot, size_t bytes) {
    if (slot < 0 || slot >= SCRATCH_SLOTS) {
        hs_error("internal error: scratch slot %d out of range", slot);
        return NULL;
    }
    ScratchSlot *s = &slots[slot];
    if (s->bytes >= bytes && s->ptr) return s->ptr;
    free(s->ptr);
    s->ptr = NULL;
    s->bytes = 0;
    size_t rounded = (bytes + 63) / 64 * 64;
    if (rounded == 0) rounded = 64;
    if (posix_memalign(&s->ptr, 64, rounded) != 0) {
        s->ptr = NULL;
        hs_error("out of memory allocating %zu bytes of scratch", bytes);
        return NULL;
    }
    s->bytes = rounded;
    return s->ptr;
}

void scratch_release(void) {
    for (int i = 0; i < SCRATCH_SLOTS; i++) {
        free(slots[i].ptr);
        slots[i].ptr = NULL;
        slots[i].bytes = 0;
    }
}
