build_dbg_spectral/plain/src/io/atomic_file.o: src/io/atomic_file.c \
 src/io/atomic_file.h src/io/../core/common.h
src/io/atomic_file.h:
src/io/../core/common.h:
