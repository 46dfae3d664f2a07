/* svg_plot.c: self-contained SVG 1.1 charts for reports (see svg_plot.h): line charts with several series,
 * dashed series and labelled horizontal reference lines; histograms on a linear or symmetric-log x axis with an
 * optional overlay curve; linear or log y axes. Ticks fall on "nice" values (1-2-5 steps, decades on log
 * axes); the legend goes inside the plot where it hides the least data (a free corner when there is one) or
 * beside the plot when every place inside would hide much, and reference-line labels avoid the data, the
 * other lines and each other. Dense series are reduced per pixel column without changing the picture.
 * Output uses only basic shapes, text and one clip path (no scripts, no external fonts), every label is
 * XML-escaped, and files are written atomically (io/atomic_file.h). */
#define _POSIX_C_SOURCE 200809L
#include "svg_plot.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/common.h"
#include "../io/atomic_file.h"

#define DEFAULT_WIDTH 720
#define DEFAULT_HEIGHT 420
#define MIN_WIDTH 200
#define MIN_HEIGHT 150
#define MAX_SIZE 20000
#define MAX_BINS 100000
#define MAX_TICKS 160
/* Values of larger magnitude are skipped like non-finite ones (and counted in the note): axis arithmetic on
 * them would overflow. */
#define PLOT_LIMIT 1e300

/* Font sizes (px) and the average advance of a sans-serif glyph in ems, a slight overestimate that keeps
 * labels from colliding whatever font the viewer substitutes. */
#define FONT_TITLE 15.0
#define FONT_LABEL 12.5
#define FONT_TICK 11.0
#define FONT_LEGEND 12.0
#define FONT_NOTE 10.0
#define CHAR_EM 0.6

#define COLOR_TEXT "#222222"
#define COLOR_TICK_TEXT "#444444"
#define COLOR_FRAME "#7a7a7a"
#define COLOR_GRID "#e8e8e8"
#define COLOR_ZERO "#c4c4c4"
#define COLOR_NOTE "#777777"
#define COLOR_HLINE "#444444"
#define COLOR_BARS "#6a9fd0"
#define COLOR_OVERLAY "#d9480f"

/* Tableau 10: distinguishable on screen and in print. Series past the tenth reuse the colours, dashed. */
static const char *const palette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                      "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
#define PALETTE_SIZE ((int)(sizeof palette / sizeof palette[0]))

/* Reference lines cycle through dash patterns so that they differ even in one colour. */
static const char *const hline_dashes[] = {"7 4", "2 3", "10 3 2 3"};

/* ------------------------------------------------------------------------------------------------------ */
/* Text: XML escaping and width estimates                                                                  */

/* Length in bytes of the valid UTF-8 sequence at s (1..4), or 0 if the bytes there are not valid UTF-8. */
static int utf8_sequence(const unsigned char *s) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    int len;
    unsigned cp;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff))) return 0; /* overlong */
    if (cp >= 0xd800 && cp <= 0xdfff) return 0;                                            /* surrogate */
    if (cp == 0xfffe || cp == 0xffff) return 0;                                            /* not XML chars */
    return len;
}

/* Writes at most max_chars characters of s as XML character data or attribute value: escapes the five
 * special characters, turns control characters into spaces and invalid UTF-8 bytes into U+FFFD, so that any
 * label gives a well-formed file. */
static void put_escaped_n(FILE *fp, const char *s, int max_chars) {
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    for (int written = 0; *p && written < max_chars; written++) {
        switch (*p) {
        case '&': fputs("&amp;", fp); p++; continue;
        case '<': fputs("&lt;", fp); p++; continue;
        case '>': fputs("&gt;", fp); p++; continue;
        case '"': fputs("&quot;", fp); p++; continue;
        case '\'': fputs("&#39;", fp); p++; continue;
        default: break;
        }
        if (*p < 0x20) {
            fputc(' ', fp);
            p++;
            continue;
        }
        int len = utf8_sequence(p);
        if (len == 0) {
            fputs("\xEF\xBF\xBD", fp);
            p++;
        } else {
            fwrite(p, 1, (size_t)len, fp);
            p += len;
        }
    }
}

static void put_escaped(FILE *fp, const char *s) { put_escaped_n(fp, s, INT_MAX); }

/* Number of characters (UTF-8 code points) in s. */
static int text_chars(const char *s) {
    int n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p & 0xc0) != 0x80) n++;
    return n;
}

static double text_width(const char *s, double font) { return text_chars(s) * CHAR_EM * font; }

static int has_text(const char *s) { return s && *s; }

/* ------------------------------------------------------------------------------------------------------ */
/* Axes and ticks                                                                                          */

typedef struct {
    double pos;     /* axis coordinate: the value, log10(value) on log axes, symlog(value) on symlog axes */
    char text[40];  /* label; empty for minor ticks */
    char sup[12];   /* superscript after the label (the exponent of "10"), or empty */
    int major;      /* major ticks get a label and a grid line; minor ticks only a short mark */
} Tick;

typedef struct {
    double lo, hi; /* visible range in axis coordinates */
    Tick ticks[MAX_TICKS];
    int nticks;
} Axis;

static double tick_width(const Tick *t) {
    return (strlen(t->text) + 0.75 * strlen(t->sup)) * CHAR_EM * FONT_TICK;
}

static double max_tick_width(const Axis *a) {
    double w = 0;
    for (int i = 0; i < a->nticks; i++)
        if (a->ticks[i].major && tick_width(&a->ticks[i]) > w) w = tick_width(&a->ticks[i]);
    return w;
}

static Tick *add_tick(Axis *a, double pos, int major) {
    if (a->nticks >= MAX_TICKS) return NULL;
    Tick *t = &a->ticks[a->nticks++];
    t->pos = pos;
    t->text[0] = t->sup[0] = '\0';
    t->major = major;
    return t;
}

/* A range too narrow for distinct tick labels (or for floating point) counts as a single value. */
static int is_flat(double lo, double hi) {
    return !(hi - lo > 1e-12 * fmax(fabs(lo), fabs(hi)) && hi - lo > 1e-250);
}

/* Widens a flat range (see is_flat) to one that shows its value in the middle. */
static void widen_if_flat(double *lo, double *hi) {
    if (!is_flat(*lo, *hi)) return;
    double m = 0.5 * (*lo + *hi);
    double d = fabs(m) > 1e-240 ? 0.05 * fabs(m) : 0.5;
    *lo = m - d;
    *hi = m + d;
}

/* Smallest step of the form {1, 2, 5} x 10^k that splits `range` into at most about `target` parts. */
static double nice_step(double range, double target) {
    double raw = range / (target > 1 ? target : 1);
    double mag = pow(10.0, floor(log10(raw)));
    double f = raw / mag;
    return (f <= 1.0 ? 1.0 : f <= 2.0 ? 2.0 : f <= 5.0 ? 5.0 : 10.0) * mag;
}

/* The next {1, 2, 5} x 10^k step above `step`. */
static double next_nice_step(double step) {
    double mag = pow(10.0, floor(log10(step) + 1e-9));
    double f = step / mag;
    return (f < 1.5 ? 2.0 : f < 3.5 ? 5.0 : 10.0) * mag;
}

/* Removes trailing zeros (and a trailing '.') after a decimal point. */
static void trim_zeros(char *s) {
    if (!strchr(s, '.')) return;
    size_t n = strlen(s);
    while (n > 0 && s[n - 1] == '0') s[--n] = '\0';
    if (n > 0 && s[n - 1] == '.') s[--n] = '\0';
}

/* Label for a tick value v that is a multiple of `step` on an axis whose values reach `maxabs`: plain
 * decimals with the digits the step needs, or "2.5e5" style for very large or very small values. */
static void format_linear(char *buf, size_t cap, double v, double step, double maxabs) {
    if (fabs(v) < 1e-9 * step) v = 0; /* no "-0" or "1e-17" at the origin */
    int step_exp = (int)floor(log10(step) + 1e-9);
    if (maxabs < 1e5 && step >= 1e-4) {
        int decimals = step_exp < 0 ? -step_exp : 0;
        snprintf(buf, cap, "%.*f", decimals, v);
        return;
    }
    if (v == 0) {
        snprintf(buf, cap, "0");
        return;
    }
    int e = (int)floor(log10(fabs(v)) + 1e-9);
    int decimals = e - step_exp;
    if (decimals < 0) decimals = 0;
    if (decimals > 15) decimals = 15;
    char mant[32];
    snprintf(mant, sizeof mant, "%.*f", decimals, v / pow(10.0, e));
    if (fabs(atof(mant)) >= 10.0) { /* rounding carried into the next decade */
        e++;
        snprintf(mant, sizeof mant, "%.*f", decimals, v / pow(10.0, e));
    }
    trim_zeros(mant);
    snprintf(buf, cap, "%se%d", mant, e);
}

/* A linear axis over [lo, hi]. expand: widen the range to whole steps (a tick at both ends); otherwise the
 * range is kept and ticks fall inside it. integer: steps of at least 1 (counts). Horizontal axes space ticks
 * by their label widths, vertical ones by the label height. */
static void axis_linear(Axis *a, double lo, double hi, double length_px, int expand, int integer, int horizontal) {
    widen_if_flat(&lo, &hi);
    double target = horizontal ? length_px / 90.0 : length_px / 45.0;
    if (target < 2) target = 2;
    double step = nice_step(hi - lo, target);
    if (integer && step < 1) step = 1;
    for (int iter = 0; iter < 60; iter++, step = next_nice_step(step)) {
        double alo = expand ? floor(lo / step + 1e-9) * step : lo;
        double ahi = expand ? ceil(hi / step - 1e-9) * step : hi;
        double k0 = ceil(alo / step - 1e-9), k1 = floor(ahi / step + 1e-9);
        if (k1 - k0 + 1 > MAX_TICKS / 2) continue;
        a->lo = alo;
        a->hi = ahi;
        a->nticks = 0;
        double maxabs = fmax(fabs(alo), fabs(ahi));
        for (double k = k0; k <= k1; k++) {
            Tick *t = add_tick(a, k * step, 1);
            if (!t) break;
            if (fabs(t->pos) < 1e-9 * step) t->pos = 0;
            format_linear(t->text, sizeof t->text, t->pos, step, maxabs);
        }
        double step_px = step / (ahi - alo) * length_px;
        double need = horizontal ? max_tick_width(a) + 14.0 : FONT_TICK * 2.2;
        if (step_px >= need || a->nticks <= 2) return;
    }
}

/* Label for m x 10^k (m in 1, 2, 5) with the given sign: plain decimals for moderate k (unless force_sup),
 * "10" with a superscript exponent for powers of ten beyond that, and "2e7" style otherwise. */
static void format_power(Tick *t, int sign, int m, int k, int force_sup) {
    const char *minus = sign < 0 ? "-" : "";
    if (k >= -3 && k <= 4 && !(force_sup && m == 1)) {
        if (k >= 0)
            snprintf(t->text, sizeof t->text, "%s%.0f", minus, m * pow(10.0, k));
        else
            snprintf(t->text, sizeof t->text, "%s%.*f", minus, -k, m * pow(10.0, k));
    } else if (m == 1) {
        snprintf(t->text, sizeof t->text, "%s10", minus);
        snprintf(t->sup, sizeof t->sup, "%d", k);
    } else {
        snprintf(t->text, sizeof t->text, "%s%de%d", minus, m, k);
    }
}

static int floor_mod(int a, int b) { return ((a % b) + b) % b; }

/* A log10 axis over [lo, hi] (in decades): labelled decades (every `stride`-th one when they are dense),
 * minor ticks at 2..9 x 10^k when there is room, or at the unlabelled decades. */
static void axis_log(Axis *a, double lo, double hi, double length_px) {
    a->lo = lo;
    a->hi = hi;
    a->nticks = 0;
    double px_per_decade = length_px / (hi - lo);
    static const int strides[] = {1, 2, 3, 4, 5, 10, 20, 25, 50, 100};
    int stride = strides[0];
    for (size_t i = 0; i < sizeof strides / sizeof strides[0]; i++) {
        stride = strides[i];
        if (stride * px_per_decade >= FONT_TICK * 2.2) break;
    }
    int k0 = (int)ceil(lo - 1e-9), k1 = (int)floor(hi + 1e-9);
    int plain = 1;
    for (int k = k0; k <= k1; k++)
        if (floor_mod(k, stride) == 0 && (k < -3 || k > 4)) plain = 0;
    for (int k = k0; k <= k1; k++) {
        if (floor_mod(k, stride) != 0) {
            if (px_per_decade >= 4) add_tick(a, k, 0);
            continue;
        }
        Tick *t = add_tick(a, k, 1);
        if (!t) break;
        if (plain) {
            format_power(t, 1, 1, k, 0);
        } else {
            snprintf(t->text, sizeof t->text, "10");
            snprintf(t->sup, sizeof t->sup, "%d", k);
        }
    }
    if (stride == 1 && px_per_decade >= 30) {
        for (int k = (int)floor(lo); k <= k1; k++)
            for (int m = 2; m <= 9; m++) {
                double pos = k + log10((double)m);
                if (pos >= lo - 1e-9 && pos <= hi + 1e-9) add_tick(a, pos, 0);
            }
    }
}

/* sign(x) * log10(1 + |x| / c): linear near zero, logarithmic beyond c, defined for every real x. */
static double symlog(double x, double c) { return x < 0 ? -log10(1.0 - x / c) : log10(1.0 + x / c); }

static int tick_compare(const void *pa, const void *pb) {
    double a = ((const Tick *)pa)->pos, b = ((const Tick *)pb)->pos;
    return (a > b) - (a < b);
}

/* Picks symlog ticks at sign x m x 10^k for the given mantissas (and 0), from the outermost inwards, each
 * one far enough from the last one taken and from 0 for the labels not to touch. stride: only every
 * stride-th decade (when mantissas are just {1}). */
static void symlog_pick(Axis *a, double c, double length_px, const int *mantissas, int nm, int stride,
                        int force_sup) {
    double px_per_unit = length_px / (a->hi - a->lo);
    /* Far from zero, t = symlog(x) is about log10(x / c): the largest decade on the axis. */
    int kmax = (int)floor(fmax(fabs(a->lo), fabs(a->hi)) + log10(c) + 1e-9);
    int kmin = (int)floor(log10(c)) - 6;
    if (kmax > 300) kmax = 300;
    int zero_in = a->lo <= 0 && a->hi >= 0;
    double zero_px = -a->lo * px_per_unit, zero_w = CHAR_EM * FONT_TICK;
    a->nticks = 0;
    if (zero_in) snprintf(add_tick(a, 0, 1)->text, sizeof a->ticks[0].text, "0");
    for (int sign = 1; sign >= -1; sign -= 2) {
        double last_px = NAN, last_w = 0;
        for (int k = kmax; k >= kmin; k--) {
            if (floor_mod(k, stride) != 0) continue;
            for (int j = 0; j < nm; j++) {
                double t = symlog(sign * mantissas[j] * pow(10.0, k), c);
                if (t < a->lo - 1e-9 || t > a->hi + 1e-9) continue;
                Tick cand = {.pos = t, .major = 1};
                format_power(&cand, sign, mantissas[j], k, force_sup);
                double p = (t - a->lo) * px_per_unit, w = tick_width(&cand);
                if (!isnan(last_px) && fabs(p - last_px) < (w + last_w) / 2 + 10.0) continue;
                if (zero_in && fabs(p - zero_px) < (w + zero_w) / 2 + 10.0) continue;
                Tick *tk = add_tick(a, t, 1);
                if (!tk) return;
                *tk = cand;
                last_px = p;
                last_w = w;
            }
        }
    }
}

/* A symmetric-log axis over [lo, hi] (in symlog units) with threshold c. Ticks sit at 0 and at +-10^k in
 * the original units, thinned where the transform crowds them together (near zero, or many decades), all
 * written plainly or all as powers of ten; when that leaves fewer than three, 2 x 10^k and 5 x 10^k join. */
static void axis_symlog(Axis *a, double lo, double hi, double c, double length_px) {
    a->lo = lo;
    a->hi = hi;
    double px_per_unit = length_px / (hi - lo); /* far from zero, one unit is one decade */
    double typical_gap = 4 * CHAR_EM * FONT_TICK + 10.0;
    static const int strides[] = {1, 2, 3, 4, 5, 10, 20, 25, 50, 100};
    int stride = 1;
    for (size_t i = 0; i < sizeof strides / sizeof strides[0]; i++) {
        stride = strides[i];
        if (stride * px_per_unit >= typical_gap) break;
    }
    static const int ones[1] = {1}, nice[3] = {5, 2, 1};
    symlog_pick(a, c, length_px, ones, 1, stride, 0);
    int sup = 0;
    for (int i = 0; i < a->nticks; i++) sup |= a->ticks[i].sup[0] != '\0';
    if (sup) symlog_pick(a, c, length_px, ones, 1, stride, 1);
    if (a->nticks < 3) symlog_pick(a, c, length_px, nice, 3, 1, 0);
    qsort(a->ticks, (size_t)a->nticks, sizeof a->ticks[0], tick_compare);
}

/* ------------------------------------------------------------------------------------------------------ */
/* Layout: margins, plot rectangle and coordinate transforms                                               */

/* EXPAND: linear, widened to whole steps; EXACT: linear, the data range; INDEX: EXACT with integer steps;
 * COUNT: EXPAND with integer steps; LOG: decades; SYMLOG: symmetric log. */
typedef enum { AXIS_EXPAND, AXIS_EXACT, AXIS_INDEX, AXIS_COUNT, AXIS_LOG, AXIS_SYMLOG } AxisKind;

typedef struct {
    int width, height;
    double left, right, top, bottom; /* plot rectangle in pixels (y grows downwards) */
    Axis ax, ay;
    int log_y;        /* y axis coordinate is log10(value) */
    int symlog_x;     /* x axis coordinate is symlog(value) */
    double linthresh; /* for symlog_x */
    const char *title, *xlabel, *ylabel;
    char note[200]; /* small grey remark under the plot (skipped values), or empty */
    char clip_id[32];
    AxisKind xk, yk;
    double xlo, xhi, ylo, yhi; /* requested ranges in axis coordinates */
    double reserve_right;      /* room kept right of the plot for a legend outside it */
} Layout;

static double xcoord(const Layout *L, double x) { return L->symlog_x ? symlog(x, L->linthresh) : x; }
static double ycoord(const Layout *L, double y) { return L->log_y ? log10(y) : y; }
static double px_x(const Layout *L, double c) {
    return L->left + (c - L->ax.lo) / (L->ax.hi - L->ax.lo) * (L->right - L->left);
}
static double px_y(const Layout *L, double c) {
    return L->bottom - (c - L->ay.lo) / (L->ay.hi - L->ay.lo) * (L->bottom - L->top);
}
/* Drawable: finite, within PLOT_LIMIT, and positive on a log y axis. */
static int point_ok(const Layout *L, double x, double y) {
    return fabs(x) <= PLOT_LIMIT && fabs(y) <= PLOT_LIMIT && (!L->log_y || y > 0);
}

static void set_ranges(Layout *L, AxisKind xk, double xlo, double xhi, AxisKind yk, double ylo, double yhi) {
    L->xk = xk;
    L->xlo = xlo;
    L->xhi = xhi;
    L->yk = yk;
    L->ylo = ylo;
    L->yhi = yhi;
}

static void build_axis(Axis *a, AxisKind kind, double lo, double hi, double length_px, int horizontal,
                       double linthresh) {
    switch (kind) {
    case AXIS_EXPAND: axis_linear(a, lo, hi, length_px, 1, 0, horizontal); break;
    case AXIS_EXACT: axis_linear(a, lo, hi, length_px, 0, 0, horizontal); break;
    case AXIS_INDEX: axis_linear(a, lo, hi, length_px, 0, 1, horizontal); break;
    case AXIS_COUNT: axis_linear(a, lo, hi, length_px, 1, 1, horizontal); break;
    case AXIS_LOG: axis_log(a, lo, hi, length_px); break;
    case AXIS_SYMLOG: axis_symlog(a, lo, hi, linthresh, length_px); break;
    }
}

/* Validates the frame and fills in sizes and texts. */
static int layout_init(Layout *L, const PlotFrame *frame, const char *path, const char *who) {
    memset(L, 0, sizeof *L);
    PlotFrame f = {0};
    if (frame) f = *frame;
    if (!path || !*path) return hs_error("%s: no output path", who);
    L->width = f.width ? f.width : DEFAULT_WIDTH;
    L->height = f.height ? f.height : DEFAULT_HEIGHT;
    if (L->width < MIN_WIDTH || L->height < MIN_HEIGHT || L->width > MAX_SIZE || L->height > MAX_SIZE)
        return hs_error("%s: plot size %d x %d is outside %d x %d .. %d x %d pixels", who, L->width, L->height,
                        MIN_WIDTH, MIN_HEIGHT, MAX_SIZE, MAX_SIZE);
    L->log_y = f.log_y != 0;
    L->title = f.title;
    L->xlabel = f.xlabel;
    L->ylabel = f.ylabel;
    /* An id for the clip path that differs between files, so plots inlined into one HTML page don't clash. */
    unsigned long h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)path; *p; p++) h = ((h ^ *p) * 16777619u) & 0xffffffffu;
    snprintf(L->clip_id, sizeof L->clip_id, "hs-plot-%08lx", h);
    return 0;
}

/* Computes margins from the texts and tick labels, then both axes over the ranges set in L. */
static void layout_axes(Layout *L) {
    L->top = has_text(L->title) ? 44.0 : 20.0;
    double bottom_margin = 28.0 + (has_text(L->xlabel) ? 20.0 : 0.0) + (L->note[0] ? 15.0 : 0.0);
    L->bottom = L->height - bottom_margin;
    build_axis(&L->ay, L->yk, L->ylo, L->yhi, L->bottom - L->top, 0, L->linthresh);
    L->left = 10.0 + (has_text(L->ylabel) ? FONT_LABEL + 10.0 : 0.0) + max_tick_width(&L->ay) + 9.0;
    double right_margin = 18.0 + L->reserve_right;
    for (int iter = 0; iter < 3; iter++) {
        L->right = L->width - right_margin;
        build_axis(&L->ax, L->xk, L->xlo, L->xhi, L->right - L->left, 1, L->linthresh);
        /* The last tick label is centred on its tick: keep it inside the image. */
        double overflow = 0;
        for (int i = 0; i < L->ax.nticks; i++) {
            const Tick *t = &L->ax.ticks[i];
            if (!t->major) continue;
            double o = px_x(L, t->pos) + tick_width(t) / 2 - (L->width - 4.0);
            if (o > overflow) overflow = o;
        }
        if (overflow <= 0.5) break;
        right_margin += overflow;
    }
}

/* ------------------------------------------------------------------------------------------------------ */
/* Placement of the legend and reference-line labels: a score of how much of the picture a box would hide  */

typedef struct {
    double x0, y0, x1, y1;
} Box;

typedef struct {
    const Layout *L;
    const PlotSeries *series;
    int nseries;
    const Box *bars; /* histogram bars in pixels */
    int nbars;
    const double *hline_px; /* y of each visible reference line, in pixels */
    int nhlines;
    Box labels[64]; /* reference-line labels placed so far */
    int nlabels;
} Scene;

static double series_x(const PlotSeries *s, int i) { return s->x ? s->x[i] : (double)(i + 1); }

/* Length of the segment (x0,y0)-(x1,y1) inside box b (Liang-Barsky clipping). */
static double clipped_length(Box b, double x0, double y0, double x1, double y1) {
    double dx = x1 - x0, dy = y1 - y0, t0 = 0, t1 = 1;
    double p[4] = {-dx, dx, -dy, dy}, q[4] = {x0 - b.x0, b.x1 - x0, y0 - b.y0, b.y1 - y0};
    for (int i = 0; i < 4; i++) {
        if (p[i] == 0) {
            if (q[i] < 0) return 0;
        } else {
            double r = q[i] / p[i];
            if (p[i] < 0) {
                if (r > t1) return 0;
                if (r > t0) t0 = r;
            } else {
                if (r < t0) return 0;
                if (r < t1) t1 = r;
            }
        }
    }
    return (t1 - t0) * sqrt(dx * dx + dy * dy);
}

static double overlap_area(Box a, Box b) {
    double w = fmin(a.x1, b.x1) - fmax(a.x0, b.x0), h = fmin(a.y1, b.y1) - fmax(a.y0, b.y0);
    return w > 0 && h > 0 ? w * h : 0;
}

/* How much of the data, the reference lines and the labels placed so far a box at b would cover. */
static double scene_score(const Scene *S, Box b) {
    const Layout *L = S->L;
    double score = 0;
    if (b.x0 < L->left - 0.5 || b.x1 > L->right + 0.5 || b.y0 < L->top - 0.5 || b.y1 > L->bottom + 0.5)
        score += 1e9; /* outside the plot area */
    for (int s = 0; s < S->nseries; s++) {
        const PlotSeries *ser = &S->series[s];
        double px = 0, py = 0;
        int prev = 0;
        for (int i = 0; i < ser->n; i++) {
            double x = series_x(ser, i), y = ser->y[i];
            if (!point_ok(L, x, y)) {
                prev = 0;
                continue;
            }
            double qx = px_x(L, xcoord(L, x)), qy = px_y(L, ycoord(L, y));
            if (qx >= b.x0 && qx <= b.x1 && qy >= b.y0 && qy <= b.y1) score += 3.0;
            if (prev) score += clipped_length(b, px, py, qx, qy);
            px = qx;
            py = qy;
            prev = 1;
        }
    }
    for (int i = 0; i < S->nbars; i++) score += overlap_area(b, S->bars[i]) / 6.0;
    for (int i = 0; i < S->nhlines; i++)
        score += 0.5 * clipped_length(b, L->left, S->hline_px[i], L->right, S->hline_px[i]);
    for (int i = 0; i < S->nlabels; i++) {
        double a = overlap_area(b, S->labels[i]);
        if (a > 0) score += 1e5 + a;
    }
    return score;
}

/* ------------------------------------------------------------------------------------------------------ */
/* Drawing                                                                                                 */

static void put_tick_label(FILE *fp, const Tick *t, double x, double y, const char *anchor) {
    fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\">", x, y, anchor);
    put_escaped(fp, t->text);
    if (t->sup[0]) {
        fprintf(fp, "<tspan dy=\"%.1f\" font-size=\"%.1f\">", -0.45 * FONT_TICK, 0.75 * FONT_TICK);
        put_escaped(fp, t->sup);
        fputs("</tspan>", fp);
    }
    fputs("</text>\n", fp);
}

/* Font size that fits `text` into `room` pixels (down to 70% of `font`). */
static double fitted_font(const char *text, double font, double room) {
    double w = text_width(text, font);
    if (w <= room) return font;
    double f = font * room / w;
    return f < 0.7 * font ? 0.7 * font : f;
}

/* <text ATTRS font-size=..>TEXT</text>, the text fitted into `room` pixels: shrunk to at most 70% of `font`,
 * then cut short with an ellipsis. */
static void write_fitted_text(FILE *fp, const char *attrs, const char *text, double font, double room) {
    double f = fitted_font(text, font, room);
    int max_chars = INT_MAX, cut = text_width(text, f) > room;
    if (cut) {
        max_chars = (int)(room / (CHAR_EM * f)) - 1;
        if (max_chars < 1) max_chars = 1;
    }
    fprintf(fp, "<text %s font-size=\"%.1f\">", attrs, f);
    put_escaped_n(fp, text, max_chars);
    if (cut) fputs("\xE2\x80\xA6", fp); /* U+2026 ellipsis */
    fputs("</text>\n", fp);
}

static void write_header(FILE *fp, const Layout *L) {
    fputs("<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n", fp);
    fprintf(fp,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%d\" height=\"%d\" "
            "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\">\n",
            L->width, L->height, L->width, L->height);
    if (has_text(L->title)) {
        fputs("<title>", fp);
        put_escaped(fp, L->title);
        fputs("</title>\n", fp);
    }
    fprintf(fp,
            "<defs><clipPath id=\"%s\"><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/></clipPath>"
            "</defs>\n",
            L->clip_id, L->left, L->top, L->right - L->left, L->bottom - L->top);
    fprintf(fp, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n", L->width, L->height);
}

/* Grid lines at the major ticks (a darker one at zero on linear and symlog axes). */
static void write_grid(FILE *fp, const Layout *L) {
    fprintf(fp, "<g class=\"grid\" stroke=\"%s\" stroke-width=\"1\" shape-rendering=\"crispEdges\">\n", COLOR_GRID);
    for (int i = 0; i < L->ax.nticks; i++) {
        const Tick *t = &L->ax.ticks[i];
        if (!t->major) continue;
        double x = floor(px_x(L, t->pos)) + 0.5;
        fprintf(fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"%s/>\n", x, L->top, x, L->bottom,
                t->pos == 0 ? " stroke=\"" COLOR_ZERO "\"" : "");
    }
    for (int i = 0; i < L->ay.nticks; i++) {
        const Tick *t = &L->ay.ticks[i];
        if (!t->major) continue;
        double y = floor(px_y(L, t->pos)) + 0.5;
        fprintf(fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"%s/>\n", L->left, y, L->right, y,
                t->pos == 0 && !L->log_y ? " stroke=\"" COLOR_ZERO "\"" : "");
    }
    fputs("</g>\n", fp);
}

/* Frame, tick marks, tick labels, title, axis labels and the note. */
static void write_axes(FILE *fp, const Layout *L) {
    fprintf(fp, "<rect class=\"frame\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
                "stroke=\"%s\" "
                "stroke-width=\"1\" shape-rendering=\"crispEdges\"/>\n",
            floor(L->left) + 0.5, floor(L->top) + 0.5, floor(L->right) - floor(L->left),
            floor(L->bottom) - floor(L->top), COLOR_FRAME);

    fprintf(fp, "<g class=\"ticks\" stroke=\"%s\" stroke-width=\"1\" shape-rendering=\"crispEdges\">\n", COLOR_FRAME);
    for (int i = 0; i < L->ax.nticks; i++) {
        const Tick *t = &L->ax.ticks[i];
        double x = floor(px_x(L, t->pos)) + 0.5, y = floor(L->bottom) + 0.5;
        fprintf(fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", x, y, x, y + (t->major ? 5 : 3));
    }
    for (int i = 0; i < L->ay.nticks; i++) {
        const Tick *t = &L->ay.ticks[i];
        double x = floor(L->left) + 0.5, y = floor(px_y(L, t->pos)) + 0.5;
        fprintf(fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", x - (t->major ? 5 : 3), y, x, y);
    }
    fputs("</g>\n", fp);

    fprintf(fp, "<g class=\"tick-labels\" font-size=\"%.1f\" fill=\"%s\">\n", FONT_TICK, COLOR_TICK_TEXT);
    for (int i = 0; i < L->ax.nticks; i++) {
        const Tick *t = &L->ax.ticks[i];
        if (t->major) put_tick_label(fp, t, px_x(L, t->pos), L->bottom + 18.0, "middle");
    }
    for (int i = 0; i < L->ay.nticks; i++) {
        const Tick *t = &L->ay.ticks[i];
        if (t->major) put_tick_label(fp, t, L->left - 8.0, px_y(L, t->pos) + 0.35 * FONT_TICK, "end");
    }
    fputs("</g>\n", fp);

    double cx = (L->left + L->right) / 2;
    char attrs[200];
    if (has_text(L->title)) {
        double room = L->width - 20.0;
        /* Centred over the plot, or over the image when wider than the plot. */
        double w = text_width(L->title, fitted_font(L->title, FONT_TITLE, room));
        snprintf(attrs, sizeof attrs,
                 "class=\"title\" x=\"%.1f\" y=\"27.0\" text-anchor=\"middle\" font-weight=\"bold\" fill=\"%s\"",
                 w <= L->right - L->left ? cx : L->width / 2.0, COLOR_TEXT);
        write_fitted_text(fp, attrs, L->title, FONT_TITLE, room);
    }
    if (has_text(L->xlabel)) {
        snprintf(attrs, sizeof attrs, "class=\"xlabel\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" fill=\"%s\"", cx,
                 L->bottom + 40.0, COLOR_TEXT);
        write_fitted_text(fp, attrs, L->xlabel, FONT_LABEL, L->right - L->left);
    }
    if (has_text(L->ylabel)) {
        double room = L->bottom - L->top, font = fitted_font(L->ylabel, FONT_LABEL, room);
        snprintf(attrs, sizeof attrs,
                 "class=\"ylabel\" transform=\"translate(%.1f,%.1f) rotate(-90)\" text-anchor=\"middle\" fill=\"%s\"",
                 10.0 + font, (L->top + L->bottom) / 2, COLOR_TEXT);
        write_fitted_text(fp, attrs, L->ylabel, FONT_LABEL, room);
    }
    if (L->note[0]) {
        fprintf(fp, "<text class=\"note\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" font-size=\"%.1f\" "
                    "font-style=\"italic\" fill=\"%s\">",
                L->right, L->height - 7.0, FONT_NOTE, COLOR_NOTE);
        put_escaped(fp, L->note);
        fputs("</text>\n", fp);
    }
}

static void write_stroke_style(FILE *fp, const char *color, double width, int dashed) {
    fputs(" stroke=\"", fp);
    put_escaped(fp, color);
    fprintf(fp, "\" stroke-width=\"%.1f\"", width);
    if (dashed) fputs(" stroke-dasharray=\"7 4\"", fp);
}

/* Path data builder that skips points which would not move the pen by a visible amount. */
typedef struct {
    FILE *fp;
    int pen_down; /* inside a subpath */
    double lx, ly;
} PathOut;

static void path_point(PathOut *o, double x, double y) {
    if (o->pen_down && fabs(x - o->lx) < 0.05 && fabs(y - o->ly) < 0.05) return;
    fprintf(o->fp, "%s%.1f %.1f", o->pen_down ? "L" : "M", x, y);
    o->pen_down = 1;
    o->lx = x;
    o->ly = y;
}

/* Points of one pixel column, reduced to the first, lowest, highest and last (in order), which draws the
 * same picture as all of them. */
typedef struct {
    long col;
    int count;
    int idx[4];
    double x[4], y[4]; /* first, min, max, last */
} Column;

static void column_flush(PathOut *o, Column *c) {
    if (c->count == 0) return;
    int order[4] = {0, 1, 2, 3};
    for (int i = 1; i < 4; i++) /* sort the four by original index */
        for (int j = i; j > 0 && c->idx[order[j]] < c->idx[order[j - 1]]; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    int last = -1;
    for (int i = 0; i < 4; i++) {
        int k = order[i];
        if (c->idx[k] == last) continue;
        last = c->idx[k];
        path_point(o, c->x[k], c->y[k]);
    }
    c->count = 0;
}

/* Draws one series: a path split where points are skipped, dense monotone runs reduced per pixel column,
 * and a dot for each point that has no valid neighbour (a line through one point is invisible). */
static void write_series(FILE *fp, const Layout *L, const PlotSeries *s, const char *color, int dashed, double width) {
    int valid = 0, monotone = 1;
    double prev_x = -INFINITY;
    for (int i = 0; i < s->n; i++) {
        double x = series_x(s, i);
        if (!point_ok(L, x, s->y[i])) continue;
        valid++;
        if (x < prev_x) monotone = 0;
        prev_x = x;
    }
    if (valid == 0) return;
    int decimate = monotone && valid > 4 * (L->right - L->left);

    fputs("<path fill=\"none\"", fp);
    write_stroke_style(fp, color, width, dashed);
    fputs(" stroke-linejoin=\"round\" stroke-linecap=\"round\" d=\"", fp);
    PathOut o = {fp, 0, 0, 0};
    Column c = {0};
    for (int i = 0; i < s->n; i++) {
        double x = series_x(s, i), y = s->y[i];
        if (!point_ok(L, x, y)) {
            column_flush(&o, &c);
            o.pen_down = 0;
            continue;
        }
        double qx = px_x(L, xcoord(L, x)), qy = px_y(L, ycoord(L, y));
        if (!decimate) {
            path_point(&o, qx, qy);
            continue;
        }
        long col = (long)floor(qx);
        if (c.count > 0 && col != c.col) column_flush(&o, &c);
        if (c.count == 0) {
            c.col = col;
            for (int k = 0; k < 4; k++) {
                c.idx[k] = i;
                c.x[k] = qx;
                c.y[k] = qy;
            }
        } else {
            /* Slot 1 holds the lowest value (largest pixel y), slot 2 the highest, slot 3 the latest. */
            int slots[3] = {qy > c.y[1] ? 1 : -1, qy < c.y[2] ? 2 : -1, 3};
            for (int k = 0; k < 3; k++) {
                if (slots[k] < 0) continue;
                c.idx[slots[k]] = i;
                c.x[slots[k]] = qx;
                c.y[slots[k]] = qy;
            }
        }
        c.count++;
    }
    column_flush(&o, &c);
    fputs("\"/>\n", fp);

    for (int i = 0; i < s->n; i++) {
        double x = series_x(s, i), y = s->y[i];
        if (!point_ok(L, x, y)) continue;
        int before = i > 0 && point_ok(L, series_x(s, i - 1), s->y[i - 1]);
        int after = i + 1 < s->n && point_ok(L, series_x(s, i + 1), s->y[i + 1]);
        if (before || after) continue;
        fprintf(fp, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\" fill=\"", px_x(L, xcoord(L, x)), px_y(L, ycoord(L, y)),
                width + 1.2);
        put_escaped(fp, color);
        fputs("\"/>\n", fp);
    }
}

/* The legend: one entry per labelled series, in a box inside the plot where it hides the least, or to the
 * right of the plot when every place inside would hide a good deal. */
typedef struct {
    const char *label, *color;
    int dashed;
} LegendEntry;

typedef struct {
    const LegendEntry *entries;
    int n;
    double w, h; /* box size */
    double x, y; /* top left corner */
} Legend;

#define LEGEND_PAD 8.0
#define LEGEND_ROW (FONT_LEGEND + 7.0)
#define LEGEND_SWATCH 26.0
#define LEGEND_INSET 8.0 /* from the frame */
#define LEGEND_CLEAR 7.0 /* room around the box that should be free of data too (at most the inset) */

static void legend_measure(Legend *lg) {
    double maxw = 0;
    for (int i = 0; i < lg->n; i++) maxw = fmax(maxw, text_width(lg->entries[i].label, FONT_LEGEND));
    lg->w = LEGEND_PAD + LEGEND_SWATCH + 6.0 + maxw + LEGEND_PAD;
    lg->h = 2 * LEGEND_PAD + lg->n * LEGEND_ROW - 5.0;
}

static double legend_score(const Scene *S, const Legend *lg, double x, double y) {
    const double c = LEGEND_CLEAR;
    return scene_score(S, (Box){x - c, y - c, x + lg->w + c, y + lg->h + c});
}

/* Places the legend inside the plot: the first free corner (top right, top left, bottom right, bottom left),
 * else the spot on a grid that hides the least, drawn towards the edges. Returns how much it hides. */
static double legend_place_inside(const Scene *S, Legend *lg) {
    const Layout *L = S->L;
    double xl = L->left + LEGEND_INSET, xr = L->right - LEGEND_INSET - lg->w;
    double yt = L->top + LEGEND_INSET, yb = L->bottom - LEGEND_INSET - lg->h;
    double xs[4] = {xr, xl, xr, xl}, ys[4] = {yt, yt, yb, yb};
    double best = INFINITY;
    for (int i = 0; i < 4; i++) {
        double s = legend_score(S, lg, xs[i], ys[i]);
        if (s < best - 1.0) {
            best = s;
            lg->x = xs[i];
            lg->y = ys[i];
        }
    }
    if (best > 2.0 && xr > xl && yb > yt) {
        const int nx = 10, ny = 8;
        for (int j = 0; j <= ny; j++)
            for (int i = 0; i <= nx; i++) {
                double x = xl + (xr - xl) * i / nx, y = yt + (yb - yt) * j / ny;
                double edge = fmin(fmin(x - xl, xr - x), fmin(y - yt, yb - y));
                double s = legend_score(S, lg, x, y) + 0.05 * edge;
                if (s < best - 1.0) {
                    best = s;
                    lg->x = x;
                    lg->y = y;
                }
            }
    }
    return best;
}

/* Moves the legend to the right of the plot when the best place inside would hide more than about half its
 * width of lines, and the plot would stay at least half the image wide. Lays the axes out again for the
 * narrower plot and returns 1 if it did. */
static int legend_move_outside(Layout *L, const Scene *S, Legend *lg) {
    if (lg->n == 0) return 0;
    double hidden = legend_place_inside(S, lg);
    double room = lg->w + 10.0;
    if (hidden < 0.6 * lg->w || (L->right - L->left) - room < 0.5 * L->width) return 0;
    L->reserve_right = room;
    layout_axes(L);
    lg->x = L->right + 12.0;
    lg->y = L->top;
    return 1;
}

static void write_legend(FILE *fp, const Legend *lg) {
    if (lg->n == 0) return;
    fputs("<g class=\"legend\">\n", fp);
    fprintf(fp, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" rx=\"3\" fill=\"#ffffff\" "
                "fill-opacity=\"0.92\" "
                "stroke=\"#cccccc\" stroke-width=\"1\"/>\n",
            lg->x, lg->y, lg->w, lg->h);
    for (int i = 0; i < lg->n; i++) {
        const LegendEntry *e = &lg->entries[i];
        double x = lg->x + LEGEND_PAD, cy = lg->y + LEGEND_PAD + i * LEGEND_ROW + LEGEND_ROW / 2 - 3.5;
        fprintf(fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"", x, cy, x + LEGEND_SWATCH, cy);
        write_stroke_style(fp, e->color, 2.0, e->dashed);
        fputs("/>\n", fp);
        fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"%.1f\" fill=\"%s\">", x + LEGEND_SWATCH + 6.0,
                cy + 0.35 * FONT_LEGEND, FONT_LEGEND, COLOR_TEXT);
        put_escaped(fp, e->label);
        fputs("</text>\n", fp);
    }
    fputs("</g>\n", fp);
}

/* Text with a white outline underneath, readable over grid and data. */
static void write_halo_text(FILE *fp, double x, double y, const char *anchor, double font, const char *color,
                            const char *text) {
    for (int pass = 0; pass < 2; pass++) {
        fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" font-size=\"%.1f\"", x, y, anchor, font);
        if (pass == 0) {
            fputs(" fill=\"#ffffff\" stroke=\"#ffffff\" stroke-width=\"3\" stroke-linejoin=\"round\">", fp);
        } else {
            fputs(" fill=\"", fp);
            put_escaped(fp, color);
            fputs("\">", fp);
        }
        put_escaped(fp, text);
        fputs("</text>\n", fp);
    }
}

/* Reference lines: pixel positions of the visible ones, for scoring. */
static void scene_set_hlines(Scene *S, double *px, const PlotHLine *h, int nh) {
    S->hline_px = px;
    S->nhlines = 0;
    for (int i = 0; i < nh; i++)
        if (point_ok(S->L, 0, h[i].y)) px[S->nhlines++] = px_y(S->L, ycoord(S->L, h[i].y));
}

typedef struct {
    double x, y; /* text anchor point (baseline) */
    int end;     /* anchored at its end (right side of the plot) */
} HLabel;

/* Puts each reference-line label at one end of its line, above or below it, where it hides the least (data,
 * other lines, labels placed before); records the label boxes in the scene for the legend to avoid. */
static void place_hline_labels(Scene *S, const PlotHLine *h, int nh, HLabel *out) {
    const Layout *L = S->L;
    S->nlabels = 0;
    for (int i = 0; i < nh; i++) {
        if (!point_ok(L, 0, h[i].y) || !has_text(h[i].label)) continue;
        double y = px_y(L, ycoord(L, h[i].y));
        double w = text_width(h[i].label, FONT_TICK);
        double xr = L->right - 6.0, xl = L->left + 6.0;
        double above = y - 4.0, below = y + 4.0 + 0.8 * FONT_TICK; /* baselines */
        double bx[4] = {xr - w, xr - w, xl, xl}, by[4] = {above, below, above, below};
        Box boxes[4];
        int best = 0;
        double best_score = INFINITY;
        for (int k = 0; k < 4; k++) {
            boxes[k] = (Box){bx[k] - 1, by[k] - 0.8 * FONT_TICK - 1, bx[k] + w + 1, by[k] + 0.25 * FONT_TICK};
            double s = scene_score(S, boxes[k]);
            if (s < best_score - 1.0) {
                best_score = s;
                best = k;
            }
        }
        if (S->nlabels < (int)(sizeof S->labels / sizeof S->labels[0])) S->labels[S->nlabels++] = boxes[best];
        out[i] = (HLabel){best < 2 ? xr : xl, by[best], best < 2};
    }
}

static void write_hlines(FILE *fp, const Layout *L, const PlotHLine *h, int nh, const HLabel *labels) {
    int any = 0;
    for (int i = 0; i < nh; i++) any |= point_ok(L, 0, h[i].y);
    if (!any) return;
    fputs("<g class=\"reference-lines\">\n", fp);
    int shown = 0;
    for (int i = 0; i < nh; i++) {
        if (!point_ok(L, 0, h[i].y)) continue;
        double y = px_y(L, ycoord(L, h[i].y));
        fprintf(fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"", L->left, y, L->right, y);
        put_escaped(fp, h[i].color ? h[i].color : COLOR_HLINE);
        fprintf(fp, "\" stroke-width=\"1.3\" stroke-dasharray=\"%s\"/>\n", hline_dashes[shown++ % 3]);
    }
    for (int i = 0; i < nh; i++) {
        if (!point_ok(L, 0, h[i].y) || !has_text(h[i].label)) continue;
        write_halo_text(fp, labels[i].x, labels[i].y, labels[i].end ? "end" : "start", FONT_TICK,
                        h[i].color ? h[i].color : COLOR_HLINE, h[i].label);
    }
    fputs("</g>\n", fp);
}

static void append_note(char *note, size_t cap, const char *fmt, long count) {
    if (count <= 0) return;
    size_t len = strlen(note);
    if (len > 0 && len + 2 < cap) {
        strcat(note, "; ");
        len += 2;
    }
    snprintf(note + len, cap - len, fmt, count, count == 1 ? "" : "s");
}

/* ------------------------------------------------------------------------------------------------------ */
/* Line chart                                                                                              */

int svg_line_chart(const char *path, const PlotFrame *frame, const PlotSeries *series, int nseries,
                   const PlotHLine *hlines, int nhlines) {
    const char *who = "svg_line_chart";
    Layout L;
    HS_TRY(layout_init(&L, frame, path, who));
    if (nseries <= 0 || !series) return hs_error("%s: no series to plot (nseries = %d)", who, nseries);
    if (nhlines < 0 || (nhlines > 0 && !hlines))
        return hs_error("%s: invalid reference lines (nhlines = %d)", who, nhlines);
    for (int s = 0; s < nseries; s++) {
        if (series[s].n < 0) return hs_error("%s: series %d has n = %d", who, s, series[s].n);
        if (series[s].n > 0 && !series[s].y) return hs_error("%s: series %d has no y values", who, s);
    }

    long valid = 0, nonfinite = 0, huge = 0, nonpositive = 0, total = 0;
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    for (int s = 0; s < nseries; s++) {
        const PlotSeries *ser = &series[s];
        total += ser->n;
        for (int i = 0; i < ser->n; i++) {
            double x = series_x(ser, i), y = ser->y[i];
            if (!isfinite(x) || !isfinite(y)) {
                nonfinite++;
            } else if (fabs(x) > PLOT_LIMIT || fabs(y) > PLOT_LIMIT) {
                huge++;
            } else if (L.log_y && y <= 0) {
                nonpositive++;
            } else {
                valid++;
                xlo = fmin(xlo, x);
                xhi = fmax(xhi, x);
                ylo = fmin(ylo, y);
                yhi = fmax(yhi, y);
            }
        }
    }
    if (total == 0) return hs_error("%s: no points to plot (every series has n = 0)", who);
    if (valid == 0) {
        char why[200] = "";
        append_note(why, sizeof why, "%ld non-finite%.0s", nonfinite);
        append_note(why, sizeof why, "%ld beyond 1e300%.0s", huge);
        append_note(why, sizeof why, "%ld non-positive on a log y axis%.0s", nonpositive);
        return hs_error("%s: none of the %ld points can be drawn (%s)", who, total, why);
    }
    long hidden_lines = 0;
    for (int i = 0; i < nhlines; i++) {
        if (!point_ok(&L, 0, hlines[i].y)) {
            hidden_lines++;
            continue;
        }
        ylo = fmin(ylo, hlines[i].y);
        yhi = fmax(yhi, hlines[i].y);
    }
    append_note(L.note, sizeof L.note, "%ld non-finite value%s skipped", nonfinite);
    append_note(L.note, sizeof L.note, "%ld value%s beyond 1e300 skipped", huge);
    append_note(L.note, sizeof L.note, "%ld non-positive value%s not shown on the log scale", nonpositive);
    append_note(L.note, sizeof L.note, "%ld reference line%s not shown", hidden_lines);

    widen_if_flat(&xlo, &xhi);
    AxisKind xk = AXIS_INDEX; /* x = 1..n: integer ticks */
    for (int s = 0; s < nseries; s++)
        if (series[s].x && series[s].n > 0) xk = AXIS_EXACT;
    if (L.log_y) {
        /* The data range plus a small margin, when that shows at least two decade ticks; else whole decades. */
        double span = log10(yhi) - log10(ylo);
        double dlo = log10(ylo) - 0.03 * span, dhi = log10(yhi) + 0.03 * span;
        if (floor(dhi + 1e-9) - ceil(dlo - 1e-9) < 1) {
            dlo = floor(log10(ylo) + 1e-9);
            dhi = ceil(log10(yhi) - 1e-9);
            if (dhi <= dlo) {
                dlo -= 1;
                dhi += 1;
            }
        }
        set_ranges(&L, xk, xlo, xhi, AXIS_LOG, dlo, dhi);
    } else {
        set_ranges(&L, xk, xlo, xhi, AXIS_EXPAND, ylo, yhi);
    }
    layout_axes(&L);

    size_t nh = (size_t)(nhlines > 0 ? nhlines : 1);
    double *hline_px = hs_malloc(sizeof(double) * nh);
    HLabel *labels = hs_calloc(nh, sizeof(HLabel));
    LegendEntry *entries = hs_malloc(sizeof(LegendEntry) * (size_t)nseries);
    if (!hline_px || !labels || !entries) {
        free(hline_px);
        free(labels);
        free(entries);
        return hs_error_context("%s: ", who);
    }
    Legend lg = {.entries = entries};
    for (int s = 0; s < nseries; s++) {
        const PlotSeries *ser = &series[s];
        if (has_text(ser->label))
            entries[lg.n++] = (LegendEntry){ser->label, ser->color ? ser->color : palette[s % PALETTE_SIZE],
                                            ser->dashed || (!ser->color && (s / PALETTE_SIZE) % 2 == 1)};
    }
    legend_measure(&lg);
    Scene S = {.L = &L, .series = series, .nseries = nseries};
    scene_set_hlines(&S, hline_px, hlines, nhlines);
    int outside = legend_move_outside(&L, &S, &lg);
    if (outside) scene_set_hlines(&S, hline_px, hlines, nhlines);
    place_hline_labels(&S, hlines, nhlines, labels);
    if (!outside && lg.n > 0) legend_place_inside(&S, &lg);

    AtomicFile af;
    int rc = atomic_file_open(&af, path);
    if (rc == 0) {
        FILE *fp = af.fp;
        write_header(fp, &L);
        write_grid(fp, &L);
        fprintf(fp, "<g class=\"data\" clip-path=\"url(#%s)\">\n", L.clip_id);
        for (int s = 0; s < nseries; s++) {
            const PlotSeries *ser = &series[s];
            write_series(fp, &L, ser, ser->color ? ser->color : palette[s % PALETTE_SIZE],
                         ser->dashed || (!ser->color && (s / PALETTE_SIZE) % 2 == 1), 1.8);
        }
        fputs("</g>\n", fp);
        write_axes(fp, &L);
        write_hlines(fp, &L, hlines, nhlines, labels);
        write_legend(fp, &lg);
        fputs("</svg>\n", fp);
        rc = atomic_file_commit(&af);
    }
    free(hline_px);
    free(labels);
    free(entries);
    return rc == 0 ? 0 : hs_error_context("%s: ", who);
}

/* ------------------------------------------------------------------------------------------------------ */
/* Histogram                                                                                               */

/* Bars in pixels, snapped to whole pixels so that neighbours neither overlap nor leave hairline seams; wide
 * bars get a one-pixel gap between them. Empty bins get no bar. Returns the number of bars. */
static int histogram_bars(const Layout *L, const long *counts, int bins, double tlo, double bw, Box *bars) {
    int nbars = 0;
    double base = floor(L->bottom);
    for (int b = 0; b < bins; b++) {
        if (counts[b] == 0) continue;
        double x0 = round(px_x(L, tlo + b * bw)), x1 = round(px_x(L, tlo + (b + 1) * bw));
        double y0 = round(px_y(L, ycoord(L, (double)counts[b])));
        if (x1 - x0 >= 6) x1 -= 1;
        if (x1 <= x0) x1 = x0 + 1;
        if (y0 > base - 1) y0 = base - 1;
        bars[nbars++] = (Box){x0, y0, x1, base};
    }
    return nbars;
}

int svg_histogram(const char *path, const PlotFrame *frame, const double *values, int n, int bins, int symlog_x,
                  double linthresh, const PlotSeries *overlay) {
    const char *who = "svg_histogram";
    Layout L;
    HS_TRY(layout_init(&L, frame, path, who));
    if (n <= 0) return hs_error("%s: no values to plot (n = %d)", who, n);
    if (!values) return hs_error("%s: values is NULL", who);
    if (bins < 1 || bins > MAX_BINS) return hs_error("%s: bins = %d is outside 1..%d", who, bins, MAX_BINS);
    if (symlog_x && !(linthresh >= 1e-200 && linthresh <= 1e200))
        return hs_error("%s: the symlog threshold must be positive, from 1e-200 to 1e200 (got %g)", who, linthresh);
    if (overlay && (overlay->n < 0 || (overlay->n > 0 && !overlay->y)))
        return hs_error("%s: invalid overlay (n = %d%s)", who, overlay->n, overlay->y ? "" : ", no y values");
    L.symlog_x = symlog_x != 0;
    L.linthresh = linthresh;
    if (!has_text(L.ylabel)) L.ylabel = "count";

    long finite = 0, nonfinite = 0, huge = 0;
    double vlo = INFINITY, vhi = -INFINITY;
    for (int i = 0; i < n; i++) {
        if (!isfinite(values[i])) {
            nonfinite++;
            continue;
        }
        if (fabs(values[i]) > PLOT_LIMIT) {
            huge++;
            continue;
        }
        finite++;
        vlo = fmin(vlo, values[i]);
        vhi = fmax(vhi, values[i]);
    }
    if (finite == 0) return hs_error("%s: none of the %d values is finite and within 1e300", who, n);

    /* Bins are equally wide on the (possibly symlog) axis. */
    double tlo = xcoord(&L, vlo), thi = xcoord(&L, vhi);
    if (is_flat(tlo, thi)) { /* all values equal: put them in the middle of the middle bin */
        double t0 = tlo, lo = tlo, hi = thi;
        widen_if_flat(&lo, &hi);
        double width = L.symlog_x ? 1.0 : hi - lo;
        tlo = t0 - (bins / 2 + 0.5) * width / bins;
        thi = tlo + width;
    }
    long *counts = hs_calloc((size_t)bins, sizeof *counts);
    Box *bars = hs_malloc(sizeof(Box) * (size_t)bins);
    if (!counts || !bars) {
        free(counts);
        free(bars);
        return hs_error_context("%s: ", who);
    }
    double bw = (thi - tlo) / bins;
    long maxcount = 0;
    for (int i = 0; i < n; i++) {
        if (!(fabs(values[i]) <= PLOT_LIMIT)) continue;
        long b = (long)floor((xcoord(&L, values[i]) - tlo) / bw);
        if (b < 0) b = 0;
        if (b >= bins) b = bins - 1;
        if (++counts[b] > maxcount) maxcount = counts[b];
    }
    double pad = 0.02 * (thi - tlo);
    double axlo = tlo - pad, axhi = thi + pad;

    /* The overlay may reach above the bars; on a log axis its tails go below the lowest bar and are clipped. */
    double top = (double)maxcount;
    long overlay_skipped = 0;
    if (overlay) {
        for (int i = 0; i < overlay->n; i++) {
            double x = series_x(overlay, i), y = overlay->y[i];
            if (!(fabs(x) <= PLOT_LIMIT && fabs(y) <= PLOT_LIMIT)) {
                overlay_skipped++;
                continue;
            }
            double t = xcoord(&L, x);
            if (t >= axlo && t <= axhi) top = fmax(top, y);
        }
    }
    append_note(L.note, sizeof L.note, "%ld non-finite value%s skipped", nonfinite);
    append_note(L.note, sizeof L.note, "%ld value%s beyond 1e300 skipped", huge);
    append_note(L.note, sizeof L.note, "%ld non-finite overlay point%s skipped", overlay_skipped);

    AxisKind xk = L.symlog_x ? AXIS_SYMLOG : AXIS_EXACT;
    if (L.log_y)
        set_ranges(&L, xk, axlo, axhi, AXIS_LOG, log10(0.5), ceil(log10(top * 1.15)));
    else
        set_ranges(&L, xk, axlo, axhi, AXIS_COUNT, 0.0, 1.04 * top);
    layout_axes(&L);

    const char *overlay_color = overlay && overlay->color ? overlay->color : COLOR_OVERLAY;
    LegendEntry entry = {overlay ? overlay->label : NULL, overlay_color, overlay ? overlay->dashed : 0};
    Legend lg = {.entries = &entry, .n = overlay && overlay->n > 0 && has_text(overlay->label)};
    legend_measure(&lg);
    Scene S = {.L = &L, .series = overlay, .nseries = overlay ? 1 : 0, .bars = bars};
    S.nbars = histogram_bars(&L, counts, bins, tlo, bw, bars);
    if (legend_move_outside(&L, &S, &lg)) S.nbars = histogram_bars(&L, counts, bins, tlo, bw, bars);

    AtomicFile af;
    int rc = atomic_file_open(&af, path);
    if (rc == 0) {
        FILE *fp = af.fp;
        write_header(fp, &L);
        write_grid(fp, &L);
        fprintf(fp, "<g class=\"data\" clip-path=\"url(#%s)\">\n", L.clip_id);
        fprintf(fp, "<g class=\"bars\" fill=\"%s\" shape-rendering=\"crispEdges\">\n", COLOR_BARS);
        for (int i = 0; i < S.nbars; i++)
            fprintf(fp, "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\"/>\n", bars[i].x0, bars[i].y0,
                    bars[i].x1 - bars[i].x0, bars[i].y1 - bars[i].y0);
        fputs("</g>\n", fp);
        if (overlay && overlay->n > 0) write_series(fp, &L, overlay, overlay_color, overlay->dashed, 2.0);
        fputs("</g>\n", fp);
        write_axes(fp, &L);
        write_legend(fp, &lg);
        fputs("</svg>\n", fp);
        rc = atomic_file_commit(&af);
    }
    free(counts);
    free(bars);
    return rc == 0 ? 0 : hs_error_context("%s: ", who);
}
