// wasi-only: calls fd_renumber directly, as programs without dup2 do (Yosys runs its linked-in ABC this way).
// Sends stdout into a file and back: the original stdout parks on another descriptor's number while the file takes
// descriptor 1, then returns to 1. Prints what each renumber returned and what the file caught.
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <wasi/api.h>

int main(int argc, char **argv) {
    if (argc < 2 || chdir(argv[1]) != 0) { perror("chdir"); return 1; }
    printf("before the redirection\n");
    fflush(stdout);
    int file = open("caught.txt", O_CREAT | O_WRONLY | O_TRUNC, 0600);
    int parking = open("caught.txt", O_RDONLY);
    if (file < 0 || parking < 0) { perror("open"); return 1; }
    int park = __wasi_fd_renumber(1, parking);
    int into = __wasi_fd_renumber(file, 1);
    int gone = __wasi_fd_renumber(file, 1);
    printf("into the file\n");
    fflush(stdout);
    int back = __wasi_fd_renumber(parking, 1);
    int same = __wasi_fd_renumber(1, 1);
    printf("after the redirection\n");
    printf("park %d, into %d, moved descriptor %s, back %d, onto itself %d\n", park, into, gone == __WASI_ERRNO_BADF ? "EBADF" : "open", back, same);
    char caught[64] = {0};
    int reader = open("caught.txt", O_RDONLY);
    if (reader < 0 || read(reader, caught, sizeof caught - 1) < 0) { perror("read back"); return 1; }
    printf("the file caught: %s", caught);
    return 0;
}
