// File and directory operations inside the directory given as argv[1]: create, write, append, read back,
// seek, rename, list, stat, truncate, remove. Prints what it sees; all output is deterministic.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void check(int ok, const char *what) {
    if (!ok) {
        printf("FAILED: %s: %s\n", what, strerror(errno));
        exit(1);
    }
}

static int compare(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void list(const char *path) {
    DIR *dir = opendir(path);
    check(dir != NULL, "opendir");
    char *names[64];
    int count = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL && count < 64) {
        if (strcmp(entry->d_name, ".") && strcmp(entry->d_name, "..")) names[count++] = strdup(entry->d_name);
    }
    closedir(dir);
    qsort(names, count, sizeof names[0], compare);
    printf("%s:", path);
    for (int i = 0; i < count; i++) {
        printf(" %s", names[i]);
        free(names[i]);
    }
    printf("\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        printf("usage: files DIR\n");
        return 2;
    }
    char path[512], other[512];
    check(chdir(argv[1]) == 0, "chdir");
    check(mkdir("work", 0755) == 0, "mkdir work");
    FILE *f = fopen("work/notes.txt", "w");
    check(f != NULL, "fopen w");
    for (int i = 0; i < 100; i++) fprintf(f, "line %d\n", i);
    fclose(f);
    f = fopen("work/notes.txt", "a");
    check(f != NULL, "fopen a");
    fprintf(f, "appended\n");
    fclose(f);

    int fd = open("work/notes.txt", O_RDONLY);
    check(fd >= 0, "open");
    char buffer[64];
    check(lseek(fd, 70, SEEK_SET) == 70, "lseek");
    ssize_t n = read(fd, buffer, 20);
    check(n == 20, "read");
    printf("at 70: %.20s\n", buffer);
    off_t end = lseek(fd, 0, SEEK_END);
    printf("size by seek: %ld\n", (long)end);
    close(fd);

    fd = open("work/notes.txt", O_RDWR);
    check(fd >= 0, "open rw");
    check(pwrite(fd, "LINE", 4, 7) == 4, "pwrite");
    check(pread(fd, buffer, 12, 5) == 12, "pread");
    printf("pread after pwrite: %.12s\n", buffer);
    printf("offset untouched: %ld\n", (long)lseek(fd, 0, SEEK_CUR));
    close(fd);

    struct stat st;
    check(stat("work/notes.txt", &st) == 0, "stat");
    printf("size by stat: %ld, regular: %d\n", (long)st.st_size, S_ISREG(st.st_mode));
    check(stat("work", &st) == 0 && S_ISDIR(st.st_mode), "stat dir");

    snprintf(path, sizeof path, "work/notes.txt");
    snprintf(other, sizeof other, "work/renamed.txt");
    check(rename(path, other) == 0, "rename");
    check(mkdir("work/sub", 0755) == 0, "mkdir sub");
    f = fopen("work/sub/a.bin", "wb");
    check(f != NULL, "fopen wb");
    for (int i = 0; i < 5000; i++) fputc(i & 0xff, f);
    fclose(f);
    list("work");
    list("work/sub");

    check(truncate("work/sub/a.bin", 1234) == 0, "truncate");
    check(stat("work/sub/a.bin", &st) == 0, "stat a.bin");
    printf("truncated to %ld\n", (long)st.st_size);

    errno = 0;
    printf("open missing: %s\n", open("work/missing", O_RDONLY) < 0 && errno == ENOENT ? "ENOENT" : "unexpected");
    printf("mkdir existing: %s\n", mkdir("work", 0755) < 0 && errno == EEXIST ? "EEXIST" : "unexpected");
    printf("rmdir non-empty: %s\n", rmdir("work") < 0 && errno == ENOTEMPTY ? "ENOTEMPTY" : "unexpected");

    check(unlink("work/sub/a.bin") == 0, "unlink");
    check(rmdir("work/sub") == 0, "rmdir sub");
    check(unlink("work/renamed.txt") == 0, "unlink renamed");
    check(rmdir("work") == 0, "rmdir work");
    list(".");
    printf("done\n");
    return 0;
}
