build_dbg_spectral/plain/src/core/scratch.o: src/core/scratch.c \
 src/core/scratch.h src/core/common.h
src/core/scratch.h:
src/core/common.h:
