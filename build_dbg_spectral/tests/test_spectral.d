build_dbg_spectral/tests/test_spectral: tests/test_spectral.c \
 tests/../src/core/common.h tests/../src/core/rng.h \
 tests/../src/spectral/linop.h tests/../src/spectral/spectral.h \
 tests/../src/spectral/../core/rng.h tests/../src/spectral/linop.h \
 tests/check.h
tests/../src/core/common.h:
tests/../src/core/rng.h:
tests/../src/spectral/linop.h:
tests/../src/spectral/spectral.h:
tests/../src/spectral/../core/rng.h:
tests/../src/spectral/linop.h:
tests/check.h:
