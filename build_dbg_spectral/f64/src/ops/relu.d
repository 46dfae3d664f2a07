build_dbg_spectral/f64/src/ops/relu.o: src/ops/relu.c src/ops/ops.h \
 src/ops/../core/common.h
src/ops/ops.h:
src/ops/../core/common.h:
