/* svg_plot.h: small self-contained SVG charts for reports (no external dependencies): line charts with
 * several series and horizontal reference lines, histograms (linear or symmetric-log x axis), density curves
 * (log y). Files are written atomically. */
#ifndef HS_SVG_PLOT_H
#define HS_SVG_PLOT_H

typedef struct {
    const char *label;
    const double *x; /* (n); NULL means 1..n */
    const double *y; /* (n); non-finite points are skipped */
    int n;
    const char *color; /* NULL: palette */
    int dashed;
} PlotSeries;

typedef struct {
    const char *label;
    double y;
    const char *color;
} PlotHLine;

typedef struct {
    const char *title, *xlabel, *ylabel; /* NULL or "": none (histograms label y "count") */
    int width, height; /* 0: 720 x 420 */
    int log_y;         /* decade ticks; non-positive values are skipped */
} PlotFrame;

/* Both functions return 0, or -1 with hs_error() set (nothing to draw, invalid arguments, write failure).
 * frame may be NULL (defaults). Labels may hold any text (XML-escaped). Skipped values (non-finite, beyond
 * 1e300, non-positive on a log axis) are counted in a small note under the plot. */

/* Series without a label get no legend entry; hlines (may be NULL when nhlines is 0) are labelled dashed lines
 * across the plot, included in the y range. */
int svg_line_chart(const char *path, const PlotFrame *frame, const PlotSeries *series, int nseries,
                   const PlotHLine *hlines, int nhlines);

/* Histogram of values with `bins` bins, equally wide on the x axis as drawn. symlog: x axis is
 * sign(x)*log10(1+|x|/linthresh), ticks in the original units. log_y: count axis on log scale (empty bins
 * drawn at zero height). Optional overlay curve (e.g. an estimated density, scaled to counts by the caller,
 * x in the original units) may be NULL; its label goes in the legend. */
int svg_histogram(const char *path, const PlotFrame *frame, const double *values, int n, int bins, int symlog,
                  double linthresh, const PlotSeries *overlay);

#endif
