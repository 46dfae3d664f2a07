build_dbg_spectral/f64/src/ops/linear.o: src/ops/linear.c src/ops/blas.h \
 src/ops/../core/common.h src/ops/ops.h
src/ops/blas.h:
src/ops/../core/common.h:
src/ops/ops.h:
