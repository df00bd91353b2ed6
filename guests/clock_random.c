// Clocks and randomness: checks properties rather than printing values, so its output is deterministic.
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(void) {
    struct timespec a, b, r;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (volatile int i = 0; i < 200000; i++) {
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    long long delta = (b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec);
    printf("monotonic advances: %s\n", delta >= 0 ? "yes" : "no");
    clock_gettime(CLOCK_REALTIME, &r);
    printf("realtime after 2020: %s\n", r.tv_sec > 1577836800 ? "yes" : "no");
    struct timespec res;
    printf("monotonic resolution known: %s\n", clock_getres(CLOCK_MONOTONIC, &res) == 0 ? "yes" : "no");
    struct timespec cpu;
    printf("process clock readable: %s\n", clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu) == 0 ? "yes" : "no");

    unsigned char bytes[64];
    getentropy(bytes, sizeof bytes);
    int distinct = 0, seen[256] = {0};
    for (int i = 0; i < 64; i++) {
        if (!seen[bytes[i]]++) distinct++;
    }
    printf("random bytes look random: %s\n", distinct > 20 ? "yes" : "no");
    struct timespec pause = {0, 2000000};
    nanosleep(&pause, NULL);
    clock_gettime(CLOCK_MONOTONIC, &a);
    long long slept = (a.tv_sec - b.tv_sec) * 1000000000LL + (a.tv_nsec - b.tv_nsec);
    printf("sleep waited: %s\n", slept >= 2000000 ? "yes" : "no");
    return 0;
}
