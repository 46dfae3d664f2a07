/* onnx_import.h: placeholder until the ONNX importer lands (replaced by the importer's header). */
#ifndef HS_ONNX_IMPORT_H
#define HS_ONNX_IMPORT_H
#include "graph.h"
int onnx_import(const char *path, Graph *g);
#endif
