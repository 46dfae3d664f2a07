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
#include "../parallel/dist.h"
#include "../parallel/scalapack.h"
#include "command_common.h"
#include "commands.h"
#include "exact_scalapack.h"

/* ------------------------------------------------------------------------------------------------------ */

/* Most directions one `hvp --vector` file may hold: K rows are propagated together, so memory grows with K. */
#define HVP_MAX_DIRECTIONS 1024

int FN(cmd_hvp)(int argc, char **argv) {
    CommonOptions o;
    FN(common_defaults)(&o, "1000");
    const char *vector = NULL, *out = NULL;
    ArgSpec specs[] = {
        COMMON_SPECS(o),
        {"--vector FILE", ARG_STRING, &vector,
         ".npy vector v, shape (d,), or (K, d) for K <= 1024 directions (one pass over the samples), "
         "float32/float64, parameter order (d: the --params block's size)", 1},
        {"--out FILE", ARG_STRING, &out, ".npy file for Hv, the shape of --vector (in the working precision)", 1},
    };
    int parsed = FN(common_parse)(&o, argc, argv,
                                  "usage: hessian hvp --checkpoint FILE|--random-init SEED "
                                  "--data DIR|--inputs X --targets Y --vector FILE "
                                  "--out FILE [options]\n"
                                  "Exact Hessian-vector product (forward-over-reverse) of the mean loss; a (K, d) "
                                  "--vector gives K products, row by row.\n"
                                  "example: hessian hvp --model cnn --checkpoint cnn.safetensors --data data "
                                  "--samples 1000 --vector v.npy --out hv.npy --json hv.json",
                                  specs, (int)(sizeof specs / sizeof specs[0]));
    if (parsed == 1) return EXIT_OK;
    if (parsed < 0) return FN(command_usage_error)("hvp");
    CommandSetup cs;
    NpyArray v = {0};
    double *hv = NULL, *vhv = NULL, *vv = NULL, *hh = NULL, *rq = NULL;
    real *hv_out = NULL;
    CommandFile outputs[] = {{"--out", out}, {"--json", o.json}}, inputs[] = {{"--vector", vector}};
    int status = FN(setup_model)(&cs, &o, outputs, 2, inputs, 1);
    if (!status) status = FN(setup_read_vector)(&cs, "--vector", vector, HVP_MAX_DIRECTIONS, &v);
    if (!status) status = FN(setup_data)(&cs, &o, 1, 0, 0, 0);
    if (status) goto done;
    status = EXIT_ERROR;
    int64_t d = cs.d;
    int K = v.ndim == 2 ? (int)v.shape[0] : 1;
    size_t n = (size_t)K * (size_t)d;
    hv = hs_malloc(sizeof(double) * n);
    hv_out = hs_malloc(sizeof(real) * n);
    vhv = hs_calloc((size_t)K * 4, sizeof(double));
    if (!hv || !hv_out || !vhv) goto done;
    vv = vhv + K, hh = vv + K, rq = hh + K;
    double t0 = hs_seconds();
    if (linop_apply(&cs.op, v.data, hv, K) != 0) goto done; /* all K rows in one pass over the samples */
    double seconds = hs_seconds() - t0, loss = cs.hop.last_loss;
    for (int k = 0; k < K; k++) {
        const double *vk = v.data + (size_t)k * (size_t)d, *hk = hv + (size_t)k * (size_t)d;
        for (int64_t i = 0; i < d; i++) {
            vhv[k] += vk[i] * hk[i];
            vv[k] += vk[i] * vk[i];
            hh[k] += hk[i] * hk[i];
        }
        rq[k] = vv[k] > 0 ? vhv[k] / vv[k] : 0;
        hh[k] = sqrt(hh[k]);
    }
    for (size_t i = 0; i < n; i++) hv_out[i] = (real)hv[i];
    if (FN(npy_write)(out, hv_out, v.ndim, v.shape) != 0) goto done;
    if (K == 1)
        printf("loss %.8f | samples %d | |v| %.6g | v.Hv %.10g | v.Hv/v.v %.10g | |Hv| %.6g | %.3f s | wrote %s\n",
               loss, cs.count, sqrt(vv[0]), vhv[0], rq[0], hh[0], seconds, out);
    else {
        printf("loss %.8f | samples %d | directions %d | %.3f s | wrote %s\n", loss, cs.count, K, seconds, out);
        for (int k = 0; k < K; k++)
            printf("direction %d | |v| %.6g | v.Hv %.10g | v.Hv/v.v %.10g | |Hv| %.6g\n", k, sqrt(vv[k]), vhv[k],
                   rq[k], hh[k]);
    }
    if (o.json) {
        AtomicFile af;
        JsonWriter w;
        if (FN(setup_json_begin)(&af, &w, o.json, "hvp", &o, &cs, NULL, cs.op.applications, seconds) != 0) goto done;
        json_key(&w, "loss");
        json_double(&w, loss);
        json_key(&w, "directions");
        json_int(&w, K);
        /* One direction: numbers, as always; K > 1: arrays of K, row k of --vector first to last. */
        const char *keys[3] = {"vHv", "rayleigh_quotient", "hv_norm"};
        const double *values[3] = {vhv, rq, hh};
        for (int j = 0; j < 3; j++) {
            json_key(&w, keys[j]);
            if (K == 1) json_double(&w, values[j][0]);
            else json_double_array(&w, values[j], K);
        }
        if (FN(setup_json_end)(&af, &w) != 0) goto done;
    }
    status = EXIT_OK;
done:
    if (status != EXIT_OK) FN(command_report)("hvp", status);
    npy_free(&v);
    free(hv);
    free(hv_out);
    free(vhv);
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

/* The block of rows and columns `sel` (n of them) of the P x P matrix H, moved to H's start (n x n). */
static void FN(extract_block)(double *H, size_t P, const int64_t *sel, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) H[i * n + j] = H[(size_t)sel[i] * P + (size_t)sel[j]];
}

int FN(cmd_exact)(int argc, char **argv) {
    CommonOptions o;
    FN(common_defaults)(&o, "1000");
    const char *save_matrix = NULL, *save_eigs = NULL, *plot = NULL;
    int k = 5, per_layer = 0, scalapack = 0;
    ArgSpec specs[] = {
        COMMON_SPECS(o),
        {"--k N", ARG_INT, &k, "how many smallest and largest eigenvalues to report", 0},
        {"--scalapack", ARG_FLAG, &scalapack, "(make MPI=1) the matrix spread over the ranks and its eigenvalues by "
                                              "ScaLAPACK (pdsyev, float64), also as one process; the default under "
                                              "mpirun with more than one rank (no --per-layer, no --params block)", 0},
        {"--per-layer", ARG_FLAG, &per_layer, "also report each layer block's extreme eigenvalues and trace", 0},
        {"--save-matrix FILE", ARG_STRING, &save_matrix, "write the symmetrised Hessian (its --params block) as .npy "
                                                         "(d x d, float64)", 0},
        {"--save-eigenvalues FILE", ARG_STRING, &save_eigs, "write all eigenvalues (ascending) as .npy", 0},
        {"--plot FILE", ARG_STRING, &plot, "write an SVG histogram of all eigenvalues (symmetric-log axis)", 0},
    };
    int parsed = FN(common_parse)(&o, argc, argv,
                                  "usage: hessian exact --checkpoint FILE|--random-init SEED "
                                  "--data DIR|--inputs X --targets Y [options]\n"
                                  "The full Hessian from batched exact HVPs, and all its eigenvalues (LAPACKE).\n"
                                  "example: hessian exact --model cnn --checkpoint cnn.safetensors --data data "
                                  "--samples 1000 --offset 0 --k 5 --save-eigenvalues E.npy --plot spectrum.svg "
                                  "--json exact.json",
                                  specs, (int)(sizeof specs / sizeof specs[0]));
    if (parsed == 1) return EXIT_OK;
    if (parsed < 0 || args_check_positive_int("--k", k) != 0) return FN(command_usage_error)("exact");
    CommandSetup cs;
    double *H = NULL, *eig = NULL, *Hfull = NULL;
    real *Hr = NULL, *eigr = NULL;
    int64_t *sel = NULL, nsel = 0;
    LayerBlock *layers = NULL;
    int num_layers = 0;
    CommandFile outputs[] = {
        {"--json", o.json}, {"--save-matrix", save_matrix}, {"--save-eigenvalues", save_eigs}, {"--plot", plot}};
    int status = FN(setup_model)(&cs, &o, outputs, 4, NULL, 0);
    size_t P = cs.model ? cs.model->num_params : 0;
    int distributed = scalapack || dist_size() > 1;
    if (!status && distributed && !dmat_available()) {
        hs_error("--scalapack needs the MPI build (make MPI=1; run it with mpirun -np R)");
        status = EXIT_USAGE;
    }
    if (!status && distributed && (per_layer || (o.params && strcmp(o.params, "all") != 0))) {
        hs_error("%s: not available with the ScaLAPACK matrix (under mpirun with %d ranks, or --scalapack); run it "
                 "as one process", per_layer ? "--per-layer" : "--params", dist_size());
        status = EXIT_USAGE;
    }
    if (!status && P > 20000 && !distributed) {
        hs_error("model %s has %zu parameters: its exact Hessian (%.1f GB) is too large for one process; use power "
                 "or lanczos, or spread it over MPI ranks (make MPI=1; mpirun -np R hessian exact)", o.arch,
                 P, 8e-9 * (double)P * (double)P);
        status = EXIT_USAGE;
    }
    if (!status && 2 * (int64_t)k > cs.d) {
        hs_error("--k %d: twice that is more than the %lld eigenvalues (%s)", k, (long long)cs.d, cs.d_text);
        status = EXIT_USAGE;
    }
    if (!status && o.params && strcmp(o.params, "all") != 0 && FN(param_block)(cs.model, o.params, "--params", &sel, &nsel) != 0) status = EXIT_ERROR;
    if (!status) status = FN(setup_data)(&cs, &o, 0, 0, 0, 0);
    if (status) goto done;
    status = EXIT_ERROR;
    Model *m = cs.model;
    int count = cs.count;
    /* Without --per-layer a --params block is computed alone (only its unit directions); else the whole matrix. */
    int block_only = sel && !per_layer;
    size_t Pfull = P, rows = block_only ? (size_t)nsel : P;
    SampleSet set = {&cs.source, cs.idx, count, o.chunk, 0};
    ExactInfo info;
    double t0 = hs_seconds(), t_matrix = 0, t_eig = 0;
    eig = hs_malloc(sizeof(double) * rows);
    if (!eig) goto done;
    if (distributed) {
        if (FN(exact_scalapack)(m, &set, o.curvature, save_matrix, eig, &info, &t_matrix, &t_eig) != 0) goto done;
        goto report;
    }
    H = hs_malloc(sizeof(double) * rows * rows);
    if (!H) goto done;
    Progress pr;
    int chunk = o.chunk > 0 ? o.chunk : 64;
    progress_begin(&pr, "Hessian", "dir", (int64_t)rows * ((count + chunk - 1) / chunk));
    int rc = block_only ? FN(curv_exact_block)(m, &set, o.curvature, sel, nsel, H, &info, exact_progress, &pr)
                        : FN(curv_exact)(m, &set, o.curvature, H, &info, exact_progress, &pr);
    progress_end(&pr);
    if (rc != 0) {
        if (block_only) hs_error_context("--params %s: ", o.params);
        goto done;
    }
    t_matrix = hs_seconds() - t0;
    if (block_only) P = rows;
    if (per_layer) { /* the whole matrix, kept for the layer blocks */
        Hfull = hs_malloc(sizeof(double) * P * P);
        if (!Hfull) goto done;
        memcpy(Hfull, H, sizeof(double) * P * P);
    }
    if (sel && !block_only) {
        FN(extract_block)(H, P, sel, nsel);
        P = (size_t)nsel;
        size_t nonzero = 0;
        for (size_t i = 0; i < P * P && !nonzero; i++) nonzero = H[i] != 0;
        if (!nonzero) {
            hs_error("--params %s: the Hessian block (d = %zu) is exactly zero: the loss does not depend on those "
                     "parameters here (or their units are inactive); refusing to return a silent zero", o.params, P);
            goto done;
        }
    }
    if (save_matrix) {
        int64_t shape[2] = {(int64_t)P, (int64_t)P};
        if (npy_write_f64(save_matrix, H, 2, shape) != 0) goto done;
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
    t_eig = hs_seconds() - t1;
report:;
    double seconds = hs_seconds() - t0;
    if (per_layer) {
        if (FN(layer_blocks)(m, Hfull, Pfull, &layers, &num_layers) != 0) goto done;
    }
    double trace = 0, smooth = 0;
    int negative = 0;
    for (size_t i = 0; i < P; i++) {
        trace += eig[i];
        negative += eig[i] < 0;
        if (fabs(eig[i]) > smooth) smooth = fabs(eig[i]);
    }
    char from[64];
    if (o.indices) snprintf(from, sizeof from, "--indices");
    else snprintf(from, sizeof from, "offset %d", o.offset);
    printf("exact %s of %s on %d samples (%s): d = %zu, loss %.6f\n",
           o.curvature == CURVATURE_GGN ? "Gauss-Newton matrix" : "Hessian", o.arch, count, from, P, info.loss);
    printf("smallest %d:", k);
    for (int i = 0; i < k; i++) printf(" %.6g", eig[i]);
    printf("\nlargest %d: ", k);
    for (int i = 0; i < k; i++) printf(" %.6g", eig[P - (size_t)k + (size_t)i]);
    printf("\nmax |lambda| (smoothness) %.6g | trace %.6g | negative eigenvalues %d | ", smooth, trace, negative);
    if (distributed) printf("asymmetry not measured (ScaLAPACK reads one triangle)\n");
    else printf("asymmetry %.3g\n", info.asymmetry);
    printf("time: matrix %.2f s, eigenvalues %.2f s, total %.2f s%s\n", t_matrix, t_eig, seconds,
           distributed ? " (slowest rank)" : "");
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
        /* hvps: one (unit-direction) product per column of the whole Hessian. */
        if (FN(setup_json_begin)(&af, &w, o.json, "exact", &o, &cs, NULL, (int64_t)Pfull, seconds) != 0) goto done;
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
        if (!distributed) { /* ScaLAPACK: each entry computed once, no asymmetry to measure */
            json_key(&w, "asymmetry");
            json_double(&w, info.asymmetry);
        }
        json_key(&w, "ranks");
        json_int(&w, dist_size());
        json_key(&w, "eigensolver");
        json_string(&w, distributed ? "ScaLAPACK pdsyev (float64)" : sizeof(real) == 8 ? "LAPACKE dsyevd" : "LAPACKE ssyevd");
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
    if (status != EXIT_OK) FN(command_report)("exact", status);
    free(layers);
    free(Hfull);
    free(sel);
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
        {"--batch N", ARG_INT, &batch, "stochastic mode (without --fixed): samples in each product's fresh mini-batch",
         0},
        {"--iters N", ARG_INT, &iters, "maximum steps", 0},
        {"--beta X", ARG_DOUBLE, &beta,
         "momentum: study variant in [0,1) (v <- normalise(beta v_prev + (1-beta) normalise(Hv))); heavy-ball: "
         "beta ~ lambda_2^2/4 (v' = Hv - beta v_prev) (default: none; 0.9 with --variant study)", 0},
        {"--variant plain|study|heavy-ball", ARG_STRING, &variant,
         "heavy-ball: De Sa et al., v' = Hv - beta v_prev (default: study with --beta, else plain)",
         0},
        {"--fixed", ARG_FLAG, &fixed, "use one fixed sample set (--samples/--offset or --indices): a deterministic operator", 0},
        {"--tol X", ARG_DOUBLE, &tol, "with --fixed: stop when ||Hv - lambda v|| <= tol |lambda| (0: run all --iters)",
         0},
        {"--seed N", ARG_U64, &seed, "seed for the start vector and the batch order", 0},
        {"--csv FILE", ARG_STRING, &csv, "write step, lambda, residual as CSV", 0},
    };
    int parsed = FN(common_parse)(&o, argc, argv,
                                  "usage: hessian power --checkpoint FILE|--random-init SEED "
                                  "--data DIR|--inputs X --targets Y [options]\n"
                                  "Power iteration for the top Hessian eigenvalue. Default: stochastic, a new "
                                  "mini-batch of --batch images (from a shuffled, unaugmented pass over the "
                                  "selection) at every step; --fixed: the Hessian of the whole selection.\n"
                                  "example: hessian power --model cnn --checkpoint cnn.safetensors --data data "
                                  "--batch 1000 --iters 30 --beta 0.9 --seed 1 --csv power.csv --json power.json",
                                  specs, (int)(sizeof specs / sizeof specs[0]));
    if (parsed == 1) return EXIT_OK;
    int beta_given = args_given(argc, argv, "--beta");
    PowerVariant pv = beta_given ? POWER_STUDY_MOMENTUM : POWER_PLAIN;
    if (parsed == 0 && variant) {
        if (strcmp(variant, "plain") == 0) pv = POWER_PLAIN;
        else if (strcmp(variant, "study") == 0) pv = POWER_STUDY_MOMENTUM;
        else if (strcmp(variant, "heavy-ball") == 0) pv = POWER_HEAVY_BALL;
        else parsed = hs_error("--variant must be plain, study or heavy-ball (got '%s')", variant);
    }
    if (parsed == 0 && pv == POWER_PLAIN && beta_given)
        parsed = hs_error("--beta has no effect with --variant plain; leave one of them out");
    if (pv == POWER_STUDY_MOMENTUM && !beta_given) beta = 0.9;
    if (parsed == 0 && pv == POWER_HEAVY_BALL && !beta_given)
        parsed = hs_error("--variant heavy-ball needs --beta (in eigenvalue^2 units: about lambda_2^2 / 4)");
    if (parsed < 0 || args_check_positive_int("--iters", iters) != 0 ||
        args_check_positive_int("--batch", batch) != 0 || args_check_range("--tol", tol, 0, 1) != 0 ||
        (pv == POWER_STUDY_MOMENTUM && args_check_range("--beta", beta, 0, 0.999999) != 0) ||
        (pv == POWER_HEAVY_BALL && args_check_range("--beta", beta, 0, 1e300) != 0) ||
        (fixed && args_check_unused(argc, argv, "--batch", "with --fixed (every product uses the whole selection)")) ||
        (!fixed && args_check_unused(argc, argv, "--tol", "without --fixed (a new mini-batch per step never "
                                                          "converges; power runs all --iters)")))
        return FN(command_usage_error)("power");
    CommandSetup cs;
    PowerResult res = {0};
    CommandFile outputs[] = {{"--json", o.json}, {"--csv", csv}};
    int status = FN(setup_model)(&cs, &o, outputs, 2, NULL, 0);
    if (!status) status = FN(setup_data)(&cs, &o, 1, !fixed, batch, seed);
    if (status) goto done;
    status = EXIT_ERROR;
    PowerPrinter printer = {o.quiet, &cs.hop};
    PowerOptions popt = {iters, pv == POWER_PLAIN ? 0 : beta, pv, fixed ? tol : 0, seed, NULL, FN(power_step), &printer};
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
        for (int i = 0; i < res.steps; i++) {
            char l[JSON_DOUBLE_CHARS], r[JSON_DOUBLE_CHARS];
            json_format_double(l, res.lambdas[i]);
            json_format_double(r, res.residuals[i]);
            fprintf(af.fp, "%d,%s,%s\n", i + 1, l, r);
        }
        if (atomic_file_commit(&af) != 0) goto done;
    }
    if (o.json) {
        AtomicFile af;
        JsonWriter w;
        if (FN(setup_json_begin)(&af, &w, o.json, "power", &o, &cs, &seed, cs.op.applications, seconds) != 0)
            goto done;
        json_key(&w, "variant");
        json_string(&w, pv == POWER_PLAIN ? "plain" : pv == POWER_STUDY_MOMENTUM ? "study" : "heavy-ball");
        json_key(&w, "beta");
        json_double(&w, pv == POWER_PLAIN ? 0 : beta);
        json_key(&w, "tol");
        if (fixed) json_double(&w, tol);
        else json_null(&w);
        json_key(&w, "iters");
        json_int(&w, iters);
        json_key(&w, "steps");
        json_int(&w, res.steps);
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
    if (status != EXIT_OK) FN(command_report)("power", status);
    power_result_free(&res);
    FN(setup_close)(&cs);
    return status;
}
