#include "kernel.h"
// Sieve of Eratosthenes over 1 MiB of flags: byte loads and stores.
static unsigned char flags[1 << 20];
unsigned kernel(unsigned n) {
    unsigned count = 0;
    for (unsigned r = 0; r < n; r++) {
        for (unsigned i = 0; i < sizeof flags; i++) flags[i] = 1;
        count = 0;
        for (unsigned i = 2; i < sizeof flags; i++) {
            if (!flags[i]) continue;
            count++;
            for (unsigned j = i + i; j < sizeof flags; j += i) flags[j] = 0;
        }
    }
    return count;
}
