build_dbg_spectral/f64/src/ops/maxpool.o: src/ops/maxpool.c src/ops/ops.h \
 src/ops/../core/common.h
src/ops/ops.h:
src/ops/../core/common.h:
