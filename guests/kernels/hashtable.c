#include "kernel.h"
// Open-addressing hash table: inserts and lookups with multiplicative hashing.
#define SLOTS (1 << 16)
static unsigned keys[SLOTS], values[SLOTS];
unsigned kernel(unsigned n) {
    unsigned found = 0;
    for (unsigned r = 0; r < n; r++) {
        for (unsigned i = 0; i < SLOTS; i++) keys[i] = 0;
        for (unsigned i = 1; i <= SLOTS / 2; i++) {
            unsigned key = i * 2654435761u | 1, slot = (key * 2246822519u) >> 16;
            while (keys[slot] && keys[slot] != key) slot = (slot + 1) & (SLOTS - 1);
            keys[slot] = key;
            values[slot] = i;
        }
        for (unsigned i = 1; i <= SLOTS; i++) {
            unsigned key = i * 2654435761u | 1, slot = (key * 2246822519u) >> 16;
            while (keys[slot] && keys[slot] != key) slot = (slot + 1) & (SLOTS - 1);
            if (keys[slot] == key) found += values[slot];
        }
    }
    return found;
}
