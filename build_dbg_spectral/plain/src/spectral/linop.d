build_dbg_spectral/plain/src/spectral/linop.o: src/spectral/linop.c \
 src/spectral/linop.h src/spectral/../core/common.h \
 src/spectral/spectral_internal.h src/spectral/../core/rng.h
src/spectral/linop.h:
src/spectral/../core/common.h:
src/spectral/spectral_internal.h:
src/spectral/../core/rng.h:
