// Prints its arguments and the FERRY_* environment variables, then exits with the argument count.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) printf("arg %d: %s\n", i, argv[i]);
    for (char **e = environ; *e; e++) {
        if (strncmp(*e, "FERRY_", 6) == 0) printf("env: %s\n", *e);
    }
    const char *missing = getenv("FERRY_NOT_SET");
    printf("FERRY_NOT_SET is %s\n", missing ? missing : "unset");
    return argc - 1;
}
