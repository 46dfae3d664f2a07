build_dbg_spectral/f32/src/ops/cross_entropy.o: src/ops/cross_entropy.c \
 src/ops/ops.h src/ops/../core/common.h
src/ops/ops.h:
src/ops/../core/common.h:
