// wasi-only: uses the WASI socket API directly, so it has no native build.
// A TCP echo server on the listening socket the host grants (the first descriptor after stdio and any
// preopened directories, found by probing). Serves argv[1] connections (default 1), echoing each until EOF.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
#include <wasi/api.h>

static int find_listener(void) {
    for (int fd = 3; fd < 64; fd++) {
        __wasi_fdstat_t stat;
        if (__wasi_fd_fdstat_get(fd, &stat) == 0 && stat.fs_filetype == __WASI_FILETYPE_SOCKET_STREAM) return fd;
    }
    return -1;
}

int main(int argc, char **argv) {
    int connections = argc > 1 ? atoi(argv[1]) : 1;
    int listener = find_listener();
    if (listener < 0) {
        fprintf(stderr, "echo_server: no listening socket granted (use --tcplisten)\n");
        return 1;
    }
    printf("echo_server: listening on fd %d\n", listener);
    fflush(stdout);
    for (int served = 0; served < connections; served++) {
        __wasi_fd_t connection;
        __wasi_errno_t error = __wasi_sock_accept(listener, 0, &connection);
        if (error != 0) {
            fprintf(stderr, "echo_server: accept failed: %d\n", error);
            return 1;
        }
        char buffer[4096];
        long total = 0;
        for (;;) {
            ssize_t n = read(connection, buffer, sizeof buffer);
            if (n <= 0) break;
            for (ssize_t written = 0; written < n;) {
                ssize_t w = write(connection, buffer + written, n - written);
                if (w <= 0) return 1;
                written += w;
            }
            total += n;
        }
        close(connection);
        printf("echo_server: connection %d echoed %ld bytes\n", served + 1, total);
        fflush(stdout);
    }
    return 0;
}
