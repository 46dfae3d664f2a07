build_dbg_spectral/plain/src/core/common.o: src/core/common.c \
 src/core/common.h
src/core/common.h:
