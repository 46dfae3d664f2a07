build_dbg_spectral/plain/src/io/json_writer.o: src/io/json_writer.c \
 src/io/json_writer.h
src/io/json_writer.h:
