// The smallest WASI program: prints a line and exits with 0.
#include <stdio.h>

int main(void) {
    printf("Hello from a Ferry guest!\n");
    return 0;
}
