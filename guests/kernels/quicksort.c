#include "kernel.h"
// Recursive quicksort of pseudo-random integers.
#define COUNT 200000
static int items[COUNT];
static void sort(int *v, int lo, int hi) {
    while (lo < hi) {
        int pivot = v[(lo + hi) / 2], i = lo, j = hi;
        while (i <= j) {
            while (v[i] < pivot) i++;
            while (v[j] > pivot) j--;
            if (i <= j) { int t = v[i]; v[i] = v[j]; v[j] = t; i++; j--; }
        }
        if (j - lo < hi - i) { sort(v, lo, j); lo = i; } else { sort(v, i, hi); hi = j; }
    }
}
unsigned kernel(unsigned n) {
    unsigned check = 0, seed = 12345;
    for (unsigned r = 0; r < n; r++) {
        for (int i = 0; i < COUNT; i++) { seed = seed * 1103515245u + 12345u; items[i] = (int)(seed >> 1); }
        sort(items, 0, COUNT - 1);
        check += (unsigned)items[COUNT / 2] + (unsigned)items[7];
    }
    return check;
}
