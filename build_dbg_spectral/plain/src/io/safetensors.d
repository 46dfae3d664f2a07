build_dbg_spectral/plain/src/io/safetensors.o: src/io/safetensors.c \
 src/io/safetensors.h src/io/../core/common.h src/io/atomic_file.h
src/io/safetensors.h:
src/io/../core/common.h:
src/io/atomic_file.h:
