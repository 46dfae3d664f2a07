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
        {"--batch N", ARG_INT, &batch, "with --stochastic: samples per product", 0}

/* --batch only means something with --stochastic. */
static int stochastic_check(int argc, char **argv, int stochastic, int batch) {
    if (!stochastic) return args_check_unused(argc, argv, "--batch", "without --stochastic (each product uses the "
                                                                     "whole selection)");
    return args_check_positive_int("--batch", batch);
}

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
        {"--k N", ARG_INT, &k, "eigenpairs wanted (at each end with --which both)", 0},
        {"--which largest|smallest|both", ARG_STRING, &which_name, "which end of the spectrum", 0},
        {"--steps N", ARG_INT, &steps, "maximum Lanczos steps (Krylov dimension)", 0},
        {"--tol X", ARG_DOUBLE, &tol, "stop when every wanted residual <= tol * max|lambda| (0: run all steps)", 0},
        {"--seed N", ARG_U64, &seed, "seed of the start vector and of restart vectors", 0},
        {"--start FILE", ARG_STRING, &start_path,
         "warm start: a .npy vector, shape (d,) or (K, d) (its first row: e.g. saved Ritz vectors)", 0},
        {"--save-vectors FILE", ARG_STRING, &save_vectors, "write the Ritz vectors as .npy (k x d, float64)", 0},
        STOCHASTIC_SPECS,
    };
    int parsed = FN(common_parse)(&o, argc, argv,
                                  "usage: hessian lanczos --checkpoint FILE|--random-init SEED "
                                  "--data DIR|--inputs X --targets Y [options]\n"
                                  "Lanczos with full reorthogonalisation (float64) on the Hessian of a fixed sample "
                                  "set: extreme eigenvalues with true residuals ||Hv - lambda v||.\n"
                                  "example: hessian lanczos --model cnn --checkpoint cnn.safetensors --data data "
                                  "--samples 1000 --k 5 --which both --tol 1e-6 --json lanczos.json",
                                  specs, (int)(sizeof specs / sizeof specs[0]));
    if (parsed == 1) return EXIT_OK;
    LanczosWhich which = LANCZOS_LARGEST;
    if (parsed == 0) {
        if (strcmp(which_name, "largest") == 0) which = LANCZOS_LARGEST;
        else if (strcmp(which_name, "smallest") == 0) which = LANCZOS_SMALLEST;
        else if (strcmp(which_name, "both") == 0) which = LANCZOS_BOTH;
        else parsed = hs_error("--which must be largest, smallest or both (got '%s')", which_name);
    }
    if (parsed < 0 || args_check_positive_int("--k", k) != 0 || args_check_positive_int("--steps", steps) != 0 ||
        args_check_range("--tol", tol, 0, 1) != 0 || stochastic_check(argc, argv, stochastic, batch) != 0)
        return FN(command_usage_error)("lanczos");
    CommandSetup s;
    LanczosResult res = {0};
    NpyArray start = {0};
    CommandFile outputs[] = {{"--json", o.json}, {"--save-vectors", save_vectors}}, inputs[] = {{"--start", start_path}};
    int status = FN(setup_model)(&s, &o, outputs, 2, inputs, 1);
    int64_t want = which == LANCZOS_BOTH ? 2 * (int64_t)k : k;
    if (!status && want > s.d) {
        hs_error("--k %d%s asks for %lld eigenpairs, more than the dimension d = %lld (%s)", k,
                 which == LANCZOS_BOTH ? " at each end" : "", (long long)want, (long long)s.d, s.d_text);
        status = EXIT_USAGE;
    }
    if (!status && steps < want) {
        hs_error("--steps %d is fewer than the %lld eigenpairs wanted", steps, (long long)want);
        status = EXIT_USAGE;
    }
    if (!status && start_path) status = FN(setup_read_vector)(&s, "--start", start_path, INT32_MAX, &start);
    if (!status) status = FN(setup_data)(&s, &o, 1, stochastic, batch, seed);
    if (status) goto done;
    status = EXIT_ERROR;
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
        if (FN(setup_json_begin)(&af, &w, o.json, "lanczos", &o, &s, &seed, s.op.applications, seconds) != 0)
            goto done;
        json_key(&w, "k");
        json_int(&w, k);
        json_key(&w, "which");
        json_string(&w, which_name);
        json_key(&w, "max_steps");
        json_int(&w, steps);
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
    if (status != EXIT_OK) FN(command_report)("lanczos", status);
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
        {"--probes N", ARG_INT, &probes, "Hessian-vector products per estimate, at least 4", 0},
        {"--method hutchinson|hutchpp|both", ARG_STRING, &method, "estimator", 0},
        {"--seed N", ARG_U64, &seed, "seed of the probe vectors", 0},
        STOCHASTIC_SPECS,
    };
    int parsed = FN(common_parse)(&o, argc, argv,
                                  "usage: hessian trace --checkpoint FILE|--random-init SEED "
                                  "--data DIR|--inputs X --targets Y [options]\n"
                                  "Trace of the Hessian of a fixed sample set: Hutchinson (Rademacher probes) and "
                                  "Hutch++, each with its standard error, for the same number of products.\n"
                                  "example: hessian trace --model cnn --checkpoint cnn.safetensors --data data "
                                  "--samples 1000 --probes 100 --seed 1 --json trace.json",
                                  specs, (int)(sizeof specs / sizeof specs[0]));
    if (parsed == 1) return EXIT_OK;
    int hutch = strcmp(method, "hutchinson") == 0 || strcmp(method, "both") == 0;
    int hpp = strcmp(method, "hutchpp") == 0 || strcmp(method, "both") == 0;
    if (parsed == 0 && !hutch && !hpp) parsed = hs_error("--method must be hutchinson, hutchpp or both (got '%s')", method);
    if (parsed < 0 || args_check_range("--probes", probes, 4, 1e6) != 0 ||
        stochastic_check(argc, argv, stochastic, batch) != 0)
        return FN(command_usage_error)("trace");
    CommandSetup s;
    TraceResult th = {0}, tp = {0};
    CommandFile outputs[] = {{"--json", o.json}};
    int status = FN(setup_model)(&s, &o, outputs, 1, NULL, 0);
    if (!status) status = FN(setup_data)(&s, &o, 1, stochastic, batch, seed);
    if (status) goto done;
    status = EXIT_ERROR;
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
        if (FN(setup_json_begin)(&af, &w, o.json, "trace", &o, &s, &seed, s.op.applications, seconds) != 0) goto done;
        json_key(&w, "method");
        json_string(&w, method);
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
    if (status != EXIT_OK) FN(command_report)("trace", status);
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
        {"--runs N", ARG_INT, &runs, "independent Lanczos runs (random probe vectors)", 0},
        {"--steps N", ARG_INT, &steps, "Lanczos steps per run (at most d are used)", 0},
        {"--grid N", ARG_INT, &grid, "points of the density curve, 16 to 1000000", 0},
        {"--sigma X", ARG_DOUBLE, &sigma, "Gaussian smoothing width in eigenvalue units (default 0: automatic)", 0},
        {"--seed N", ARG_U64, &seed, "seed of the probe vectors", 0},
        {"--csv FILE", ARG_STRING, &csv, "write eigenvalue,density as CSV", 0},
        {"--plot FILE", ARG_STRING, &plot, "write an SVG plot of the density", 0},
        {"--exact FILE", ARG_STRING, &exact_path,
         "with --plot: overlay the histogram of exact eigenvalues (.npy of shape (d,), from hessian exact)", 0},
        STOCHASTIC_SPECS,
    };
    int parsed = FN(common_parse)(&o, argc, argv,
                                  "usage: hessian density --checkpoint FILE|--random-init SEED "
                                  "--data DIR|--inputs X --targets Y [options]\n"
                                  "Spectral density by stochastic Lanczos quadrature with Gaussian smoothing.\n"
                                  "example: hessian density --model cnn --checkpoint cnn.safetensors --data data "
                                  "--samples 1000 --runs 4 --steps 80 --plot density.svg --exact E.npy --json "
                                  "density.json",
                                  specs, (int)(sizeof specs / sizeof specs[0]));
    if (parsed == 1) return EXIT_OK;
    if (parsed < 0 || args_check_positive_int("--runs", runs) != 0 || args_check_positive_int("--steps", steps) != 0 ||
        args_check_range("--grid", grid, 16, 1e6) != 0 || args_check_range("--sigma", sigma, 0, 1e12) != 0 ||
        stochastic_check(argc, argv, stochastic, batch) != 0 ||
        (!plot && args_check_unused(argc, argv, "--exact", "without --plot (it only adds a histogram to the plot)")))
        return FN(command_usage_error)("density");
    CommandSetup s;
    DensityResult res = {0};
    NpyArray exact = {0};
    CommandFile outputs[] = {{"--json", o.json}, {"--csv", csv}, {"--plot", plot}}, inputs[] = {{"--exact", exact_path}};
    int status = FN(setup_model)(&s, &o, outputs, 3, inputs, 1);
    if (!status && exact_path) status = FN(setup_read_vector)(&s, "--exact", exact_path, 1, &exact);
    if (!status) status = FN(setup_data)(&s, &o, 1, stochastic, batch, seed);
    if (status) goto done;
    status = EXIT_ERROR;
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
        for (int i = 0; i < res.grid; i++) {
            char x[JSON_DOUBLE_CHARS], y[JSON_DOUBLE_CHARS];
            json_format_double(x, res.x[i]);
            json_format_double(y, res.density[i]);
            fprintf(af.fp, "%s,%s\n", x, y);
        }
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
        if (FN(setup_json_begin)(&af, &w, o.json, "density", &o, &s, &seed, s.op.applications, seconds) != 0)
            goto done;
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
    if (status != EXIT_OK) FN(command_report)("density", status);
    density_result_free(&res);
    npy_free(&exact);
    FN(setup_close)(&s);
    return status;
}
