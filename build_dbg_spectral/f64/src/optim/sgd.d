build_dbg_spectral/f64/src/optim/sgd.o: src/optim/sgd.c src/optim/sgd.h \
 src/optim/../core/common.h
src/optim/sgd.h:
src/optim/../core/common.h:
