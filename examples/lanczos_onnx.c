/* lanczos_onnx.c: the top eigenvalues of the loss Hessian of an ONNX network on .npy data, through <hessian.h>
 * alone: Lanczos with full reorthogonalisation on the Hessian operator over every sample.
 *
 *   cc lanczos_onnx.c $(pkg-config --cflags --libs hessian) -o lanczos_onnx
 *   ./lanczos_onnx net.onnx X.npy Y.npy [k]      X (N, ...) float32/float64; Y int labels (N) or float targets
 *
 * Prints one line per eigenvalue (largest first) with its residual ||Hv - lambda v||; exits 0 when Lanczos
 * converged, 1 otherwise. */
#include <hessian.h>
#include <stdio.h>
#include <stdlib.h>

static int fail(const char *what) {
    fprintf(stderr, "lanczos_onnx: %s: %s\n", what, hs_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 4 || argc > 5) {
        fprintf(stderr, "usage: %s MODEL.onnx X.npy Y.npy [k]\n", argv[0]);
        return 2;
    }
    int k = argc == 5 ? atoi(argv[4]) : 3;
    if (k < 1 || k > 100) {
        fprintf(stderr, "lanczos_onnx: k must be in 1..100\n");
        return 2;
    }
    hs_model *m;
    hs_data *d;
    hs_operator *op;
    if (hs_model_create(argv[1], HS_FLOAT64, 0, &m)) return fail(argv[1]);
    if (hs_data_from_npy(argv[2], argv[3], &d)) return fail("data");
    if (hs_operator_create(m, d, NULL, NULL, &op)) return fail("operator");
    printf("%s: %lld parameters, %lld samples\n", argv[1], (long long)hs_model_num_params(m),
           (long long)hs_data_count(d));

    hs_lanczos_options lo = hs_lanczos_defaults();
    lo.k = k;
    lo.tol = 1e-8;
    double *eig = malloc(sizeof(double) * k), *res = malloc(sizeof(double) * k);
    hs_lanczos_info info;
    if (hs_lanczos(op, &lo, eig, res, NULL, &info)) return fail("lanczos");
    printf("lanczos: %d steps, %lld products, %s\n", info.steps, (long long)info.products,
           info.converged ? "converged" : "NOT converged");
    for (int i = info.count - 1; i >= 0; i--) printf("eigenvalue %.12e residual %.3e\n", eig[i], res[i]);

    free(eig); free(res);
    hs_operator_free(op);
    hs_data_free(d);
    hs_model_free(m);
    return info.converged ? 0 : 1;
}
