/* fuzz_onnx.c: libFuzzer harness for the ONNX importer (src/graph/onnx_import.c, onnx_import_buffer; the
 * protobuf parsing itself is libprotobuf-c's). The input is the model file. Seeds: the models in tests/onnx (run.sh
 * adds them). Invariants: a failure leaves the graph empty and a message naming the input; a success passes
 * graph_check, has a per-sample input of 1..GRAPH_MAX_DIMS concrete dimensions, nodes reading only earlier
 * values, and parameters, buffers and constants whose values are all there (finite for parameters and
 * buffers). */
#include "fuzz_common.h"

#include <math.h>

#include "../../src/core/common.h"
#include "../../src/graph/onnx_import.h"

static void check_tensors(const GraphTensor *t, int n, int finite, const char *what) {
    for (int i = 0; i < n; i++) {
        FUZZ_ASSERT(t[i].values != NULL, "%s %d has no values", what, i);
        size_t numel = 1;
        for (int d = 0; d < t[i].ndim; d++) numel *= (size_t)t[i].shape[d];
        FUZZ_ASSERT(numel == t[i].numel, "%s '%s': numel %zu, shape product %zu", what, t[i].name, t[i].numel, numel);
        for (size_t k = 0; finite && k < t[i].numel; k++)
            FUZZ_ASSERT(isfinite(t[i].values[k]), "%s '%s' value %zu not finite", what, t[i].name, k);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Graph g;
    if (onnx_import_buffer(data, size, "fuzz.onnx", &g) != 0) {
        FUZZ_ASSERT(strstr(hs_last_error(), "fuzz.onnx"), "message does not name the input: %s", hs_last_error());
        FUZZ_ASSERT(g.nodes == NULL && g.params == NULL && g.buffers == NULL && g.constants == NULL && g.num_nodes == 0,
                    "failed import left a graph behind");
        return 0;
    }
    FUZZ_ASSERT(graph_check(&g) == 0, "imported graph fails graph_check: %s", hs_last_error());
    FUZZ_ASSERT(g.in_ndim >= 1 && g.in_ndim <= GRAPH_MAX_DIMS && g.in_size >= 1, "input ndim %d", g.in_ndim);
    for (int i = 0; i < g.num_nodes; i++) {
        const GraphNode *n = &g.nodes[i];
        FUZZ_ASSERT(n->op >= 0 && n->op < GOP_COUNT, "node %d op %d", i, (int)n->op);
        FUZZ_ASSERT(n->num_inputs >= 0 && n->num_inputs <= GRAPH_MAX_INPUTS, "node %d: %d inputs", i, n->num_inputs);
        for (int j = 0; j < n->num_inputs; j++)
            FUZZ_ASSERT(n->inputs[j] == GRAPH_INPUT || (n->inputs[j] >= 0 && n->inputs[j] < i), "node %d reads %d", i,
                        n->inputs[j]);
        size_t s = 1;
        for (int d = 0; d < n->ndim; d++) s *= (size_t)n->shape[d];
        FUZZ_ASSERT(n->ndim >= 1 && n->ndim <= GRAPH_MAX_DIMS && s == n->size && s >= 1, "node %d shape", i);
    }
    check_tensors(g.params, g.num_params, 1, "parameter");
    check_tensors(g.buffers, g.num_buffers, 1, "buffer");
    check_tensors(g.constants, g.num_constants, 0, "constant");
    graph_free(&g);
    return 0;
}
