build_dbg_spectral/plain/src/data/md5.o: src/data/md5.c src/data/md5.h \
 src/data/../core/common.h
src/data/md5.h:
src/data/../core/common.h:
