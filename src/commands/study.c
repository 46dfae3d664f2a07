/* study.c: `hessian study`, placeholder until the report is written. */
#include <stdio.h>

#include "command_common.h"
#include "commands.h"

int FN(cmd_study)(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "hessian study: not implemented yet\n");
    return EXIT_ERROR;
}
