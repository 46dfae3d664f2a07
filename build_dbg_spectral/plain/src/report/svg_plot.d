build_dbg_spectral/plain/src/report/svg_plot.o: src/report/svg_plot.c \
 src/report/svg_plot.h src/report/../core/common.h \
 src/report/../io/atomic_file.h
src/report/svg_plot.h:
src/report/../core/common.h:
src/report/../io/atomic_file.h:
