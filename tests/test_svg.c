/* test_svg.c: tests for src/report/svg_plot.c: writes a line chart with reference lines, a symmetric-log
 * histogram with an overlay curve, a log-y chart and edge cases (all values equal, one point, NaN values)
 * into a fresh temporary folder and checks that each file is a complete SVG document with the expected
 * texts, balanced groups and escaped labels, and that empty input is refused with a message.
 * Set TEST_SVG_KEEP=1 to keep the folder (its name is printed) for viewing the plots. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../src/core/common.h"
#include "../src/report/svg_plot.h"
#include "check.h"

static char dir[] = "/tmp/test_svg_XXXXXX";

static void path_in_dir(char *buf, size_t cap, const char *name) { snprintf(buf, cap, "%s/%s", dir, name); }

/* Whole file as a NUL-terminated string (NULL if it cannot be read). */
static char *read_all(const char *path) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    size_t cap = 4096, len = 0;
    char *s = malloc(cap);
    size_t got;
    while (s && (got = fread(s + len, 1, cap - len - 1, fp)) > 0) {
        len += got;
        if (cap - len < 2) {
            char *t = realloc(s, cap *= 2);
            if (!t) free(s);
            s = t;
        }
    }
    fclose(fp);
    if (s) s[len] = '\0';
    return s;
}

static int count_of(const char *s, const char *needle) {
    int n = 0;
    for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

/* The markup of an XML document without its character data (the texts between tags). */
static char *markup_only(const char *s) {
    char *m = malloc(strlen(s) + 1), *q = m;
    if (!m) return NULL;
    int in_tag = 0;
    for (; *s; s++) {
        if (*s == '<') in_tag = 1;
        if (in_tag) *q++ = *s;
        if (*s == '>') in_tag = 0;
    }
    *q = '\0';
    return m;
}

static int starts_with(const char *s, const char *prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

/* Checks shared by every plot: a complete document with balanced groups and texts. */
static char *check_document(const char *name) {
    char path[512];
    path_in_dir(path, sizeof path, name);
    char *s = read_all(path);
    CHECK(s != NULL, "%s was not written", name);
    if (!s) return NULL;
    CHECK(starts_with(s, "<?xml") || starts_with(s, "<svg"), "%s does not start with <?xml or <svg", name);
    CHECK(strstr(s, "<svg xmlns=\"http://www.w3.org/2000/svg\"") != NULL, "%s has no SVG root element", name);
    size_t len = strlen(s);
    CHECK(len >= 7 && strcmp(s + len - 7, "</svg>\n") == 0, "%s does not end with </svg>", name);
    int open = count_of(s, "<g ") + count_of(s, "<g>"), close = count_of(s, "</g>");
    CHECK(open == close && open > 0, "%s: %d <g> but %d </g>", name, open, close);
    CHECK(count_of(s, "<text") == count_of(s, "</text>"), "%s: unbalanced <text>", name);
    CHECK(strstr(s, "<script") == NULL, "%s contains a script", name);
    char *markup = markup_only(s);
    CHECK(markup && !strstr(markup, "nan") && !strstr(markup, "inf"), "%s has nan or inf coordinates", name);
    free(markup);
    return s;
}

static void test_line_chart(void) {
    enum { N = 120 };
    double it[N], sharp[N], est[N], loss[N];
    for (int i = 0; i < N; i++) {
        it[i] = 10.0 * i;
        sharp[i] = 44.1 * (1 - exp(-i / 15.0)) + 0.8 * sin(i * 0.7);
        est[i] = 44.1 * (1 - exp(-i / 25.0));
        loss[i] = 30.0 * exp(-i / 40.0) + 2;
    }
    PlotSeries series[3] = {
        {.label = "sharpness <lanczos> & power", .x = it, .y = sharp, .n = N},
        {.label = "estimate", .x = it, .y = est, .n = N, .dashed = 1},
        {.label = "loss x 10", .x = it, .y = loss, .n = N, .color = "#333333"},
    };
    PlotHLine hl[2] = {{"exact top eigenvalue 44.1", 44.1, NULL}, {"2/lr", 40.0, "#b22222"}};
    PlotFrame f = {.title = "Top Hessian eigenvalue during training", .xlabel = "iteration", .ylabel = "eigenvalue"};
    char path[512];
    path_in_dir(path, sizeof path, "line.svg");
    CHECK(svg_line_chart(path, &f, series, 3, hl, 2) == 0, "svg_line_chart failed: %s", hs_last_error());
    char *s = check_document("line.svg");
    if (!s) return;
    CHECK(strstr(s, "Top Hessian eigenvalue during training") != NULL, "title missing");
    CHECK(strstr(s, ">iteration<") != NULL && strstr(s, ">eigenvalue<") != NULL, "axis labels missing");
    CHECK(strstr(s, "sharpness &lt;lanczos&gt; &amp; power") != NULL, "legend label not escaped");
    CHECK(strstr(s, "<lanczos>") == NULL && strstr(s, "& power") == NULL, "raw < or & in the output");
    CHECK(strstr(s, ">estimate<") != NULL && strstr(s, ">loss x 10<") != NULL, "legend entries missing");
    CHECK(strstr(s, "exact top eigenvalue 44.1") != NULL && strstr(s, ">2/lr<") != NULL, "reference labels missing");
    CHECK(strstr(s, "stroke-dasharray") != NULL, "dashed series not dashed");
    CHECK(strstr(s, "#b22222") != NULL && strstr(s, "#333333") != NULL, "given colours not used");
    CHECK(strstr(s, ">40<") != NULL && strstr(s, ">1000<") != NULL, "expected nice tick labels 40 and 1000");
    CHECK(strstr(s, "font-family=\"sans-serif\"") != NULL, "no sans-serif font");
    free(s);
}

static void test_symlog_histogram(void) {
    /* A Hessian-like spectrum: a bulk near zero, a few negative values and outliers up to ~100. */
    enum { N = 2000 };
    double v[N];
    unsigned long long state = 12345;
    for (int i = 0; i < N; i++) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        double u = (double)(state >> 11) / 9007199254740992.0;
        v[i] = (u - 0.45) * 0.4;
    }
    for (int i = 0; i < 20; i++) v[i] = 3.0 + 5.0 * i;
    for (int i = 20; i < 30; i++) v[i] = -1.0 - 2.0 * (i - 20);
    v[30] = NAN;
    v[31] = INFINITY;
    /* Overlay: a kernel density estimate in symlog coordinates, scaled to counts per bin, sampled on a grid
     * that is uniform on the symlog axis (x in original units). */
    const double c = 0.1;
    const int bins = 60;
    double tmin = INFINITY, tmax = -INFINITY, t[N];
    for (int i = 0; i < N; i++) {
        t[i] = isfinite(v[i]) ? copysign(log10(1 + fabs(v[i]) / c), v[i]) : NAN;
        if (isfinite(t[i])) tmin = fmin(tmin, t[i]), tmax = fmax(tmax, t[i]);
    }
    enum { M = 400 };
    double ox[M], oy[M], bw = (tmax - tmin) / bins, h = 0.08;
    for (int j = 0; j < M; j++) {
        double tj = tmin + (tmax - tmin) * j / (M - 1);
        ox[j] = copysign(c * (pow(10, fabs(tj)) - 1), tj);
        double sum = 0;
        for (int i = 0; i < N; i++)
            if (isfinite(t[i])) sum += exp(-0.5 * (tj - t[i]) * (tj - t[i]) / (h * h));
        oy[j] = sum / (h * 2.5066282746310002) * bw; /* sqrt(2 pi) */
    }
    PlotSeries overlay = {.label = "density (SLQ) & fit", .x = ox, .y = oy, .n = M};
    PlotFrame f = {.title = "Hessian spectrum", .xlabel = "eigenvalue (symlog)", .log_y = 1};
    char path[512];
    path_in_dir(path, sizeof path, "hist.svg");
    CHECK(svg_histogram(path, &f, v, N, bins, 1, c, &overlay) == 0, "svg_histogram failed: %s", hs_last_error());
    char *s = check_document("hist.svg");
    if (!s) return;
    CHECK(strstr(s, "Hessian spectrum") != NULL && strstr(s, "eigenvalue (symlog)") != NULL, "texts missing");
    CHECK(strstr(s, "density (SLQ) &amp; fit") != NULL, "overlay legend missing or unescaped");
    CHECK(strstr(s, ">0<") != NULL && strstr(s, ">10<") != NULL && strstr(s, ">-10<") != NULL,
          "symlog ticks 0, 10, -10 missing");
    CHECK(strstr(s, "2 non-finite values skipped") != NULL, "note about skipped values missing");
    CHECK(strstr(s, "<rect") != NULL && strstr(s, "<path") != NULL, "bars or overlay missing");
    free(s);

    /* Linear histogram, linear counts, no overlay. */
    path_in_dir(path, sizeof path, "hist_linear.svg");
    PlotFrame g = {.title = "Linear histogram", .xlabel = "value"};
    CHECK(svg_histogram(path, &g, v + 40, N - 40, 30, 0, 0, NULL) == 0, "linear histogram failed: %s",
          hs_last_error());
    free(check_document("hist_linear.svg"));
}

static void test_log_y(void) {
    enum { N = 300 };
    double loss[N], gn[N];
    for (int i = 0; i < N; i++) {
        loss[i] = 2.3 * exp(-i / 30.0) + 1e-3;
        gn[i] = 50.0 * exp(-i / 60.0) * (1 + 0.3 * sin(i * 0.3));
    }
    loss[10] = NAN;
    loss[11] = -1.0; /* not drawable on a log axis */
    gn[50] = 0.0;
    PlotSeries series[2] = {{.label = "train loss", .y = loss, .n = N}, {.label = "gradient norm", .y = gn, .n = N}};
    PlotHLine hl[1] = {{"target 1e-3", 1e-3, NULL}};
    PlotFrame f = {.title = "Training (log scale)", .xlabel = "step", .ylabel = "value", .log_y = 1};
    char path[512];
    path_in_dir(path, sizeof path, "logy.svg");
    CHECK(svg_line_chart(path, &f, series, 2, hl, 1) == 0, "log-y chart failed: %s", hs_last_error());
    char *s = check_document("logy.svg");
    if (!s) return;
    CHECK(strstr(s, "Training (log scale)") != NULL, "title missing");
    CHECK(strstr(s, ">0.001<") != NULL && strstr(s, ">10<") != NULL, "decade ticks 0.001 and 10 missing");
    CHECK(strstr(s, "1 non-finite value skipped") != NULL, "NaN note missing");
    CHECK(strstr(s, "2 non-positive values not shown") != NULL, "non-positive note missing");
    free(s);
}

static void test_edge_cases(void) {
    char path[512];
    double same[5] = {3, 3, 3, 3, 3};
    PlotSeries flat = {.label = "flat", .y = same, .n = 5};
    path_in_dir(path, sizeof path, "flat.svg");
    CHECK(svg_line_chart(path, NULL, &flat, 1, NULL, 0) == 0, "flat line failed: %s", hs_last_error());
    free(check_document("flat.svg"));

    path_in_dir(path, sizeof path, "flat_hist.svg");
    CHECK(svg_histogram(path, NULL, same, 5, 10, 1, 1.0, NULL) == 0, "flat histogram failed: %s", hs_last_error());
    free(check_document("flat_hist.svg"));

    double one_x = 2.5, one_y = -7.0;
    PlotSeries single = {.label = "one point", .x = &one_x, .y = &one_y, .n = 1};
    path_in_dir(path, sizeof path, "single.svg");
    CHECK(svg_line_chart(path, NULL, &single, 1, NULL, 0) == 0, "single point failed: %s", hs_last_error());
    char *s = check_document("single.svg");
    if (s) CHECK(strstr(s, "<circle") != NULL, "single point not drawn as a dot");
    free(s);

    /* Empty input: an error with a message, and no file. */
    PlotSeries empty = {.label = "empty", .y = same, .n = 0};
    path_in_dir(path, sizeof path, "empty.svg");
    hs_error("(none)");
    CHECK(svg_line_chart(path, NULL, &empty, 1, NULL, 0) == -1, "n = 0 series accepted");
    CHECK(strstr(hs_last_error(), "no points") != NULL, "unexpected message: %s", hs_last_error());
    hs_error("(none)");
    CHECK(svg_histogram(path, NULL, same, 0, 10, 0, 0, NULL) == -1, "n = 0 histogram accepted");
    CHECK(strstr(hs_last_error(), "n = 0") != NULL, "unexpected message: %s", hs_last_error());
    CHECK(svg_line_chart(path, NULL, NULL, 0, NULL, 0) == -1, "nseries = 0 accepted");
    double nans[2] = {NAN, NAN};
    CHECK(svg_histogram(path, NULL, nans, 2, 10, 0, 0, NULL) == -1, "all-NaN histogram accepted");
    CHECK(svg_histogram(path, NULL, same, 5, 10, 1, 0.0, NULL) == -1, "zero symlog threshold accepted");
    CHECK(svg_histogram(path, NULL, same, 5, 0, 0, 0, NULL) == -1, "zero bins accepted");
    CHECK(access(path, F_OK) != 0, "a failed call left %s behind", path);

    /* An unwritable path fails with a message. */
    hs_error("(none)");
    CHECK(svg_line_chart("/nonexistent-dir/x.svg", NULL, &flat, 1, NULL, 0) == -1, "unwritable path accepted");
    CHECK(strstr(hs_last_error(), "svg_line_chart") != NULL, "unexpected message: %s", hs_last_error());
}

/* Every file in the folder is one of ours: no temporary files left behind. Removes them unless kept. */
static void cleanup(int keep) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char path[1024];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        CHECK(strstr(e->d_name, ".tmp") == NULL, "temporary file %s left behind", e->d_name);
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (!keep) remove(path);
    }
    closedir(d);
    if (keep)
        printf("plots kept in %s\n", dir);
    else
        rmdir(dir);
}

int main(void) {
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_line_chart();
    test_symlog_histogram();
    test_log_y();
    test_edge_cases();
    const char *keep = getenv("TEST_SVG_KEEP");
    cleanup(keep && *keep && strcmp(keep, "0") != 0);
    return check_summary("test_svg");
}
