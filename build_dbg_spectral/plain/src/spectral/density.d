build_dbg_spectral/plain/src/spectral/density.o: src/spectral/density.c \
 src/spectral/../core/common.h src/spectral/spectral.h \
 src/spectral/../core/rng.h src/spectral/linop.h \
 src/spectral/spectral_internal.h
src/spectral/../core/common.h:
src/spectral/spectral.h:
src/spectral/../core/rng.h:
src/spectral/linop.h:
src/spectral/spectral_internal.h:
