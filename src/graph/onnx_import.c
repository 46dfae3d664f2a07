/* onnx_import.c: placeholder until the ONNX importer lands. */
#include "onnx_import.h"

#include "../core/common.h"

int onnx_import(const char *path, Graph *g) {
    (void)g;
    return hs_error("%s: ONNX import is not built yet", path);
}
