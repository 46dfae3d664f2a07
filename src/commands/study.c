/* study.c: `hessian study`, the CIFAR-10 study end to end (DEVELOPERS.md, parts 1-3): trains the small
 * CNN with the study's settings, computes the exact Hessian spectrum on 1,000 training images, runs power
 * iteration stochastically (plain and with the study's momentum) and on the fixed set, and writes a Markdown
 * report with SVG plots next to every command's JSON/CSV output. Each step runs the same code as the
 * corresponding command (train, exact, power), so its files are the ones those commands write. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../io/atomic_file.h"
#include "../io/json_reader.h"
#include "../io/npy.h"
#include "../report/svg_plot.h"
#include "command_common.h"
#include "commands.h"

typedef struct {
    char path[1024];
} PathBuf;

static const char *FN(join)(PathBuf *b, const char *dir, const char *name) {
    snprintf(b->path, sizeof b->path, "%s/%s", dir, name);
    return b->path;
}

/* Reads a whole small text file (NULL on error). */
static char *FN(read_text)(const char *path) {
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        hs_error("cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    fseek(fp, 0, SEEK_END);
    long size = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *text = size >= 0 ? hs_malloc((size_t)size + 1) : NULL;
    if (text) {
        size_t got = fread(text, 1, (size_t)size, fp);
        text[got] = 0;
    }
    fclose(fp);
    return text;
}

/* Columns of a numeric CSV with a header line: col c of each row into out_c. Returns rows. */
static int FN(read_csv_columns)(const char *path, int c1, int c2, double **x, double **y) {
    char *text = FN(read_text)(path);
    if (!text) return -1;
    int rows = 0;
    for (char *p = text; *p; p++) rows += *p == '\n';
    *x = hs_calloc((size_t)rows + 1, sizeof(double));
    *y = hs_calloc((size_t)rows + 1, sizeof(double));
    int n = 0;
    char *save = NULL, *line = strtok_r(text, "\n", &save);
    for (line = strtok_r(NULL, "\n", &save); line && *x && *y; line = strtok_r(NULL, "\n", &save)) {
        double cols[8];
        int nc = 0;
        for (char *q = line; nc < 8;) {
            cols[nc++] = strtod(q, &q);
            if (*q != ',') break;
            q++;
        }
        if (nc > c1 && nc > c2) {
            (*x)[n] = cols[c1];
            (*y)[n] = cols[c2];
            n++;
        }
    }
    free(text);
    return (*x && *y) ? n : -1;
}

/* Runs one step as `hessian NAME ARGS` would; its result files record that equivalent command line. argv holds
 * argc arguments: RUN passes a whole array (no hand-counted lengths) less its last `drop` entries (the train
 * step's trailing --quiet when study is not quiet). */
static int run(const char *name, int (*cmd)(int, char **), int argc, char **argv) {
    char *line[64];
    int saved_argc;
    char **saved_argv;
    if (argc + 2 > 64) return hs_error("internal error: step '%s' has too many arguments", name);
    line[0] = "hessian";
    line[1] = (char *)name;
    memcpy(line + 2, argv, sizeof(char *) * (size_t)argc);
    char *text = args_shell_join(argc + 2, line);
    fprintf(stderr, "\n== %s\n", text ? text : name);
    free(text);
    fflush(stdout);
    args_get_command_line(&saved_argc, &saved_argv);
    args_set_command_line(argc + 2, line);
    int rc = cmd(argc, argv);
    args_set_command_line(saved_argc, saved_argv);
    fflush(stdout);
    if (rc != 0) return hs_error("step '%s' failed (exit %d)", name, rc);
    return 0;
}
#define RUN(name, cmd, args, drop) run(name, cmd, (int)(sizeof(args) / sizeof((args)[0])) - (drop), args)

int FN(cmd_study)(int argc, char **argv) {
    const char *data_dir = NULL, *out = "study", *checkpoint = NULL, *precision = "f32";
    int epochs = 2, samples = 1000, iters = 30, threads = 0, quiet = 0;
    ArgSpec specs[] = {
        {"--data DIR", ARG_STRING, &data_dir, "folder with cifar-10-batches-bin/", 1},
        {"--out DIR", ARG_STRING, &out, "folder for the report, checkpoint and result files (created if missing)", 0},
        {"--epochs N", ARG_INT, &epochs, "training epochs", 0},
        {"--checkpoint FILE", ARG_STRING, &checkpoint, "skip training and study this cnn checkpoint", 0},
        {"--samples N", ARG_INT, &samples, "images for the exact Hessian and the mini-batches", 0},
        {"--iters N", ARG_INT, &iters, "power-iteration steps", 0},
        {"--threads N", ARG_INT, &threads, "OpenMP threads, 1 to 1024 (default 0: OMP_NUM_THREADS or all cores)", 0},
        {"--precision f32|f64", ARG_STRING, &precision, "working precision", 0},
        {"--quiet", ARG_FLAG, &quiet, "no progress output", 0},
    };
    int parsed = args_parse(argc, argv,
                            "usage: hessian study --data DIR [--out DIR] [options]\n"
                            "The CIFAR-10 study with the cnn model: train it (SGD lr 0.01, momentum 0.9, batch 100, "
                            "augmentation), the exact Hessian spectrum on 1,000 training images, power iteration "
                            "(plain and momentum 0.9, a new mini-batch per step; and on the fixed set), and a report.\n"
                            "example: hessian study --data data --out study --epochs 2",
                            specs, (int)(sizeof specs / sizeof specs[0]));
    if (parsed == 1) return EXIT_OK;
    if (parsed < 0 || args_check_positive_int("--epochs", epochs) || args_check_positive_int("--samples", samples) ||
        args_check_positive_int("--iters", iters) || FN(command_set_threads)(threads) ||
        args_check_exclusive(argc, argv, "--checkpoint", "--epochs", "with a checkpoint, study does not train"))
        return FN(command_usage_error)("study");
    if (quiet) progress_set_quiet(1);
    if (mkdir(out, 0777) != 0 && errno != EEXIST) {
        hs_error("cannot create %s: %s", out, strerror(errno));
        return FN(command_fail)("study");
    }
    char e_epochs[16], e_samples[16], e_iters[16];
    snprintf(e_epochs, sizeof e_epochs, "%d", epochs);
    snprintf(e_samples, sizeof e_samples, "%d", samples);
    snprintf(e_iters, sizeof e_iters, "%d", iters);
    PathBuf ckpt, tj, tc, ej, ev, sp, ppc, ppj, pmc, pmj, pfc, pfj, rep, tsvg, psvg;
    FN(join)(&ckpt, out, "cnn.safetensors");
    const char *ck = checkpoint ? checkpoint : ckpt.path;
    double t0 = hs_seconds();
    if (!checkpoint) {
        char *a[] = {"--model", "cnn", "--data", (char *)data_dir, "--epochs", e_epochs, "--batch", "100", "--lr", "0.01",
                     "--momentum", "0.9", "--weight-decay", "0", "--seed", "50", "--out", ckpt.path, "--json",
                     (char *)FN(join)(&tj, out, "train.json"), "--csv", (char *)FN(join)(&tc, out, "train_curve.csv"),
                     "--precision", (char *)precision, "--quiet"};
        if (RUN("train", FN(cmd_train), a, quiet ? 0 : 1) != 0) return FN(command_fail)("study");
    }
    {
        char *a[] = {"--model", "cnn", "--checkpoint", (char *)ck, "--data", (char *)data_dir, "--samples", e_samples,
                     "--offset", "0", "--json", (char *)FN(join)(&ej, out, "exact.json"), "--save-eigenvalues",
                     (char *)FN(join)(&ev, out, "eigenvalues.npy"), "--plot", (char *)FN(join)(&sp, out, "spectrum.svg"),
                     "--precision", (char *)precision};
        if (RUN("exact", FN(cmd_exact), a, 0) != 0) return FN(command_fail)("study");
    }
    {
        char *a[] = {"--model", "cnn", "--checkpoint", (char *)ck, "--data", (char *)data_dir, "--batch", e_samples,
                     "--iters", e_iters, "--seed", "1", "--csv", (char *)FN(join)(&ppc, out, "power_plain.csv"), "--json",
                     (char *)FN(join)(&ppj, out, "power_plain.json"), "--precision", (char *)precision};
        if (RUN("power", FN(cmd_power), a, 0) != 0) return FN(command_fail)("study");
    }
    {
        char *a[] = {"--model", "cnn", "--checkpoint", (char *)ck, "--data", (char *)data_dir, "--batch", e_samples,
                     "--iters", e_iters, "--beta", "0.9", "--seed", "1", "--csv",
                     (char *)FN(join)(&pmc, out, "power_momentum.csv"), "--json",
                     (char *)FN(join)(&pmj, out, "power_momentum.json"), "--precision", (char *)precision};
        if (RUN("power", FN(cmd_power), a, 0) != 0) return FN(command_fail)("study");
    }
    {
        char *a[] = {"--model", "cnn", "--checkpoint", (char *)ck, "--data", (char *)data_dir, "--fixed", "--samples",
                     e_samples, "--offset", "0", "--iters", "300", "--tol", "1e-4", "--seed", "1", "--csv",
                     (char *)FN(join)(&pfc, out, "power_fixed.csv"), "--json",
                     (char *)FN(join)(&pfj, out, "power_fixed.json"), "--precision", (char *)precision};
        if (RUN("power", FN(cmd_power), a, 0) != 0) return FN(command_fail)("study");
    }

    /* ---- report ---- */
    int status = EXIT_ERROR;
    NpyArray eig = {0};
    double *cx = NULL, *cy = NULL, *px = NULL, *py = NULL, *mx = NULL, *my = NULL, *fx = NULL, *fy = NULL;
    JsonValue train_json = {0}, exact_json = {0}, fixed_json = {0};
    AtomicFile af;
    int af_open = 0;
    if (npy_read(ev.path, &eig) != 0) goto done;
    int64_t d = eig.numel;
    double top = eig.data[d - 1];
    int np_ = FN(read_csv_columns)(ppc.path, 0, 1, &px, &py);
    int nm = FN(read_csv_columns)(pmc.path, 0, 1, &mx, &my);
    int nf = FN(read_csv_columns)(pfc.path, 0, 1, &fx, &fy);
    if (np_ < 0 || nm < 0 || nf < 0) goto done;
    {
        PlotSeries s[] = {{"plain (new batch each step)", px, py, np_, NULL, 0},
                          {"momentum beta 0.9 (new batch each step)", mx, my, nm, NULL, 0},
                          {"fixed 1,000 images", fx, fy, nf < 60 ? nf : 60, NULL, 1}};
        char label[96];
        snprintf(label, sizeof label, "exact top eigenvalue %.2f", top);
        PlotHLine h[] = {{label, top, "#444444"}};
        PlotFrame f = {"Power iteration: lambda = v^T H v per step", "step", "lambda", 0, 0, 0};
        if (svg_line_chart(FN(join)(&psvg, out, "power.svg"), &f, s, 3, h, 1) != 0) goto done;
    }
    if (!checkpoint) {
        int nc = FN(read_csv_columns)(tc.path, 1, 2, &cx, &cy);
        if (nc < 0) goto done;
        PlotSeries s[] = {{"train loss (mean of 50 batches)", cx, cy, nc, NULL, 0}};
        PlotFrame f = {"Training the cnn (SGD lr 0.01, momentum 0.9, batch 100)", "epoch", "cross-entropy", 0, 0, 0};
        if (svg_line_chart(FN(join)(&tsvg, out, "training.svg"), &f, s, 1, NULL, 0) != 0) goto done;
        if (json_read_file(tj.path, &train_json) != 0) goto done;
    }
    if (json_read_file(ej.path, &exact_json) != 0 || json_read_file(pfj.path, &fixed_json) != 0) goto done;
    if (atomic_file_open(&af, FN(join)(&rep, out, "report.md")) != 0) goto done;
    af_open = 1;
    FILE *fp = af.fp;
    fprintf(fp, "# The CIFAR-10 Hessian study\n\nMade by `hessian study` (hessian %s, %s). Checkpoint: `%s`.\n\n",
            HS_VERSION, HS_PRECISION_NAME, ck);
    if (!checkpoint) {
        /* train.json: {"settings": {..}, "epochs": [{"epoch", "train_loss", "train_acc", "test_loss", "test_acc",
         * "seconds", "eval_seconds"}, ..]}; a null (no test set) reads as 0. */
        const JsonValue *rows = json_get(&train_json, "epochs");
        int ne = rows && rows->type == JSON_ARRAY ? rows->count : 0;
        fprintf(fp, "## 1. Training\n\nSGD lr 0.01, momentum 0.9, batch 100, random crop (padding 4) and flip, seed 50. "
                    "Study's reference: train loss 1.93, then 1.69.\n\n| epoch | train loss | train acc | test loss | "
                    "test acc | seconds |\n|---|---|---|---|---|---|\n");
        for (int i = 0; i < ne; i++) {
            const JsonValue *e = json_at(rows, i);
            fprintf(fp, "| %d | %.4f | %.1f%% | %.4f | %.1f%% | %.1f |\n", i + 1, json_get_number(e, "train_loss", 0),
                    100 * json_get_number(e, "train_acc", 0), json_get_number(e, "test_loss", 0),
                    100 * json_get_number(e, "test_acc", 0), json_get_number(e, "seconds", 0));
        }
        fprintf(fp, "\n![training curve](training.svg)\n\n");
    }
    double loss = json_get_number(&exact_json, "loss", 0), asym = json_get_number(&exact_json, "asymmetry", 0),
           trace = json_get_number(&exact_json, "trace", 0), neg = json_get_number(&exact_json, "negative_count", 0),
           secs = json_get_number(&exact_json, "seconds", 0);
    fprintf(fp, "## 2. The exact Hessian on %d training images\n\nd = %lld, loss %.4f, built from batched exact "
                "Hessian-vector products and diagonalised with LAPACKE in %.1f s; measured asymmetry %.2g before "
                "symmetrisation. Study's reference: smallest about -1.3, largest about 44.\n\n",
            samples, (long long)d, loss, secs, asym);
    fprintf(fp, "| | eigenvalues |\n|---|---|\n| 5 smallest |");
    for (int i = 0; i < 5 && i < d; i++) fprintf(fp, " %.4f", eig.data[i]);
    fprintf(fp, " |\n| 5 largest |");
    for (int64_t i = d - 5 > 0 ? d - 5 : 0; i < d; i++) fprintf(fp, " %.4f", eig.data[i]);
    double smooth = fmax(fabs(eig.data[0]), fabs(top));
    fprintf(fp, " |\n| max abs | %.4f |\n| trace | %.4f |\n| negative | %.0f of %lld |\n\n![spectrum](spectrum.svg)\n\n",
            smooth, trace, neg, (long long)d);
    double fixed_lambda = json_get_number(&fixed_json, "lambda", 0);
    double fixed_hvps = json_get_number(&fixed_json, "hvps", 0);
    fprintf(fp, "## 3. Power iteration\n\nA new mini-batch of %d images at every step (shuffled, unaugmented), plain "
                "and with v <- normalise(0.9 v_prev + 0.1 normalise(Hv)); lambda = v^T H v per step. Study's reference: "
                "about 45, the plain version noisy.\n\n| variant | last lambda | mean of the last 10 |\n|---|---|---|\n",
            samples);
    const double *ys[2] = {py, my};
    int ns[2] = {np_, nm};
    const char *names[2] = {"plain", "momentum 0.9"};
    for (int v = 0; v < 2; v++) {
        double mean = 0;
        int c = 0;
        for (int i = ns[v] - 10 > 0 ? ns[v] - 10 : 0; i < ns[v]; i++, c++) mean += ys[v][i];
        fprintf(fp, "| %s | %.4f | %.4f |\n", names[v], ns[v] ? ys[v][ns[v] - 1] : 0, c ? mean / c : 0);
    }
    fprintf(fp, "| fixed set of %d images (deterministic operator) | %.6f after %.0f HVPs | exact: %.6f (rel. diff "
                "%.1e) |\n\n![power iteration](power.svg)\n\n",
            samples, fixed_lambda, fixed_hvps, top, fabs(fixed_lambda - top) / fabs(top));
    fprintf(fp, "Files: train.json, train_curve.csv, exact.json, eigenvalues.npy, power_*.csv, power_*.json. Total "
                "time %.0f s.\n",
            hs_seconds() - t0);
    af_open = 0;
    if (atomic_file_commit(&af) != 0) goto done;
    printf("\nreport: %s\n", rep.path);
    status = EXIT_OK;
done:
    if (af_open) atomic_file_abort(&af);
    if (status != EXIT_OK) FN(command_fail)("study");
    npy_free(&eig);
    free(cx); free(cy); free(px); free(py); free(mx); free(my); free(fx); free(fy);
    json_free(&train_json);
    json_free(&exact_json);
    json_free(&fixed_json);
    return status;
}
