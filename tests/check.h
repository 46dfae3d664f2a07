/* check.h: the tiny test harness shared by every tests/test_*.c program.
 *
 *   CHECK(cond, "fmt", ...)        records one check; prints the message when it fails
 *   CHECK_CLOSE(a, b, rtol, atol)  |a - b| <= atol + rtol * |b|
 *   return check_summary("name");  prints "name: N passed, M failed" and returns the exit status
 *   CHECK_NAME("name")             "name", or "name_f32" in a test built with -DHS_F32
 *
 * `make test` runs every test program (OMP_NUM_THREADS=2, fixed seeds) and prints the overall
 * "N passed, M failed" line. */
#ifndef HS_CHECK_H
#define HS_CHECK_H

#include <math.h>
#include <stdio.h>

static int check_passed_count, check_failed_count;

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (cond) {                                                        \
            check_passed_count++;                                          \
        } else {                                                           \
            check_failed_count++;                                          \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);           \
            fprintf(stderr, __VA_ARGS__);                                  \
            fprintf(stderr, "\n");                                         \
        }                                                                  \
    } while (0)

#define CHECK_CLOSE(a, b, rtol, atol)                                                          \
    do {                                                                                       \
        double check_a_ = (double)(a), check_b_ = (double)(b);                                 \
        CHECK(fabs(check_a_ - check_b_) <= (atol) + (rtol) * fabs(check_b_) &&                 \
                  check_a_ == check_a_,                                                        \
              "%s = %.10g, expected %s = %.10g (rtol %g, atol %g)", #a, check_a_, #b, check_b_, \
              (double)(rtol), (double)(atol));                                                 \
    } while (0)

#ifdef HS_F32
#define CHECK_NAME(base) base "_f32"
#else
#define CHECK_NAME(base) base
#endif

static inline int check_summary(const char *name) {
    printf("%s: %d passed, %d failed\n", name, check_passed_count, check_failed_count);
    return check_failed_count ? 1 : 0;
}

#endif
