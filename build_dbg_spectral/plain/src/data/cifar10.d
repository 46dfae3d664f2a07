build_dbg_spectral/plain/src/data/cifar10.o: src/data/cifar10.c \
 src/data/cifar10.h src/data/../core/rng.h src/data/../core/common.h
src/data/cifar10.h:
src/data/../core/rng.h:
src/data/../core/common.h:
