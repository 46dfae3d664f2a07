build_dbg_spectral/plain/src/data/cifar10_download.o: \
 src/data/cifar10_download.c src/data/cifar10_download.h \
 src/data/../core/common.h src/data/md5.h
src/data/cifar10_download.h:
src/data/../core/common.h:
src/data/md5.h:
