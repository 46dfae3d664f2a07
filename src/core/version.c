/* version.c: the git commit hessian was built from; the Makefile passes it in as HS_GIT_COMMIT and rebuilds
 * this file alone when the commit changes. */
#include "common.h"

#ifndef HS_GIT_COMMIT
#define HS_GIT_COMMIT "unknown"
#endif

const char *hs_git_commit(void) { return HS_GIT_COMMIT; }
