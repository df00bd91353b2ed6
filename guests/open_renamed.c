// Keeps a file open while its name changes (rename, unlink, or unlink and a new file at the name: SQLite's temporary
// files live this way), computes for a while (where a snapshot stops it), then reads the file back through its descriptor
// ("twice": through a second descriptor opened on the same file before the unlink, so the two must stay one file).
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "rename";
    int fd = open("scratch.tmp", O_CREAT | O_RDWR | O_TRUNC, 0600);
    if (fd < 0) { perror("open"); return 1; }
    int twin = strcmp(mode, "twice") == 0 ? open("scratch.tmp", O_RDWR) : fd;
    if (twin < 0) { perror("open twice"); return 1; }
    if (strcmp(mode, "rename") == 0) {
        if (rename("scratch.tmp", "renamed.tmp") != 0) { perror("rename"); return 1; }
    } else if (unlink("scratch.tmp") != 0) {
        perror("unlink");
        return 1;
    }
    if (strcmp(mode, "replace") == 0) {
        int other = open("scratch.tmp", O_CREAT | O_RDWR | O_TRUNC, 0600);
        if (other < 0 || write(other, "another file\n", 13) != 13) { perror("replace"); return 1; }
        close(other);
    }
    const char text[] = "written through the open descriptor\n";
    if (pwrite(fd, text, sizeof text - 1, 0) != (ssize_t)(sizeof text - 1)) { perror("pwrite"); return 1; }
    volatile unsigned sum = 0;
    for (unsigned i = 0; i < 30000000u; i++) sum += i;
    char back[64] = {0};
    ssize_t n = pread(twin, back, sizeof back - 1, 0);
    printf("sum %u, read %zd bytes: %s", sum, n, back);
    if (twin != fd) close(twin);
    close(fd);
    return 0;
}
