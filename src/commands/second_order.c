/* second_order.c: `hessian hvp`, `hessian exact` and `hessian power`: Hessian-vector products with vectors
 * in .npy files, the full Hessian with its spectrum, and power iteration (stochastic or on a fixed set). */
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

/* ------------------------------------------------------------------------------------------------------ */

int FN(cmd_hvp)(int argc, char **argv) {
    CommonOptions o;
    FN(common_defaults)(&o, "1000");
    const char *vector = NULL, *out = NULL;
    ArgSpec specs[] = {
        COMMON_SPECS(o),
        {"--vector", ARG_STRING, &vector, ".npy vector v (float32/float64, parameter order)", 1},
        {"--out", ARG_STRING, &out, ".npy file for Hv (written in the working precision)", 1},
    };
    int parsed = args_parse(argc, argv,
                            "usage: hessian hvp --model cnn --checkpoint CKPT --data DIR --samples N --offset O "
                            "--vector v.npy --out hv.npy [--precision f32|f64]\n"
                            "Exact Hessian-vector product (forward-over-reverse) of the mean cross-entropy.",
                            specs, (int)(sizeof specs / sizeof specs[0]));
    if (parsed == 1) return EXIT_OK;
    if (parsed < 0 || FN(common_check)(&o, &o.curvature) != 0) {
        fprintf(stderr, "hessian hvp: %s\n", hs_last_error());
        return EXIT_USAGE;
    }
    CommandSetup cs;
    int status = EXIT_ERROR;
    NpyArray v = {0};
    double *hv = NULL;
    real *hv_out = NULL;
    if (FN(setup_open)(&cs, &o, 0, 0, 0, 0) != 0 || npy_read(vector, &v) != 0) goto done;
    Model *m = cs.model;
    int count = cs.count;
    size_t P = m->num_params;
    if (v.numel != (int64_t)P) {
        hs_error("%s holds %lld values, but model %s has %zu parameters", vector, (long long)v.numel, o.arch, P);
        goto done;
    }
    hv = hs_malloc(sizeof(double) * P);
    hv_out = hs_malloc(sizeof(real) * P);
    if (!hv || !hv_out) goto done;
    SampleSet set = {&cs.train, cs.idx, count, o.chunk};
    double t0 = hs_seconds(), loss;
    if (FN(curv_hvp)(m, &set, v.data, 1, o.curvature, hv, &loss) != 0) goto done;
    double seconds = hs_seconds() - t0, vhv = 0, vv = 0, hh = 0;
    for (size_t i = 0; i < P; i++) {
        vhv += v.data[i] * hv[i];
        vv += v.data[i] * v.data[i];
        hh += hv[i] * hv[i];
        hv_out[i] = (real)hv[i];
    }
    int64_t shape[1] = {(int64_t)P};
#if defined(HS_F64)
    if (npy_write_f64(out, hv_out, 1, shape) != 0) goto done;
#else
    if (npy_write_f32(out, hv_out, 1, shape) != 0) goto done;
#endif
    printf("loss %.8f | samples %d | |v| %.6g | v.Hv %.10g | v.Hv/v.v %.10g | |Hv| %.6g | %.3f s | wrote %s\n", loss,
           count, sqrt(vv), vhv, vv > 0 ? vhv / vv : 0, sqrt(hh), seconds, out);
    if (o.json) {
        AtomicFile af;
        JsonWriter w;
        if (FN(setup_json_begin)(&af, &w, o.json, "hvp", &o, &cs, 0, seconds) != 0) goto done;
        json_key(&w, "loss");
        json_double(&w, loss);
        json_key(&w, "vHv");
        json_double(&w, vhv);
        json_key(&w, "rayleigh_quotient");
        json_double(&w, vv > 0 ? vhv / vv : 0);
        json_key(&w, "hv_norm");
        json_double(&w, sqrt(hh));
        if (FN(setup_json_end)(&af, &w) != 0) goto done;
    }
    status = EXIT_OK;
done:
    if (status != EXIT_OK) FN(command_fail)("hvp");
    npy_free(&v);
    free(hv);
    free(hv_out);
    FN(setup_close)(&cs);
    return status;
}

/* ------------------------------------------------------------------------------------------------------ */

/* One layer's diagonal block of the Hessian: the curvature of that layer's parameters alone. */
typedef struct {
    char name[96]; /* "0" for 0.weight + 0.bias, "layer1.0.conv1", ... */
    int64_t size;
    double smallest, largest, trace;
} LayerBlock;

