build_dbg_spectral/plain/src/spectral/krylov.o: src/spectral/krylov.c \
 src/spectral/../core/common.h src/spectral/spectral_internal.h \
 src/spectral/../core/rng.h src/spectral/linop.h
src/spectral/../core/common.h:
src/spectral/spectral_internal.h:
src/spectral/../core/rng.h:
src/spectral/linop.h:
