// Allocates a working set and writes to it at a chosen rate and locality, for a number of iterations (or
// seconds), then prints a checksum. The migration work uses it to dirty memory in a controlled way.
//   dirtier [--mib N] [--writes-per-iteration N] [--iterations N | --seconds S] [--locality sequential|random|hot]
//           [--hot-percent P] [--report N] [--seed S] [--touch-stride F] [--sleep-us U] [--grow-kib K]
// --sleep-us sleeps U microseconds after each iteration, which sets the write rate in wall-clock terms.
// --grow-kib allocates a further K KiB block in each of the first 1024 iterations (the memory grows as it runs), writes
// one word in every 64 bytes of it, and counts the blocks in the checksum.
// At start it writes one word in every F-th 4 KiB frame of the working set (F=1: every frame).
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(void) {
    fprintf(stderr,
            "usage: dirtier [--mib N] [--writes-per-iteration N] [--iterations N | --seconds S]\n"
            "               [--locality sequential|random|hot] [--hot-percent P] [--report N] [--seed S]\n"
            "               [--touch-stride FRAMES] [--sleep-us U] [--grow-kib K]\n");
    exit(2);
}

static uint64_t next(uint64_t *state) {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return *state;
}

int main(int argc, char **argv) {
    long mib = 16, writes = 1000, iterations = 1000, report = 0, hot_percent = 10, stride = 1, sleep_us = 0, grow_kib = 0;
    double seconds = 0;
    uint64_t seed = 88172645463325252ULL;
    const char *locality = "random";
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) usage();
        if (!strcmp(argv[i], "--mib")) mib = atol(argv[++i]);
        else if (!strcmp(argv[i], "--writes-per-iteration")) writes = atol(argv[++i]);
        else if (!strcmp(argv[i], "--iterations")) iterations = atol(argv[++i]);
        else if (!strcmp(argv[i], "--seconds")) seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--locality")) locality = argv[++i];
        else if (!strcmp(argv[i], "--hot-percent")) hot_percent = atol(argv[++i]);
        else if (!strcmp(argv[i], "--report")) report = atol(argv[++i]);
        else if (!strcmp(argv[i], "--seed")) seed = strtoull(argv[++i], 0, 10) | 1;
        else if (!strcmp(argv[i], "--touch-stride")) stride = atol(argv[++i]);
        else if (!strcmp(argv[i], "--sleep-us")) sleep_us = atol(argv[++i]);
        else if (!strcmp(argv[i], "--grow-kib")) grow_kib = atol(argv[++i]);
        else usage();
    }
    int mode = !strcmp(locality, "sequential") ? 0 : !strcmp(locality, "random") ? 1 : !strcmp(locality, "hot") ? 2 : -1;
    if (mib <= 0 || writes < 0 || iterations < 0 || mode < 0 || hot_percent <= 0 || hot_percent > 100 || stride <= 0 || sleep_us < 0 || grow_kib < 0) usage();
    size_t words = (size_t)mib * 1024 * 1024 / 8;
    uint64_t *memory = calloc(words, 8);
    if (!memory) {
        fprintf(stderr, "dirtier: cannot allocate %ld MiB\n", mib);
        return 1;
    }
    for (size_t i = 0; i < words; i += 512 * (size_t)stride) memory[i] = i | 1;
    size_t hot = words * hot_percent / 100;
    if (hot == 0) hot = 1;
    size_t cursor = 0;
    enum { MaxBlocks = 1024 };
    static uint64_t *blocks[MaxBlocks];
    long grown = 0;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    long done = 0;
    for (;; done++) {
        if (seconds > 0) {
            clock_gettime(CLOCK_MONOTONIC, &now);
            if ((now.tv_sec - start.tv_sec) + (now.tv_nsec - start.tv_nsec) / 1e9 >= seconds) break;
        } else if (done >= iterations) {
            break;
        }
        for (long w = 0; w < writes; w++) {
            size_t at = mode == 0 ? (cursor = (cursor + 1) % words) : mode == 1 ? next(&seed) % words : next(&seed) % hot;
            memory[at] = memory[at] * 6364136223846793005ULL + (uint64_t)done + 1;
        }
        if (grow_kib > 0 && grown < MaxBlocks) {
            size_t block_words = (size_t)grow_kib * 1024 / 8;
            uint64_t *block = malloc(block_words * 8);
            if (!block) {
                fprintf(stderr, "dirtier: cannot grow by %ld KiB after %ld blocks\n", grow_kib, grown);
                return 1;
            }
            for (size_t i = 0; i < block_words; i += 8) block[i] = next(&seed);
            blocks[grown++] = block;
        }
        if (report > 0 && (done + 1) % report == 0) printf("dirtier: iteration %ld\n", done + 1);
        if (sleep_us > 0) {
            struct timespec pause = {sleep_us / 1000000, (sleep_us % 1000000) * 1000};
            nanosleep(&pause, 0);
        }
    }
    uint64_t checksum = 0;
    for (size_t i = 0; i < words; i++) checksum = (checksum ^ memory[i]) * 1099511628211ULL;
    for (long b = 0; b < grown; b++) {
        for (size_t i = 0; i < (size_t)grow_kib * 1024 / 8; i += 8) checksum = (checksum ^ blocks[b][i]) * 1099511628211ULL;
    }
    printf("dirtier: %ld MiB, %ld iterations, checksum %016llx\n", mib, seconds > 0 ? done : iterations, (unsigned long long)checksum);
    return 0;
}
