build_dbg_spectral/plain/src/spectral/eigen.o: src/spectral/eigen.c \
 src/spectral/../core/common.h src/spectral/spectral.h \
 src/spectral/../core/rng.h src/spectral/linop.h
src/spectral/../core/common.h:
src/spectral/spectral.h:
src/spectral/../core/rng.h:
src/spectral/linop.h:
