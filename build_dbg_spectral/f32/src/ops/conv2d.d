build_dbg_spectral/f32/src/ops/conv2d.o: src/ops/conv2d.c \
 src/ops/../core/scratch.h src/ops/blas.h src/ops/../core/common.h \
 src/ops/ops.h
src/ops/../core/scratch.h:
src/ops/blas.h:
src/ops/../core/common.h:
src/ops/ops.h:
