// Shared by the benchmark kernels: each defines `unsigned kernel(unsigned n)`. For Wasm it is exported as
// `run` from a module with no imports; natively (-DNATIVE_MAIN) a main times best of 3 in-process calls;
// with -DWASI_MAIN (WASI and native) a main prints kernel(argv[1]), for whole-program runs.
#ifndef KERNEL_H
#define KERNEL_H

#ifdef NATIVE_MAIN
// noipa: gcc must neither inline the kernel nor treat it as pure and move it out of the timed region.
__attribute__((noipa)) unsigned kernel(unsigned n);
#else
unsigned kernel(unsigned n);
#endif

#if defined(__wasm__) && !defined(WASI_MAIN)
__attribute__((export_name("run"))) unsigned run(unsigned n) { return kernel(n); }
#endif

#ifdef WASI_MAIN
// The whole-program form (for `ferry run` and node:wasi): prints the result of kernel(argv[1]).
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    printf("%u\n", kernel(argc > 1 ? (unsigned)strtoul(argv[1], 0, 10) : 1));
    return 0;
}
#endif

#ifdef NATIVE_MAIN
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
// Read through a volatile so the compiler cannot fold or hoist the repeated calls.
static volatile unsigned argument;
int main(int argc, char **argv) {
    argument = argc > 1 ? (unsigned)strtoul(argv[1], 0, 10) : 1;
    unsigned n = argument;
    unsigned result = kernel(n);
    double best = 1e30;
    for (int i = 0; i < 3; i++) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        result = kernel(argument);
        clock_gettime(CLOCK_MONOTONIC, &b);
        double ms = (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6;
        if (ms < best) best = ms;
    }
    printf("%u %.3f\n", result, best);
    return 0;
}
#endif
#endif