static int FN(layer_blocks)(const Model *m, const double *H, size_t P, LayerBlock **out, int *count) {
    *out = hs_calloc((size_t)m->num_layers, sizeof(LayerBlock));
    if (!*out) return -1;
    *count = 0;
    for (int l = 0; l < m->num_layers; l++) {
        size_t begin = P, end = 0;
        const char *first = NULL;
        for (int t = 0; t < m->num_tensors; t++)
            if (m->tensors[t].layer == l) {
                if (!first) first = m->tensors[t].name;
                if (m->tensors[t].offset < begin) begin = m->tensors[t].offset;
                if (m->tensors[t].offset + m->tensors[t].numel > end) end = m->tensors[t].offset + m->tensors[t].numel;
            }
        if (!first) continue;
        size_t n = end - begin;
        double *block = hs_malloc(sizeof(double) * n * n), *eig = hs_malloc(sizeof(double) * n);
        if (!block || !eig) {
            free(block);
            free(eig);
            return -1;
        }
        LayerBlock *b = &(*out)[(*count)++];
        const char *dot = strrchr(first, '.');
        snprintf(b->name, sizeof b->name, "%.*s", dot ? (int)(dot - first) : (int)strlen(first), first);
        b->size = (int64_t)n;
        for (size_t i = 0; i < n; i++) {
            memcpy(block + i * n, H + (begin + i) * P + begin, sizeof(double) * n);
            b->trace += block[i * n + i];
        }
        int rc = eigen_symmetric_f64(block, (int64_t)n, eig, 0);
        if (rc == 0) {
            b->smallest = eig[0];
            b->largest = eig[n - 1];
        }
        free(block);
        free(eig);
        if (rc != 0) return -1;
    }
    return 0;
}

static void exact_progress(void *user, int64_t done, int64_t total) { (void)total; progress_update(user, done, NULL); }

