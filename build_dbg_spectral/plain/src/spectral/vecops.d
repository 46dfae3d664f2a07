build_dbg_spectral/plain/src/spectral/vecops.o: src/spectral/vecops.c \
 src/spectral/spectral_internal.h src/spectral/../core/rng.h \
 src/spectral/linop.h
src/spectral/spectral_internal.h:
src/spectral/../core/rng.h:
src/spectral/linop.h:
