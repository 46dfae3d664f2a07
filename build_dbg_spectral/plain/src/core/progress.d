build_dbg_spectral/plain/src/core/progress.o: src/core/progress.c \
 src/core/progress.h src/core/common.h
src/core/progress.h:
src/core/common.h:
