build_dbg_spectral/f32/src/curvature/hvp.o: src/curvature/hvp.c \
 src/curvature/curvature.h src/curvature/../data/cifar10.h \
 src/curvature/../data/../core/rng.h src/curvature/../models/model.h \
 src/curvature/../models/../core/common.h
src/curvature/curvature.h:
src/curvature/../data/cifar10.h:
src/curvature/../data/../core/rng.h:
src/curvature/../models/model.h:
src/curvature/../models/../core/common.h:
