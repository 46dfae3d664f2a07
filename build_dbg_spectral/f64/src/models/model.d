build_dbg_spectral/f64/src/models/model.o: src/models/model.c \
 src/models/model.h src/models/../core/common.h src/models/../core/rng.h \
 src/models/../io/safetensors.h src/models/../ops/ops.h \
 src/models/../ops/../core/common.h
src/models/model.h:
src/models/../core/common.h:
src/models/../core/rng.h:
src/models/../io/safetensors.h:
src/models/../ops/ops.h:
src/models/../ops/../core/common.h:
