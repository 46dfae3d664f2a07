/* info.c: `hessian info`: what a model is made of: its parameter table (name, shape, offset in the parameter
 * vector, count, trainable) and buffers (batch-norm running statistics), the per-sample input shape, the
 * output count and the parameter count; printed, and written as JSON with --json. */
#include <stdio.h>
#include <string.h>

#include "command_common.h"
#include "commands.h"

static void FN(shape_text)(char *out, size_t size, int ndim, const int64_t *shape) {
    size_t used = (size_t)snprintf(out, size, "(");
    for (int d = 0; d < ndim && used < size; d++)
        used += (size_t)snprintf(out + used, size - used, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (used < size) snprintf(out + used, size - used, "%s)", ndim == 1 ? "," : "");
}

static void FN(print_table)(const TensorInfo *t, int count, int trainable) {
    char shape[160];
    for (int i = 0; i < count; i++) {
        FN(shape_text)(shape, sizeof shape, t[i].ndim, t[i].shape);
        printf("  %-32s %-20s %12zu %12zu  %s\n", t[i].name, shape, t[i].offset, t[i].numel, trainable ? "yes" : "no");
    }
}

static void FN(json_table)(JsonWriter *w, const TensorInfo *t, int count, int trainable) {
    json_array_begin(w);
    for (int i = 0; i < count; i++) {
        json_object_begin(w);
        json_key(w, "name");
        json_string(w, t[i].name);
        json_key(w, "shape");
        json_array_begin(w);
        for (int d = 0; d < t[i].ndim; d++) json_int(w, t[i].shape[d]);
        json_array_end(w);
        json_key(w, "offset");
        json_int(w, (int64_t)t[i].offset);
        json_key(w, "count");
        json_int(w, (int64_t)t[i].numel);
        json_key(w, "trainable");
        json_bool(w, trainable);
        json_object_end(w);
    }
    json_array_end(w);
}

int FN(cmd_info)(int argc, char **argv) {
    const char *arch = NULL, *json = NULL, *precision = "f32";
    ArgSpec specs[] = {
        {"--model NAME", ARG_STRING, &arch, "cnn, resnet18, resnet50 or an ONNX file NAME.onnx", 1},
        {"--json FILE", ARG_STRING, &json, "write the description as JSON", 0},
        {"--precision f32|f64", ARG_STRING, &precision, "working precision", 0},
    };
    int parsed = args_parse(argc, argv,
                            "usage: hessian info --model NAME [--json FILE]\n"
                            "The model's parameter table (name, shape, offset, count, trainable), buffers, input "
                            "shape and output count.\n"
                            "example: hessian info --model cnn --json cnn_info.json",
                            specs, (int)(sizeof specs / sizeof specs[0]));
    if (parsed == 1) return EXIT_OK;
    if (parsed < 0) return FN(command_usage_error)("info");
    CommandFile outputs[] = {{"--json", json}};
    int status = FN(command_check_files)(outputs, 1, NULL, 0);
    if (status) return FN(command_report)("info", status);
    Model *m = NULL;
    if (FN(model_create)(arch, 0, &m) != 0) return FN(command_fail)("info");
    char in_shape[160];
    FN(shape_text)(in_shape, sizeof in_shape, m->in_ndim, m->in_shape);
    printf("model %s: %zu parameters in %d tensors, %zu buffer values in %d tensors\n", arch, m->num_params,
           m->num_tensors, m->num_buffer_values, m->num_buffers);
    printf("input per sample %s (%zu values), %d outputs, loss %s by default\n", in_shape, m->in_size, m->classes,
           m->loss == LOSS_MSE ? "mse" : "cross-entropy");
    printf("  %-32s %-20s %12s %12s  %s\n", "name", "shape", "offset", "count", "trainable");
    FN(print_table)(m->tensors, m->num_tensors, 1);
    FN(print_table)(m->buffers, m->num_buffers, 0);
    status = EXIT_OK;
    if (json) {
        AtomicFile af;
        JsonWriter w;
        if (atomic_file_open(&af, json) != 0) {
            status = FN(command_fail)("info");
        } else {
            json_begin(&w, af.fp);
            json_object_begin(&w);
            FN(command_write_provenance)(&w, "info", arch, NULL);
            json_key(&w, "input_shape");
            json_array_begin(&w);
            for (int d = 0; d < m->in_ndim; d++) json_int(&w, m->in_shape[d]);
            json_array_end(&w);
            json_key(&w, "input_size");
            json_int(&w, (int64_t)m->in_size);
            json_key(&w, "outputs");
            json_int(&w, m->classes);
            json_key(&w, "loss_function");
            json_string(&w, m->loss == LOSS_MSE ? "mse" : "cross-entropy");
            json_key(&w, "num_params");
            json_int(&w, (int64_t)m->num_params);
            json_key(&w, "num_buffer_values");
            json_int(&w, (int64_t)m->num_buffer_values);
            json_key(&w, "parameters");
            FN(json_table)(&w, m->tensors, m->num_tensors, 1);
            json_key(&w, "buffers");
            FN(json_table)(&w, m->buffers, m->num_buffers, 0);
            json_object_end(&w);
            json_end(&w);
            if (atomic_file_commit(&af) != 0) status = FN(command_fail)("info");
        }
    }
    FN(model_free)(m);
    return status;
}
