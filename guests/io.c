// Bulk I/O: `io read FILE` reads FILE through a 64 KiB buffer; `io write MIB` writes MIB mebibytes to stdout.
// Prints (to stderr for write) the byte count and a checksum, so both paths can be checked and timed.
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char buffer[1 << 16];

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "read") == 0) {
        int fd = open(argv[2], O_RDONLY);
        if (fd < 0) {
            perror("io: open");
            return 1;
        }
        unsigned long long total = 0, sum = 0;
        ssize_t n;
        while ((n = read(fd, buffer, sizeof buffer)) > 0) {
            total += (unsigned long long)n;
            sum += (unsigned char)buffer[0] + (unsigned char)buffer[n - 1];
        }
        printf("io: read %llu bytes, checksum %llu\n", total, sum);
        return n < 0;
    }
    if (argc == 3 && strcmp(argv[1], "write") == 0) {
        long mib = atol(argv[2]);
        for (size_t i = 0; i < sizeof buffer; i++) buffer[i] = (char)('a' + i % 26);
        for (long i = 0; i < mib * 16; i++) {
            for (size_t done = 0; done < sizeof buffer;) {
                ssize_t n = write(1, buffer + done, sizeof buffer - done);
                if (n <= 0) return 1;
                done += (size_t)n;
            }
        }
        fprintf(stderr, "io: wrote %ld MiB\n", mib);
        return 0;
    }
    fprintf(stderr, "usage: io read FILE | io write MIB\n");
    return 2;
}
