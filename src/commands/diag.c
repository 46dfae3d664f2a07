/* diag.c: `hessian diag`: the exact diagonal of the Gauss-Newton matrix, which is the Hessian's for networks
 * piecewise linear in each parameter, and its trace, in one pass over the samples (curv_diag). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "command_common.h"
#include "commands.h"

int FN(cmd_diag)(int argc, char **argv) {
    CommonOptions o;
    FN(common_defaults)(&o, "1000");
    const char *out = NULL;
    ArgSpec specs[] = {
        COMMON_SPECS(o),
        {"--out FILE", ARG_STRING, &out, ".npy file for the diagonal (d,) in float64 (d: the --params block's size)",
         0},
    };
    int parsed = FN(common_parse)(
        &o, argc, argv,
        "usage: hessian diag --checkpoint FILE|--random-init SEED --data DIR|--inputs X --targets Y [options]\n"
        "The exact diagonal of the generalised Gauss-Newton matrix (GGN) of the mean loss, and its trace, in one "
        "pass over the samples: per sample, one vector per output carried back through the linearised network, "
        "the squared per-sample gradients summed. It is also the Hessian's diagonal when the network is "
        "piecewise linear in each single parameter (conv, linear, ReLU, LeakyRelu, Clip, pools, concat, Add/Sub, "
        "Mul by a parameter, batch norm with running statistics): then the second-derivative term of every "
        "diagonal entry vanishes. Networks with Sigmoid, Tanh, Softplus or Erf (GELU) after a parameter, or "
        "products and quotients of parameter-dependent values, get the GGN diagonal only (a warning; "
        "--curvature hessian is refused there). Needs --bn eval (the default).\n"
        "example: hessian diag --model cnn --checkpoint cnn.safetensors --data data --samples 1000 --out diag.npy "
        "--json diag.json",
        specs, (int)(sizeof specs / sizeof specs[0]));
    if (parsed == 1) return EXIT_OK;
    if (parsed < 0) return FN(command_usage_error)("diag");
    int curvature_given = args_given(argc, argv, "--curvature");
    CommandSetup cs;
    double *diag = NULL, *block = NULL;
    int64_t *sel = NULL, nsel = 0;
    CommandFile outputs[] = {{"--out", out}, {"--json", o.json}};
    int status = FN(setup_model)(&cs, &o, outputs, 2, NULL, 0);
    char why[200] = "";
    int exact = 0;
    if (!status) { /* before any data is read: a diagonal that cannot be computed, or not the one asked for */
        exact = FN(model_diag_exact)(cs.model, why, sizeof why);
        if (exact < 0) {
            status = EXIT_USAGE;
        } else if (!exact && curvature_given && o.curvature == CURVATURE_HESSIAN) {
            hs_error("--curvature hessian: the Hessian's diagonal is not computable in one pass for %s: %s; use "
                     "--curvature ggn (the Gauss-Newton diagonal), or hessian exact for small models",
                     o.arch, why);
            status = EXIT_USAGE;
        }
    }
    if (!status && o.params && strcmp(o.params, "all") != 0 &&
        FN(param_block)(cs.model, o.params, "--params", &sel, &nsel) != 0)
        status = EXIT_USAGE;
    if (!status) status = FN(setup_data)(&cs, &o, 0, 0, 0, 0);
    if (status) goto done;
    status = EXIT_ERROR;
    Model *m = cs.model;
    size_t P = m->num_params;
    Curvature c = exact && !(curvature_given && o.curvature == CURVATURE_GGN) ? CURVATURE_HESSIAN : CURVATURE_GGN;
    if (!exact && !curvature_given && !o.quiet) /* asked for ggn: no surprise to warn about */
        fprintf(stderr, "hessian diag: warning: GGN diagonal only, not the Hessian's: %s\n", why);
    diag = hs_malloc(sizeof(double) * P);
    if (!diag) goto done;
    SampleSet set = {&cs.source, cs.idx, cs.count, o.chunk, 0};
    DiagInfo info;
    if (FN(curv_diag)(m, &set, c, diag, &info) != 0) goto done;
    const double *d = diag;
    int64_t n = (int64_t)P;
    if (sel) {
        block = hs_malloc(sizeof(double) * (size_t)nsel);
        if (!block) goto done;
        for (int64_t i = 0; i < nsel; i++) block[i] = diag[sel[i]];
        d = block;
        n = nsel;
    }
    double trace = 0, lo = INFINITY, hi = -INFINITY;
    int64_t zeros = 0;
    for (int64_t i = 0; i < n; i++) {
        trace += d[i];
        if (d[i] < lo) lo = d[i];
        if (d[i] > hi) hi = d[i];
        zeros += d[i] == 0;
    }
    const char *what = c == CURVATURE_HESSIAN ? "Hessian (= Gauss-Newton)" : "Gauss-Newton";
    printf("diagonal of the %s matrix of %s on %d samples: d = %lld, loss %.6f\n", what, o.arch, cs.count,
           (long long)n, info.loss);
    printf("trace %.10g | smallest %.6g | largest %.6g | zero entries %lld | %.3f s\n", trace, lo, hi,
           (long long)zeros, info.seconds);
    if (out) {
        int64_t shape[1] = {n};
        if (npy_write_f64(out, d, 1, shape) != 0) goto done;
        printf("wrote %s\n", out);
    }
    if (o.json) {
        AtomicFile af;
        JsonWriter w;
        if (FN(setup_json_begin)(&af, &w, o.json, "diag", &o, &cs, NULL, 0, info.seconds) != 0) goto done;
        json_key(&w, "diagonal_of");
        json_string(&w, c == CURVATURE_HESSIAN ? "hessian" : "ggn");
        json_key(&w, "exact_hessian"); /* the network is piecewise linear in each parameter */
        json_bool(&w, exact);
        if (!exact) {
            json_key(&w, "why_not_hessian");
            json_string(&w, why);
        }
        json_key(&w, "vectors_per_sample");
        json_int(&w, m->classes);
        json_key(&w, "loss");
        json_double(&w, info.loss);
        json_key(&w, "trace");
        json_double(&w, trace);
        json_key(&w, "smallest");
        json_double(&w, lo);
        json_key(&w, "largest");
        json_double(&w, hi);
        json_key(&w, "zero_entries");
        json_int(&w, zeros);
        json_key(&w, "tensors"); /* each tensor's share of the trace (every tensor, whatever --params says) */
        json_array_begin(&w);
        for (int t = 0; t < m->num_tensors; t++) {
            double s = 0;
            for (size_t j = 0; j < m->tensors[t].numel; j++) s += diag[m->tensors[t].offset + j];
            json_object_begin(&w);
            json_key(&w, "name");
            json_string(&w, m->tensors[t].name);
            json_key(&w, "trace");
            json_double(&w, s);
            json_object_end(&w);
        }
        json_array_end(&w);
        if (FN(setup_json_end)(&af, &w) != 0) goto done;
    }
    status = EXIT_OK;
done:
    if (status != EXIT_OK) FN(command_report)("diag", status);
    free(diag);
    free(block);
    free(sel);
    FN(setup_close)(&cs);
    return status;
}
