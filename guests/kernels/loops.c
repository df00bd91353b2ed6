#include "kernel.h"
// Nested loops of integer arithmetic.
unsigned kernel(unsigned n) {
    unsigned x = 1;
    for (unsigned i = 0; i < n; i++)
        for (unsigned j = 0; j < 1000; j++) x = (x * 1664525u + 1013904223u) ^ ((x >> 13) + j);
    return x;
}
