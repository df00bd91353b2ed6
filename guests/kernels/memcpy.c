#include "kernel.h"
// Bulk copies between two 256 KiB buffers, with a checksum pass.
#define SIZE (256 * 1024)
static unsigned char src[SIZE], dst[SIZE];
unsigned kernel(unsigned n) {
    for (unsigned i = 0; i < SIZE; i++) src[i] = (unsigned char)(i * 31 + 7);
    unsigned sum = 0;
    for (unsigned r = 0; r < n; r++) {
        unsigned shift = r % 4096;
        __builtin_memcpy(dst + shift, src, SIZE - shift);
        __builtin_memcpy(src, dst + shift, SIZE - 4096);
        sum = sum * 33 + dst[(r * 7919) % SIZE];
    }
    return sum;
}
