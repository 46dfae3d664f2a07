/* test_train_state.c: what training relies on below the CLI: atomic files remove their temporary when the
 * process dies of SIGINT or SIGTERM (and leave a program's own handler alone), and loading --init weights
 * replaces the classifier only when its number of outputs differs, never to hide a corrupt one (NaN or Inf,
 * a non-floating dtype, another input size, outputs that disagree between weight and bias); batch norm's
 * num_batches_tracked must be one non-negative I64. Files live in a mkdtemp() folder under /tmp that is
 * removed at the end. */
#define _XOPEN_SOURCE 700
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../src/core/common.h"
#include "../src/io/atomic_file.h"
#include "../src/io/safetensors.h"
#include "../src/models/model.h"
#include "check.h"
#include "temp_dir.h"


static volatile sig_atomic_t handled;
static void on_signal(int sig) { handled = sig; }

/* A child opens an atomic file and raises sig; with own_handler it handles sig itself and commits. */
static void test_signal(int sig, int own_handler) {
    const char *path = temp_path(own_handler ? "handled.txt" : "killed.txt");
    pid_t pid = fork();
    if (pid == 0) {
        /* SIG_DFL first: a shell that starts the tests in the background ignores SIGINT, and children inherit it */
        signal(sig, own_handler ? on_signal : SIG_DFL);
        AtomicFile af;
        if (atomic_file_open(&af, path) != 0) _exit(3);
        fputs("partial", af.fp);
        fflush(af.fp);
        raise(sig);
        if (!own_handler || handled != sig) _exit(4);
        _exit(atomic_file_commit(&af) == 0 ? 0 : 5);
    }
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid, "fork/wait failed");
    if (own_handler) {
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "signal %d with the program's handler: status %#x", sig,
              status);
        CHECK(access(path, F_OK) == 0, "the program's handler ran, but the file was not committed");
        unlink(path);
    } else {
        CHECK(WIFSIGNALED(status) && WTERMSIG(status) == sig, "signal %d: the child did not die of it (status %#x)",
              sig, status);
        CHECK(access(path, F_OK) != 0, "signal %d: a half-written file was renamed into place", sig);
    }
    CHECK(temp_count(".tmp.") == 0, "signal %d (own handler %d): %d temporaries left behind", sig, own_handler,
          temp_count(".tmp."));
}

/* ---------------------------------------------------------------- --init classifier */

/* Writes the cnn m with its classifier (9.weight, 9.bias) replaced by these shapes, dtypes and data. */
static int write_classifier(const Model *m, const char *path, int64_t wk, int64_t win, StDtype wd, const void *w,
                            int64_t bk, StDtype bd, const void *b) {
    StWriteTensor t[16];
    int n = 0;
    for (int i = 0; i < m->num_tensors && n < 16; i++, n++) {
        const TensorInfo *ti = &m->tensors[i];
        t[n] = (StWriteTensor){ti->name, ST_F64, ti->ndim, {0}, m->params + ti->offset};
        memcpy(t[n].shape, ti->shape, sizeof(int64_t) * (size_t)ti->ndim);
        if (strcmp(ti->name, "9.weight") == 0) t[n] = (StWriteTensor){ti->name, wd, 2, {wk, win}, w};
        if (strcmp(ti->name, "9.bias") == 0) t[n] = (StWriteTensor){ti->name, bd, 1, {bk}, b};
    }
    return safetensors_write(path, t, n, NULL, NULL, 0);
}

static void test_classifier_swap(void) {
    Model *src = NULL, *m = NULL;
    CHECK(model_create_f64("cnn", 1, &src) == 0 && model_create_f64("cnn", 2, &m) == 0, "create: %s", hs_last_error());
    if (!src || !m) return;
    size_t P = m->num_params;
    double *fresh = malloc(sizeof(double) * P);
    double w[10 * 31], b[10]; /* room for every weight shape below */
    for (int i = 0; i < 10 * 31; i++) w[i] = 0.01 * i;
    for (int i = 0; i < 10; i++) b[i] = -0.1 * i;
    memcpy(fresh, m->params, sizeof(double) * P);
    const char *path = temp_path("init.safetensors");
    size_t fc = m->tensors[m->num_tensors - 2].offset; /* 9.weight, then 9.bias: the classifier */
    char note[512];

    /* another number of outputs (5): replaced, reported, the rest loaded */
    CHECK(write_classifier(src, path, 5, 30, ST_F64, w, 5, ST_F64, b) == 0, "write: %s", hs_last_error());
    CHECK(model_load_f64(m, path, 1, note, sizeof note) == 0, "5-output classifier refused: %s", hs_last_error());
    CHECK(strstr(note, "'9'") && strstr(note, "5 outputs") && strstr(note, "10 outputs"), "note: '%s'", note);
    CHECK(memcmp(m->params, src->params, sizeof(double) * fc) == 0, "the layers before the classifier were not loaded");
    CHECK(memcmp(m->params + fc, fresh + fc, sizeof(double) * (P - fc)) == 0, "the classifier is not the fresh one");
    memcpy(m->params, fresh, sizeof(double) * P);

    /* corrupt classifiers: refused with the tensor's name, the model unchanged */
    double nan_b[10], nan_w[5 * 30];
    memcpy(nan_b, b, sizeof b);
    nan_b[3] = NAN;
    memcpy(nan_w, w, sizeof nan_w);
    nan_w[17] = INFINITY;
    int32_t ints[10 * 30] = {0};
    struct {
        const char *what, *needle;
        int64_t wk, win;
        StDtype wd;
        const void *w;
        int64_t bk;
        StDtype bd;
        const void *b;
    } cases[] = {
        {"NaN in a classifier of the right shape", "9.bias", 10, 30, ST_F64, w, 10, ST_F64, nan_b},
        {"Inf in a classifier of another shape", "9.weight", 5, 30, ST_F64, nan_w, 5, ST_F64, b},
        {"NaN in a classifier bias of another shape", "9.bias", 5, 30, ST_F64, w, 5, ST_F64, nan_b},
        {"integer dtype, right shape", "9.bias", 10, 30, ST_F64, w, 10, ST_I32, ints},
        {"integer dtype, another shape", "9.weight", 5, 30, ST_I32, ints, 5, ST_F64, b},
        {"another input size", "9.weight", 10, 29, ST_F64, w, 10, ST_F64, b},
        {"weight and bias disagree on the outputs", "9.", 5, 30, ST_F64, w, 7, ST_F64, b},
        {"a flat weight", "9.weight", 300, 1, ST_F64, w, 10, ST_F64, b},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK(write_classifier(src, path, cases[i].wk, cases[i].win, cases[i].wd, cases[i].w, cases[i].bk, cases[i].bd,
                               cases[i].b) == 0,
              "write %s: %s", cases[i].what, hs_last_error());
        int rc = model_load_f64(m, path, 1, note, sizeof note);
        CHECK(rc != 0 && strstr(hs_last_error(), cases[i].needle), "%s: accepted (note '%s') or unclear: %s",
              cases[i].what, rc == 0 ? note : "", rc == 0 ? "" : hs_last_error());
        CHECK(memcmp(m->params, fresh, sizeof(double) * P) == 0, "%s: a refused load changed the model", cases[i].what);
        memcpy(m->params, fresh, sizeof(double) * P);
    }
    unlink(path);
    free(fresh);
    model_free_f64(src);
    model_free_f64(m);
}

/* resnet18 with only bn1.num_batches_tracked, of this dtype and value. */
static void test_batches_tracked(void) {
    Model *m = NULL;
    CHECK(model_create_f64("resnet18", 3, &m) == 0, "create: %s", hs_last_error());
    if (!m) return;
    int n = m->num_tensors + m->num_buffers;
    StWriteTensor *t = calloc((size_t)n + 1, sizeof *t);
    for (int i = 0; i < n; i++) {
        const TensorInfo *ti = i < m->num_tensors ? &m->tensors[i] : &m->buffers[i - m->num_tensors];
        const double *data = i < m->num_tensors ? m->params : m->buffer_values;
        t[i] = (StWriteTensor){ti->name, ST_F64, ti->ndim, {0}, data + ti->offset};
        memcpy(t[i].shape, ti->shape, sizeof(int64_t) * (size_t)ti->ndim);
    }
    const char *path = temp_path("tracked.safetensors");
    float f = 7;
    int64_t neg = -3, seven = 7;
    struct {
        StDtype dtype;
        const void *value;
        const char *needle; /* NULL: loads */
    } cases[] = {{ST_F32, &f, "should be one I64"}, {ST_I64, &neg, "negative"}, {ST_I64, &seven, NULL}};
    for (int c = 0; c < 3; c++) {
        t[n] = (StWriteTensor){"bn1.num_batches_tracked", cases[c].dtype, 0, {0}, cases[c].value};
        CHECK(safetensors_write(path, t, n + 1, NULL, NULL, 0) == 0, "write: %s", hs_last_error());
        int rc = model_load_f64(m, path, 0, NULL, 0);
        if (cases[c].needle)
            CHECK(rc != 0 && strstr(hs_last_error(), "bn1.num_batches_tracked") && strstr(hs_last_error(), cases[c].needle),
                  "num_batches_tracked case %d accepted or unclear: %s", c, rc ? hs_last_error() : "");
        else
            CHECK(rc == 0 && m->batches_tracked == 7, "num_batches_tracked 7: %s", rc ? hs_last_error() : "wrong count");
    }
    unlink(path);
    free(t);
    model_free_f64(m);
}

int main(void) {
    if (temp_dir_create("hs_test_train_state") != 0) return 1;
    test_signal(SIGTERM, 0);
    test_signal(SIGINT, 0);
    test_signal(SIGTERM, 1);
    test_classifier_swap();
    test_batches_tracked();
    temp_dir_remove();
    return check_summary("test_train_state");
}
