build_dbg_spectral/plain/src/io/npy.o: src/io/npy.c src/io/npy.h \
 src/io/../core/common.h src/io/atomic_file.h
src/io/npy.h:
src/io/../core/common.h:
src/io/atomic_file.h:
