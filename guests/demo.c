// The guest of `ferry demo`: counts primes below a limit and reports progress through the host.
// Built without libc so it needs nothing but the one host function it imports.

__attribute__((import_module("ferry"), import_name("print")))
void ferry_print(const char *text, int length);

static char line[96];

static int append(int at, const char *text) {
    while (*text) line[at++] = *text++;
    return at;
}

static int append_number(int at, unsigned value) {
    char digits[10];
    int count = 0;
    do {
        digits[count++] = (char)('0' + value % 10);
        value /= 10;
    } while (value);
    while (count) line[at++] = digits[--count];
    return at;
}

static void report(unsigned n, unsigned count) {
    int at = append(0, "checked ");
    at = append_number(at, n);
    at = append(at, " numbers, ");
    at = append_number(at, count);
    at = append(at, " primes so far");
    ferry_print(line, at);
}

__attribute__((export_name("run")))
unsigned run(unsigned limit) {
    unsigned count = 0;
    unsigned step = limit / 8 ? limit / 8 : 1;
    for (unsigned n = 2; n < limit; n++) {
        int prime = 1;
        for (unsigned d = 2; d * d <= n; d++) {
            if (n % d == 0) {
                prime = 0;
                break;
            }
        }
        count += prime;
        if (n % step == 0) report(n, count);
    }
    return count;
}