int FN(cmd_exact)(int argc, char **argv) {
    CommonOptions o;
    FN(common_defaults)(&o, "1000");
    const char *save_matrix = NULL, *save_eigs = NULL, *plot = NULL;
    int k = 5, per_layer = 0;
    ArgSpec specs[] = {
        COMMON_SPECS(o),
        {"--k", ARG_INT, &k, "how many smallest and largest eigenvalues to report", 0},
        {"--per-layer", ARG_FLAG, &per_layer, "also report each layer block's extreme eigenvalues and trace", 0},
        {"--save-matrix", ARG_STRING, &save_matrix, "write the symmetrised Hessian as .npy (d x d)", 0},
        {"--save-eigenvalues", ARG_STRING, &save_eigs, "write all eigenvalues (ascending) as .npy", 0},
        {"--plot", ARG_STRING, &plot, "write an SVG histogram of all eigenvalues (symmetric-log axis)", 0},
    };
    int parsed = args_parse(argc, argv,
                            "usage: hessian exact --model cnn --checkpoint CKPT --data DIR --samples 1000 --offset 0 "
                            "[--k 5] [--save-matrix H.npy] [--save-eigenvalues E.npy] [--plot spectrum.svg] --json "
                            "out.json\nThe full Hessian from batched exact HVPs, and all its eigenvalues (LAPACKE).",
                            specs, (int)(sizeof specs / sizeof specs[0]));
    if (parsed == 1) return EXIT_OK;
    if (parsed < 0 || FN(common_check)(&o, &o.curvature) != 0 || args_check_positive_int("--k", k) != 0) {
        fprintf(stderr, "hessian exact: %s\n", hs_last_error());
        return EXIT_USAGE;
    }
    CommandSetup cs;
    int status = EXIT_ERROR;
    double *H = NULL, *eig = NULL;
    real *Hr = NULL, *eigr = NULL;
    LayerBlock *layers = NULL;
    int num_layers = 0;
    if (FN(setup_open)(&cs, &o, 0, 0, 0, 0) != 0) goto done;
    Model *m = cs.model;
    int count = cs.count;
    size_t P = m->num_params;
    if (P > 20000) {
        hs_error("model %s has %zu parameters: its exact Hessian (%.1f GB) is too large; use power or lanczos", o.arch,
                 P, 8e-9 * (double)P * (double)P);
        goto done;
    }
    if (2 * k > (int)P) {
        hs_error("--k %d is more than half the %zu eigenvalues", k, P);
        goto done;
    }
    H = hs_malloc(sizeof(double) * P * P);
    eig = hs_malloc(sizeof(double) * P);
    if (!H || !eig) goto done;
    SampleSet set = {&cs.train, cs.idx, count, o.chunk};
    Progress pr;
    progress_begin(&pr, "Hessian", "dir", (int64_t)P * ((count + (o.chunk > 0 ? o.chunk : 64) - 1) / (o.chunk > 0 ? o.chunk : 64)));
    ExactInfo info;
    double t0 = hs_seconds();
    if (FN(curv_exact)(m, &set, o.curvature, H, &info, exact_progress, &pr) != 0) {
        progress_end(&pr);
        goto done;
    }
    progress_end(&pr);
    double t_matrix = hs_seconds() - t0;
    if (save_matrix) {
        int64_t shape[2] = {(int64_t)P, (int64_t)P};
        if (npy_write_f64(save_matrix, H, 2, shape) != 0) goto done;
    }
    double *Hfull = NULL; /* the whole matrix, kept for --per-layer */
    size_t Pfull = P;
    if (per_layer) {
        Hfull = hs_malloc(sizeof(double) * P * P);
        if (!Hfull) goto done;
        memcpy(Hfull, H, sizeof(double) * P * P);
    }
    if (o.params) {
        /* The block of the chosen parameters: rows and columns of those indices. */
        int64_t *sel, nsel;
        if (FN(command_param_block)(m, o.params, &sel, &nsel) != 0) goto done;
        for (int64_t i = 0; i < nsel; i++)
            for (int64_t j = 0; j < nsel; j++) H[i * nsel + j] = H[(size_t)sel[i] * P + (size_t)sel[j]];
        free(sel);
        P = (size_t)nsel;
        if (2 * k > (int)P) k = (int)P / 2 > 0 ? (int)P / 2 : 1;
    }
    double t1 = hs_seconds();
    /* Diagonalise in the working precision: ssyevd for f32, dsyevd for f64. */
    if (sizeof(real) == 8) {
        if (eigen_symmetric_f64(H, (int64_t)P, eig, 0) != 0) goto done;
    } else {
        Hr = hs_malloc(sizeof(real) * P * P);
        eigr = hs_malloc(sizeof(real) * P);
        if (!Hr || !eigr) goto done;
        for (size_t i = 0; i < P * P; i++) Hr[i] = (real)H[i];
        free(H);
        H = NULL;
        if (eigen_symmetric_f32((float *)Hr, (int64_t)P, (float *)eigr, 0) != 0) goto done;
        for (size_t i = 0; i < P; i++) eig[i] = (double)eigr[i];
    }
    double t_eig = hs_seconds() - t1, seconds = hs_seconds() - t0;
    if (per_layer) {
        int rc = FN(layer_blocks)(m, Hfull, Pfull, &layers, &num_layers);
        free(Hfull);
        if (rc != 0) goto done;
    }
    double trace = 0, smooth = 0;
    int negative = 0;
    for (size_t i = 0; i < P; i++) {
        trace += eig[i];
        negative += eig[i] < 0;
        if (fabs(eig[i]) > smooth) smooth = fabs(eig[i]);
    }
    printf("exact %s of %s on %d samples (offset %d): d = %zu, loss %.6f\n",
           o.curvature == CURVATURE_GGN ? "Gauss-Newton matrix" : "Hessian", o.arch, count, o.offset, P, info.loss);
    printf("smallest %d:", k);
    for (int i = 0; i < k; i++) printf(" %.6g", eig[i]);
    printf("\nlargest %d: ", k);
    for (int i = 0; i < k; i++) printf(" %.6g", eig[P - (size_t)k + (size_t)i]);
    printf("\nmax |lambda| (smoothness) %.6g | trace %.6g | negative eigenvalues %d | asymmetry %.3g\n", smooth, trace,
           negative, info.asymmetry);
    printf("time: matrix %.2f s, eigenvalues %.2f s, total %.2f s\n", t_matrix, t_eig, seconds);
    for (int l = 0; l < num_layers; l++)
        printf("layer block %-24s d = %-6lld smallest %.6g | largest %.6g | trace %.6g\n", layers[l].name,
               (long long)layers[l].size, layers[l].smallest, layers[l].largest, layers[l].trace);
    if (save_eigs) {
        int64_t shape[1] = {(int64_t)P};
        if (npy_write_f64(save_eigs, eig, 1, shape) != 0) goto done;
    }
    if (plot) {
        PlotFrame frame = {"Hessian eigenvalues", "eigenvalue (symmetric log scale)", "count", 0, 0, 1};
        if (svg_histogram(plot, &frame, eig, (int)P, 80, 1, 0.01, NULL) != 0) goto done;
    }
    if (o.json) {
        AtomicFile af;
        JsonWriter w;
        if (FN(setup_json_begin)(&af, &w, o.json, "exact", &o, &cs, 0, seconds) != 0) goto done;
        json_key(&w, "d"); /* the matrix's dimension (a block with --params) */
        json_int(&w, (int64_t)P);
        json_key(&w, "unit_directions"); /* propagated, summed over sample chunks ("hvps" counts operator products) */
        json_int(&w, info.directions);
        json_key(&w, "loss");
        json_double(&w, info.loss);
        json_key(&w, "eigenvalues_smallest");
        json_double_array(&w, eig, k);
        json_key(&w, "eigenvalues_largest");
        json_double_array(&w, eig + P - k, k);
        json_key(&w, "smoothness");
        json_double(&w, smooth);
        json_key(&w, "trace");
        json_double(&w, trace);
        json_key(&w, "negative_count");
        json_int(&w, negative);
        json_key(&w, "asymmetry");
        json_double(&w, info.asymmetry);
        json_key(&w, "seconds_matrix");
        json_double(&w, t_matrix);
        json_key(&w, "seconds_eigenvalues");
        json_double(&w, t_eig);
        if (num_layers) {
            json_key(&w, "layers");
            json_array_begin(&w);
            for (int l = 0; l < num_layers; l++) {
                json_object_begin(&w);
                json_key(&w, "name");
                json_string(&w, layers[l].name);
                json_key(&w, "d");
                json_int(&w, layers[l].size);
                json_key(&w, "smallest");
                json_double(&w, layers[l].smallest);
                json_key(&w, "largest");
                json_double(&w, layers[l].largest);
                json_key(&w, "trace");
                json_double(&w, layers[l].trace);
                json_object_end(&w);
            }
            json_array_end(&w);
        }
        if (FN(setup_json_end)(&af, &w) != 0) goto done;
    }
    status = EXIT_OK;
done:
    if (status != EXIT_OK) FN(command_fail)("exact");
    free(layers);
    free(H);
    free(eig);
    free(Hr);
    free(eigr);
    FN(setup_close)(&cs);
    return status;
}

/* ------------------------------------------------------------------------------------------------------ */

typedef struct {
    int quiet;
    HessianOperator *op;
} PowerPrinter;

static void FN(power_step)(void *user, int step, double lambda, double residual) {
    PowerPrinter *p = user;
    printf("lambda_%d = %.6f  (residual %.3g, batch loss %.4f)\n", step, lambda, residual, p->op->last_loss);
    fflush(stdout);
}

int FN(cmd_power)(int argc, char **argv) {
    CommonOptions o;
    FN(common_defaults)(&o, "all");
    const char *csv = NULL, *variant = NULL;
    int batch = 1000, iters = 30, fixed = 0;
    double beta = -1, tol = 1e-4;
    uint64_t seed = 0;
    ArgSpec specs[] = {
        COMMON_SPECS(o),
        {"--batch", ARG_INT, &batch, "stochastic mode: samples in each product's fresh mini-batch", 0},
        {"--iters", ARG_INT, &iters, "maximum steps", 0},
        {"--beta", ARG_DOUBLE, &beta,
         "momentum: study variant in [0,1) (v <- normalise(beta v_prev + (1-beta) normalise(Hv))); heavy-ball: "
         "beta ~ lambda_2^2/4 (v' = Hv - beta v_prev)", 0},
        {"--variant", ARG_STRING, &variant,
         "plain | study (default when --beta is given) | heavy-ball (De Sa et al.: v' = Hv - beta v_prev)", 0},
        {"--fixed", ARG_FLAG, &fixed, "use one fixed sample set (--samples/--offset): a deterministic operator", 0},
        {"--tol", ARG_DOUBLE, &tol, "stop when ||Hv - lambda v|| <= tol |lambda| (0: run all iterations)", 0},
        {"--seed", ARG_U64, &seed, "seed for the start vector and the batch order", 0},
        {"--csv", ARG_STRING, &csv, "write step, lambda, residual as CSV", 0},
    };
    int parsed = args_parse(argc, argv,
                            "usage: hessian power --model cnn --checkpoint CKPT --data DIR --batch 1000 --iters 30 "
                            "[--beta 0.9] [--fixed --samples N --offset O] [--tol 1e-4] [--seed S] [--csv F] "
                            "[--json F]\nPower iteration for the top Hessian eigenvalue. Default: stochastic, a new "
                            "mini-batch (from a shuffled, unaugmented pass over the selection) at every step.",
                            specs, (int)(sizeof specs / sizeof specs[0]));
    if (parsed == 1) return EXIT_OK;
    PowerVariant pv = beta >= 0 ? POWER_STUDY_MOMENTUM : POWER_PLAIN;
    if (variant) {
        if (strcmp(variant, "plain") == 0) pv = POWER_PLAIN;
        else if (strcmp(variant, "study") == 0) pv = POWER_STUDY_MOMENTUM;
        else if (strcmp(variant, "heavy-ball") == 0) pv = POWER_HEAVY_BALL;
        else parsed = hs_error("--variant must be plain, study or heavy-ball (got '%s')", variant);
    }
    if (pv == POWER_STUDY_MOMENTUM && beta < 0) beta = 0.9;
    if (pv == POWER_HEAVY_BALL && beta < 0 && parsed == 0)
        parsed = hs_error("--variant heavy-ball needs --beta (in eigenvalue^2 units: about lambda_2^2 / 4)");
    if (parsed < 0 || FN(common_check)(&o, &o.curvature) != 0 || args_check_positive_int("--iters", iters) != 0 ||
        args_check_positive_int("--batch", batch) != 0 || args_check_range("--tol", tol, 0, 1) != 0 ||
        (pv == POWER_STUDY_MOMENTUM && args_check_range("--beta", beta, 0, 0.999999) != 0) ||
        (pv == POWER_HEAVY_BALL && args_check_range("--beta", beta, 0, 1e300) != 0)) {
        fprintf(stderr, "hessian power: %s\n", hs_last_error());
        return EXIT_USAGE;
    }
    if (!fixed && !args_find_value(argc, argv, "--samples")) o.samples = "all";
    CommandSetup cs;
    int status = EXIT_ERROR;
    PowerResult res = {0};
    if (FN(setup_open)(&cs, &o, 1, !fixed, batch, seed) != 0) goto done;
    PowerPrinter printer = {o.quiet, &cs.hop};
    PowerOptions popt = {iters, beta < 0 ? 0 : beta, pv, fixed ? tol : 0, seed, NULL, FN(power_step), &printer};
    fprintf(stderr, "power iteration (%s) on %s: %s\n",
            pv == POWER_PLAIN ? "plain" : pv == POWER_STUDY_MOMENTUM ? "study momentum" : "heavy ball", o.arch,
            fixed ? "fixed sample set" : "a new mini-batch per step");
    double t0 = hs_seconds();
    if (power_iteration(&cs.op, &popt, &res) != 0) goto done;
    double seconds = hs_seconds() - t0;
    printf("lambda = %.6f | residual %.3g | steps %d | HVPs %lld | %s | %.1f s\n", res.lambda, res.residual,
           res.steps, (long long)res.products, fixed ? "fixed set" : "stochastic", seconds);
    if (csv) {
        AtomicFile af;
        if (atomic_file_open(&af, csv) != 0) goto done;
        fprintf(af.fp, "step,lambda,residual\n");
        for (int i = 0; i < res.steps; i++) fprintf(af.fp, "%d,%.10g,%.6g\n", i + 1, res.lambdas[i], res.residuals[i]);
        if (atomic_file_commit(&af) != 0) goto done;
    }
    if (o.json) {
        AtomicFile af;
        JsonWriter w;
        if (FN(setup_json_begin)(&af, &w, o.json, "power", &o, &cs, seed, seconds) != 0) goto done;
        json_key(&w, "variant");
        json_string(&w, pv == POWER_PLAIN ? "plain" : pv == POWER_STUDY_MOMENTUM ? "study" : "heavy-ball");
        json_key(&w, "beta");
        json_double(&w, pv == POWER_PLAIN ? 0 : beta);
        json_key(&w, "lambdas");
        json_double_array(&w, res.lambdas, res.steps);
        json_key(&w, "lambda");
        json_double(&w, res.lambda);
        json_key(&w, "residual");
        json_double(&w, res.residual);
        if (FN(setup_json_end)(&af, &w) != 0) goto done;
    }
    status = EXIT_OK;
done:
    if (status != EXIT_OK) FN(command_fail)("power");
    power_result_free(&res);
    FN(setup_close)(&cs);
    return status;
}
