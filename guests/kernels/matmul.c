#include "kernel.h"
// Dense matrix multiply of doubles: float arithmetic and strided loads.
#define N 160
static double a[N * N], b[N * N], c[N * N];
unsigned kernel(unsigned n) {
    double total = 0;
    for (unsigned r = 0; r < n; r++) {
        for (unsigned i = 0; i < N * N; i++) { a[i] = (double)(i % 7) + r; b[i] = (double)(i % 5); }
        for (unsigned i = 0; i < N; i++)
            for (unsigned j = 0; j < N; j++) {
                double s = 0;
                for (unsigned k = 0; k < N; k++) s += a[i * N + k] * b[k * N + j];
                c[i * N + j] = s;
            }
        for (unsigned i = 0; i < N * N; i++) total += c[i];
    }
    return (unsigned)(total / 1024);
}
