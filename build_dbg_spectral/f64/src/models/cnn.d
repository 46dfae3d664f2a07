build_dbg_spectral/f64/src/models/cnn.o: src/models/cnn.c \
 src/models/../ops/ops.h src/models/../ops/../core/common.h \
 src/models/model.h src/models/../core/common.h
src/models/../ops/ops.h:
src/models/../ops/../core/common.h:
src/models/model.h:
src/models/../core/common.h:
