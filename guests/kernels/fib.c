#include "kernel.h"
// Recursive calls: the cost of a call and a return.
static unsigned fib(unsigned n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }
unsigned kernel(unsigned n) { return fib(n); }
