/* spectral_commands.c: `hessian lanczos`, `hessian trace` and `hessian density`: matrix-free spectral
 * methods on the Hessian (or Gauss-Newton) operator of a fixed sample set (deterministic: the same inputs
 * and thread count give the same bits), or, where the method allows it, of a new mini-batch per product. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/progress.h"
#include "../io/atomic_file.h"
#include "../io/npy.h"
#include "../report/svg_plot.h"
#include "../spectral/spectral.h"
#include "command_common.h"
#include "commands.h"

/* For comparison with the peer tools: a new mini-batch of --batch samples (drawn from the selection) for every
 * product, instead of the fixed set. The methods assume a fixed operator; the results say which was used. */
#define STOCHASTIC_SPECS                                                                                       \
    {"--stochastic", ARG_FLAG, &stochastic, "a new mini-batch for every product (not a fixed operator)", 0}, \
        {"--batch", ARG_INT, &batch, "with --stochastic: samples per product", 0}

/* ------------------------------------------------------------------------------------------------------ */

typedef struct {
    Progress progress;
    int max_steps;
} LanczosPrinter;

static void FN(lanczos_step)(void *user, int step, double top, double bottom, double worst) {
    LanczosPrinter *p = user;
    char msg[128];
    snprintf(msg, sizeof msg, "top %.6g, bottom %.6g, worst residual estimate %.2g", top, bottom, worst);
    progress_update(&p->progress, step, msg);
}

int FN(cmd_lanczos)(int argc, char **argv) {
    CommonOptions o;
    FN(common_defaults)(&o, "1000");
    int stochastic = 0, batch = 1000;
    const char *which_name = "largest", *save_vectors = NULL, *start_path = NULL;
    int k = 5, steps = 100;
    double tol = 1e-6;
    uint64_t seed = 0;
    ArgSpec specs[] = {
        COMMON_SPECS(o),
        {"--k", ARG_INT, &k, "eigenpairs wanted (at each end with --which both)", 0},
        {"--which", ARG_STRING, &which_name, "largest | smallest | both", 0},
        {"--steps", ARG_INT, &steps, "maximum Lanczos steps (Krylov dimension)", 0},
        {"--tol", ARG_DOUBLE, &tol, "stop when every wanted residual <= tol * max|lambda| (0: run all steps)", 0},
        {"--seed", ARG_U64, &seed, "seed of the start vector", 0},
        {"--start", ARG_STRING, &start_path, "warm start: a .npy vector (e.g. saved eigenvectors' first row)", 0},
        {"--save-vectors", ARG_STRING, &save_vectors, "write the Ritz vectors as .npy (k x d, float64)", 0},
        STOCHASTIC_SPECS,
    };
    int parsed = args_parse(argc, argv,
                            "usage: hessian lanczos --model cnn --checkpoint CKPT --data DIR [--samples N --offset O] "
                            "--k 5 --which largest|smallest|both [--steps M] [--tol T] [--json F]\n"
                            "Lanczos with full reorthogonalisation (float64) on the Hessian of a fixed sample set: "
                            "extreme eigenvalues with true residuals ||Hv - lambda v||.",
                            specs, (int)(sizeof specs / sizeof specs[0]));
    if (parsed == 1) return EXIT_OK;
    LanczosWhich which = LANCZOS_LARGEST;
    if (parsed == 0) {
        if (strcmp(which_name, "largest") == 0) which = LANCZOS_LARGEST;
        else if (strcmp(which_name, "smallest") == 0) which = LANCZOS_SMALLEST;
        else if (strcmp(which_name, "both") == 0) which = LANCZOS_BOTH;
        else parsed = hs_error("--which must be largest, smallest or both (got '%s')", which_name);
    }
    if (parsed < 0 || FN(common_check)(&o, &o.curvature) != 0 || args_check_positive_int("--k", k) != 0 ||
        args_check_positive_int("--steps", steps) != 0 || args_check_range("--tol", tol, 0, 1) != 0) {
        fprintf(stderr, "hessian lanczos: %s\n", hs_last_error());
        return EXIT_USAGE;
    }
    CommandSetup s;
    LanczosResult res = {0};
    NpyArray start = {0};
    int status = EXIT_ERROR;
    if (FN(setup_open)(&s, &o, 1, stochastic, batch, seed) != 0) goto done;
    if (start_path) {
        if (npy_read(start_path, &start) != 0) goto done;
        if (start.numel != s.op.n && !(start.ndim == 2 && start.shape[1] == s.op.n)) {
            hs_error("--start %s holds %lld values, the operator has dimension %lld", start_path,
                     (long long)start.numel, (long long)s.op.n);
            goto done;
        }
    }
    LanczosPrinter printer;
    printer.max_steps = steps;
    progress_begin(&printer.progress, "Lanczos", "step", steps);
    LanczosOptions lo = {k, which, steps, tol, seed, start_path ? start.data : NULL, save_vectors != NULL,
                         FN(lanczos_step), &printer};
    double t0 = hs_seconds();
    int rc = lanczos(&s.op, &lo, &res);
    progress_end(&printer.progress);
    if (rc != 0) goto done;
    double seconds = hs_seconds() - t0;
    printf("Lanczos (%s, d = %lld, %d samples): %d steps, %lld HVPs, %s, %.1f s\n",
           o.curvature == CURVATURE_GGN ? "GGN" : "Hessian", (long long)s.op.n, s.count, res.steps,
           (long long)res.products, res.converged ? "converged" : "NOT converged (raise --steps or --tol)", seconds);
    for (int i = 0; i < res.count; i++)
        printf("lambda %.10g   residual %.3g\n", res.eigenvalues[i], res.residuals[i]);
    if (save_vectors) {
        int64_t shape[2] = {res.count, s.op.n};
        if (npy_write_f64(save_vectors, res.vectors, 2, shape) != 0) goto done;
    }
    if (o.json) {
        AtomicFile af;
        JsonWriter w;
        if (FN(setup_json_begin)(&af, &w, o.json, "lanczos", &o, &s, seed, seconds) != 0) goto done;
        json_key(&w, "which");
        json_string(&w, which_name);
        json_key(&w, "steps");
        json_int(&w, res.steps);
        json_key(&w, "converged");
        json_bool(&w, res.converged);
        json_key(&w, "tol");
        json_double(&w, tol);
        json_key(&w, "eigenvalues");
        json_double_array(&w, res.eigenvalues, res.count);
        json_key(&w, "residuals");
        json_double_array(&w, res.residuals, res.count);
        if (FN(setup_json_end)(&af, &w) != 0) goto done;
    }
    status = EXIT_OK;
done:
    if (status != EXIT_OK) FN(command_fail)("lanczos");
    lanczos_result_free(&res);
    npy_free(&start);
    FN(setup_close)(&s);
    return status;
}

/* ------------------------------------------------------------------------------------------------------ */

int FN(cmd_trace)(int argc, char **argv) {
    CommonOptions o;
    FN(common_defaults)(&o, "1000");
    int stochastic = 0, batch = 1000;
    const char *method = "both";
    int probes = 100;
    uint64_t seed = 0;
    ArgSpec specs[] = {
        COMMON_SPECS(o),
        {"--probes", ARG_INT, &probes, "Hessian-vector products per estimate", 0},
        {"--method", ARG_STRING, &method, "hutchinson | hutchpp | both", 0},
        {"--seed", ARG_U64, &seed, "seed of the probe vectors", 0},
        STOCHASTIC_SPECS,
    };
    int parsed = args_parse(argc, argv,
                            "usage: hessian trace --model cnn --checkpoint CKPT --data DIR [--samples N --offset O] "
                            "--probes P [--method hutchinson|hutchpp|both] [--json F]\n"
                            "Trace of the Hessian of a fixed sample set: Hutchinson (Rademacher probes) and Hutch++, "
                            "each with its standard error, for the same number of products.",
                            specs, (int)(sizeof specs / sizeof specs[0]));
    if (parsed == 1) return EXIT_OK;
    int hutch = strcmp(method, "hutchinson") == 0 || strcmp(method, "both") == 0;
    int hpp = strcmp(method, "hutchpp") == 0 || strcmp(method, "both") == 0;
    if (parsed == 0 && !hutch && !hpp) parsed = hs_error("--method must be hutchinson, hutchpp or both (got '%s')", method);
    if (parsed < 0 || FN(common_check)(&o, &o.curvature) != 0 || args_check_range("--probes", probes, 4, 1e6) != 0) {
        fprintf(stderr, "hessian trace: %s\n", hs_last_error());
        return EXIT_USAGE;
    }
    CommandSetup s;
    TraceResult th = {0}, tp = {0};
    int status = EXIT_ERROR;
    if (FN(setup_open)(&s, &o, 1, stochastic, batch, seed) != 0) goto done;
    Progress pr;
    progress_begin(&pr, "trace", "HVP", (int64_t)probes * (hutch + hpp));
    s.hop.progress = &pr;
    double t0 = hs_seconds();
    int rc = (hutch && trace_hutchinson(&s.op, probes, seed, &th) != 0) || (hpp && trace_hutchpp(&s.op, probes, seed, &tp) != 0);
    progress_end(&pr);
    if (rc) goto done;
    double seconds = hs_seconds() - t0;
    if (hutch) printf("Hutchinson: trace %.8g +- %.3g (standard error), %d HVPs\n", th.trace, th.std_error, probes);
    if (hpp) printf("Hutch++:    trace %.8g +- %.3g (standard error), %d HVPs\n", tp.trace, tp.std_error, probes);
    if (o.json) {
        AtomicFile af;
        JsonWriter w;
        if (FN(setup_json_begin)(&af, &w, o.json, "trace", &o, &s, seed, seconds) != 0) goto done;
        json_key(&w, "probes");
        json_int(&w, probes);
        if (hutch) {
            json_key(&w, "hutchinson");
            json_object_begin(&w);
            json_key(&w, "trace");
            json_double(&w, th.trace);
            json_key(&w, "std_error");
            json_double(&w, th.std_error);
            json_object_end(&w);
        }
        if (hpp) {
            json_key(&w, "hutchpp");
            json_object_begin(&w);
            json_key(&w, "trace");
            json_double(&w, tp.trace);
            json_key(&w, "std_error");
            json_double(&w, tp.std_error);
            json_object_end(&w);
        }
        if (FN(setup_json_end)(&af, &w) != 0) goto done;
    }
    status = EXIT_OK;
done:
    if (status != EXIT_OK) FN(command_fail)("trace");
    FN(setup_close)(&s);
    return status;
}

/* ------------------------------------------------------------------------------------------------------ */

int FN(cmd_density)(int argc, char **argv) {
    CommonOptions o;
    FN(common_defaults)(&o, "1000");
    int stochastic = 0, batch = 1000;
    const char *csv = NULL, *plot = NULL, *exact_path = NULL;
    int runs = 4, steps = 80, grid = 1000;
    double sigma = 0;
    uint64_t seed = 0;
    ArgSpec specs[] = {
        COMMON_SPECS(o),
        {"--runs", ARG_INT, &runs, "independent Lanczos runs (random probe vectors)", 0},
        {"--steps", ARG_INT, &steps, "Lanczos steps per run", 0},
        {"--grid", ARG_INT, &grid, "points of the density curve", 0},
        {"--sigma", ARG_DOUBLE, &sigma, "Gaussian smoothing width in eigenvalue units (0: automatic)", 0},
        {"--seed", ARG_U64, &seed, "seed of the probe vectors", 0},
        {"--csv", ARG_STRING, &csv, "write eigenvalue,density as CSV", 0},
        {"--plot", ARG_STRING, &plot, "write an SVG plot of the density (log scale)", 0},
        {"--exact", ARG_STRING, &exact_path, "overlay the histogram of exact eigenvalues (.npy from hessian exact)", 0},
        STOCHASTIC_SPECS,
    };
    int parsed = args_parse(argc, argv,
                            "usage: hessian density --model cnn --checkpoint CKPT --data DIR [--samples N --offset O] "
                            "--runs R --steps M [--csv F] [--plot F.svg] [--exact E.npy] [--json F]\n"
                            "Spectral density by stochastic Lanczos quadrature with Gaussian smoothing.",
                            specs, (int)(sizeof specs / sizeof specs[0]));
    if (parsed == 1) return EXIT_OK;
    if (parsed < 0 || FN(common_check)(&o, &o.curvature) != 0 || args_check_positive_int("--runs", runs) != 0 ||
        args_check_positive_int("--steps", steps) != 0 || args_check_range("--grid", grid, 16, 1e6) != 0 ||
        args_check_range("--sigma", sigma, 0, 1e12) != 0) {
        fprintf(stderr, "hessian density: %s\n", hs_last_error());
        return EXIT_USAGE;
    }
    CommandSetup s;
    DensityResult res = {0};
    NpyArray exact = {0};
    int status = EXIT_ERROR;
    if (FN(setup_open)(&s, &o, 1, stochastic, batch, seed) != 0) goto done;
    if (exact_path && npy_read(exact_path, &exact) != 0) goto done;
    DensityOptions dopt = {runs, steps, sigma, grid, seed, DENSITY_RADEMACHER};
    Progress pr;
    progress_begin(&pr, "density", "HVP", (int64_t)runs * steps);
    s.hop.progress = &pr;
    double t0 = hs_seconds();
    int rc = spectral_density(&s.op, &dopt, &res);
    progress_end(&pr);
    if (rc != 0) goto done;
    double seconds = hs_seconds() - t0;
    double lo = res.node_values[0], hi = res.node_values[0];
    for (int i = 0; i < res.nodes; i++) lo = fmin(lo, res.node_values[i]), hi = fmax(hi, res.node_values[i]);
    printf("density: %d runs x %d steps, %lld HVPs, Ritz values in [%.6g, %.6g], sigma %.3g, %.1f s\n", runs, steps,
           (long long)s.op.applications, lo, hi, res.sigma, seconds);
    if (csv) {
        AtomicFile af;
        if (atomic_file_open(&af, csv) != 0) goto done;
        fprintf(af.fp, "eigenvalue,density\n");
        for (int i = 0; i < res.grid; i++) fprintf(af.fp, "%.10g,%.10g\n", res.x[i], res.density[i]);
        if (atomic_file_commit(&af) != 0) goto done;
    }
    if (plot) {
        PlotFrame frame = {"Spectral density (stochastic Lanczos quadrature)", "eigenvalue", "density", 0, 0, 1};
        if (exact.numel > 0) {
            /* Exact histogram with the SLQ density overlaid, scaled to counts per bin. */
            int bins = 100;
            double emin = exact.data[0], emax = exact.data[0];
            for (int64_t i = 0; i < exact.numel; i++) emin = fmin(emin, exact.data[i]), emax = fmax(emax, exact.data[i]);
            double width = (emax - emin) / bins, *scaled = malloc(sizeof(double) * (size_t)res.grid);
            if (!scaled) goto done;
            for (int i = 0; i < res.grid; i++) scaled[i] = res.density[i] * (double)exact.numel * width;
            PlotSeries overlay = {"SLQ density (scaled to counts)", res.x, scaled, res.grid, NULL, 0};
            PlotFrame hf = {"Exact eigenvalues (histogram) and SLQ density", "eigenvalue", "count", 0, 0, 1};
            int plot_rc = svg_histogram(plot, &hf, exact.data, (int)exact.numel, bins, 0, 1, &overlay);
            free(scaled);
            if (plot_rc != 0) goto done;
        } else {
            PlotSeries curve = {"SLQ density", res.x, res.density, res.grid, NULL, 0};
            if (svg_line_chart(plot, &frame, &curve, 1, NULL, 0) != 0) goto done;
        }
    }
    if (o.json) {
        AtomicFile af;
        JsonWriter w;
        if (FN(setup_json_begin)(&af, &w, o.json, "density", &o, &s, seed, seconds) != 0) goto done;
        json_key(&w, "runs");
        json_int(&w, runs);
        json_key(&w, "steps");
        json_int(&w, steps);
        json_key(&w, "sigma");
        json_double(&w, res.sigma);
        json_key(&w, "nodes");
        json_double_array(&w, res.node_values, res.nodes);
        json_key(&w, "weights");
        json_double_array(&w, res.node_weights, res.nodes);
        if (FN(setup_json_end)(&af, &w) != 0) goto done;
    }
    status = EXIT_OK;
done:
    if (status != EXIT_OK) FN(command_fail)("density");
    density_result_free(&res);
    npy_free(&exact);
    FN(setup_close)(&s);
    return status;
}
