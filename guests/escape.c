// wasi-only: WASI errno names (ENOTCAPABLE) have no native equivalent.
// Tries to leave its preopened directory (argv[1]) in many ways and prints the errno of each attempt.
// With "wait" as argv[2] it opens directory "d", prints "ready", waits for a line on stdin (while the host
// moves "d" out of the tree), then tries to reach "secret" through the old directory handle.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *name(int error) {
    switch (error) {
    case 0: return "OK";
    case ENOENT: return "ENOENT";
    case ENOTCAPABLE: return "ENOTCAPABLE";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case EEXIST: return "EEXIST";
    case ELOOP: return "ELOOP";
    case ENOTDIR: return "ENOTDIR";
    default: return strerror(error);
    }
}

static void report(const char *attempt, int result) { printf("%s: %s\n", attempt, name(result < 0 ? errno : 0)); }

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    if (chdir(argv[1]) != 0) return 3;
    if (argc > 2 && strcmp(argv[2], "wait") == 0) {
        int dir = open("d", O_RDONLY | O_DIRECTORY);
        if (dir < 0) return 4;
        printf("ready\n");
        fflush(stdout);
        char line[16];
        if (!fgets(line, sizeof line, stdin)) return 5;
        report("moved directory handle", openat(dir, "secret", O_RDONLY));
        return 0;
    }
    report("dotdot", open("../outside.txt", O_RDONLY));
    report("absolute", open("/etc/passwd", O_RDONLY));
    report("nested dotdot", open("sub/../../outside.txt", O_RDONLY));
    report("symlink to absolute", open("link-absolute", O_RDONLY));
    report("symlink climbing out", open("link-up/outside.txt", O_RDONLY));
    report("create absolute symlink", symlink("/etc", "made-absolute"));
    report("create climbing symlink", symlink("../..", "made-up"));
    report("follow created symlink", open("made-up/outside.txt", O_RDONLY));
    report("mkdir outside", mkdir("../made-outside", 0755));
    report("rename outside", rename("inside.txt", "../stolen.txt"));
    report("unlink outside", unlink("../outside.txt"));
    report("hard link outside", link("../outside.txt", "hard"));
    report("opendir parent", opendir("..") ? 0 : -1);
    report("stat outside", ({ struct stat st; stat("../outside.txt", &st); }));
    report("create through symlink", open("link-up/created.txt", O_WRONLY | O_CREAT, 0644));
    report("inside still works", open("inside.txt", O_RDONLY));
    return 0;
}
