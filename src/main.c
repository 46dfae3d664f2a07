/* main.c: the entry point of the `hessian` command line: dispatches to a sub-command in the precision
 * --precision asks for (float32 by default). Only this program exits; library code returns errors. The option
 * parser the commands share lives in cli/, the commands in commands/. Under `mpirun -np R` (make MPI=1) it
 * joins the process group (parallel/dist.h) first; a command that fails on any rank of a group of more than
 * one ends every rank (the message, then MPI_Abort), so no rank waits forever for another. */
#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "commands/commands.h"
#include "core/common.h"
#include "data/cifar10_download.h"
#include "parallel/dist.h"

typedef struct {
    const char *name;
    int (*f32)(int, char **);
    int (*f64)(int, char **);
    const char *summary;
} Command;

static const Command commands[] = {
    {"study", cmd_study_f32, cmd_study_f64, "the CIFAR-10 study end to end: train, exact spectrum, power iterations, report"},
    {"train", cmd_train_f32, cmd_train_f64, "train a model with SGD (checkpoint after every epoch)"},
    {"eval", cmd_eval_f32, cmd_eval_f64, "test loss and accuracy of a checkpoint"},
    {"hvp", cmd_hvp_f32, cmd_hvp_f64, "exact Hessian-vector product with a vector from a .npy file"},
    {"exact", cmd_exact_f32, cmd_exact_f64, "the full Hessian of a small model and all its eigenvalues"},
    {"power", cmd_power_f32, cmd_power_f64, "power iteration for the top eigenvalue (stochastic or fixed set)"},
    {"lanczos", cmd_lanczos_f32, cmd_lanczos_f64, "Lanczos: top-k / bottom-k eigenvalues with residuals"},
    {"trace", cmd_trace_f32, cmd_trace_f64, "trace by Hutchinson and Hutch++ with standard errors"},
    {"diag", cmd_diag_f32, cmd_diag_f64, "exact Hessian / Gauss-Newton diagonal and trace in one pass"},
    {"density", cmd_density_f32, cmd_density_f64, "spectral density by stochastic Lanczos quadrature"},
    {"info", cmd_info_f32, cmd_info_f64, "a model's parameter table, buffers, input shape and output count"},
};

static void usage(FILE *fp) {
    fprintf(fp, "hessian %s: exact curvature of neural-network losses\n\nusage: hessian COMMAND [options]\n\n",
            HS_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(fp, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fprintf(fp, "  %-8s %s\n", "data", "data cifar10 DIR: download CIFAR-10 (binary version) into DIR");
    fprintf(fp, "\n'hessian COMMAND --help' lists a command's options. Every command takes --precision f32|f64.\n"
                "Models: cnn (the study's 5,100-parameter CNN), resnet18, resnet50.\n"
                "Second-order commands (hvp, exact, power, lanczos, trace, diag, density) need --checkpoint FILE, or\n"
                "--random-init SEED to study freshly initialised weights.\n"
                "Data: --data DIR (CIFAR-10), or your own arrays: --inputs X.npy --targets Y.npy [--loss mse].\n"
                "\nExit status: 0 success; 1 failure while running (missing or malformed input file, unwritable\n"
                "output, numerical error); 2 usage error (unknown, repeated, missing, malformed, out-of-range or\n"
                "conflicting options), reported before any work is done.\n");
}

static int cmd_data(int argc, char **argv) {
    if (argc == 1 && (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0)) {
        printf("usage: hessian data cifar10 DIR\nDownloads the official CIFAR-10 binary archive, checks its MD5 and "
               "unpacks DIR/cifar-10-batches-bin/.\n");
        return 0;
    }
    if (argc != 2 || strcmp(argv[0], "cifar10") != 0) {
        fprintf(stderr, "hessian data: usage: hessian data cifar10 DIR\n");
        return 2;
    }
    if (cifar10_download(argv[1]) != 0) {
        fprintf(stderr, "hessian data: error: %s\n", hs_last_error());
        return 1;
    }
    printf("CIFAR-10 is ready in %s/cifar-10-batches-bin\n", argv[1]);
    return 0;
}

static int run(int argc, char **argv) {
    args_set_command_line(argc, argv);
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("hessian %s (commit %s)\n", HS_VERSION, hs_git_commit());
        return 0;
    }
    int help = argc > 2 && (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0);
    if (dist_size() > 1 && !help &&
        (strcmp(argv[1], "study") == 0 || strcmp(argv[1], "data") == 0)) {
        fprintf(stderr,
                "hessian %s: not available under mpirun with more than one process (%d ranks); run it as one "
                "process (mpirun -np 1, or bin/hessian)\n",
                argv[1], dist_size());
        return 2;
    }
    if (strcmp(argv[1], "data") == 0) return cmd_data(argc - 2, argv + 2);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[1], commands[i].name) != 0) continue;
        int bytes = args_precision_bytes(args_find_value(argc - 2, argv + 2, "--precision"));
        if (bytes < 0) {
            fprintf(stderr, "hessian %s: %s\n", argv[1], hs_last_error());
            return 2;
        }
        return bytes == 8 ? commands[i].f64(argc - 2, argv + 2) : commands[i].f32(argc - 2, argv + 2);
    }
    fprintf(stderr, "hessian: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}

int main(int argc, char **argv) {
    if (dist_init(&argc, &argv) != 0) {
        fprintf(dist_stderr(), "hessian: %s\n", hs_last_error());
        dist_abort(1);
    }
    int rc = run(argc, argv);
    if (rc != 0 && dist_size() > 1) {
        /* Rank 0 has printed the command's message; another rank's stderr is silenced, so it prints its own
         * (usage errors, status 2, and interruptions, 128 + the signal, are the same on every rank: rank 0's
         * message says it all). */
        if (!dist_is_root() && rc != 2 && rc < 128)
            fprintf(dist_stderr(), "hessian %s: error on rank %d of %d: %s\n", argc > 1 ? argv[1] : "", dist_rank(),
                    dist_size(), hs_last_error());
        dist_abort(rc);
    }
    dist_finalize();
    return rc;
}
