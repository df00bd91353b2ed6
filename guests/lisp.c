// A small Lisp interpreter, the shape of the interpreters users run on Ferry: a reader, an evaluator that recurses
// through closures and environments, builtins called through a table of function pointers, and a heap that only
// grows (the memory grows while it runs). Runs the program in FILE, or its own when none is given.
//   lisp [FILE]
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { INT, REAL, SYMBOL, PAIR, BUILTIN, LAMBDA, NIL } Kind;

typedef struct Value Value;
typedef Value *(*Builtin)(Value *args);

struct Value {
    Kind kind;
    union {
        long long integer;
        double real;
        const char *name;
        struct { Value *car, *cdr; } pair;
        struct { const char *name; Builtin call; } builtin;
        struct { Value *parameters, *body, *env; } lambda;
    };
};

static Value nil_value = {.kind = NIL};
static Value *const nil = &nil_value;
static Value *symbols = &nil_value;
static Value *global;
static long long allocated;

static Value *make(Kind kind) {
    Value *v = malloc(sizeof *v);
    if (!v) {
        fprintf(stderr, "lisp: out of memory after %lld values\n", allocated);
        exit(3);
    }
    allocated++;
    v->kind = kind;
    return v;
}

static _Noreturn void fail(const char *what, const char *detail) {
    fprintf(stderr, "lisp: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    exit(2);
}

static Value *integer(long long n) { Value *v = make(INT); v->integer = n; return v; }
static Value *real(double d) { Value *v = make(REAL); v->real = d; return v; }
static Value *cons(Value *car, Value *cdr) { Value *v = make(PAIR); v->pair.car = car; v->pair.cdr = cdr; return v; }
static Value *car(Value *v) { if (v->kind != PAIR) fail("car of a non-pair", NULL); return v->pair.car; }
static Value *cdr(Value *v) { if (v->kind != PAIR) fail("cdr of a non-pair", NULL); return v->pair.cdr; }

static Value *intern(const char *name, size_t length) {
    for (Value *s = symbols; s != nil; s = s->pair.cdr)
        if (strlen(s->pair.car->name) == length && strncmp(s->pair.car->name, name, length) == 0) return s->pair.car;
    char *copy = malloc(length + 1);
    memcpy(copy, name, length);
    copy[length] = 0;
    Value *symbol = make(SYMBOL);
    symbol->name = copy;
    symbols = cons(symbol, symbols);
    return symbol;
}

// Reader.
static const char *at;

static void skip(void) {
    for (;;) {
        while (*at == ' ' || *at == '\n' || *at == '\t' || *at == '\r') at++;
        if (*at != ';') return;
        while (*at && *at != '\n') at++;
    }
}

static Value *read_value(void);

static Value *read_list(void) {
    skip();
    if (*at == ')') { at++; return nil; }
    if (!*at) fail("unclosed list", NULL);
    Value *head = read_value();
    return cons(head, read_list());
}

static Value *read_value(void) {
    skip();
    if (*at == '(') { at++; return read_list(); }
    if (*at == '\'') { at++; return cons(intern("quote", 5), cons(read_value(), nil)); }
    if (*at == ')') fail("unexpected )", NULL);
    const char *start = at;
    while (*at && !strchr(" \n\t\r();", *at)) at++;
    char *end;
    long long n = strtoll(start, &end, 10);
    if (end == at && end != start) return integer(n);
    double d = strtod(start, &end);
    if (end == at && end != start) return real(d);
    return intern(start, (size_t)(at - start));
}

// Printer.
static void print(Value *v) {
    switch (v->kind) {
    case INT: printf("%lld", v->integer); break;
    case REAL: printf("%.10g", v->real); break;
    case SYMBOL: printf("%s", v->name); break;
    case NIL: printf("()"); break;
    case BUILTIN: printf("#<builtin %s>", v->builtin.name); break;
    case LAMBDA: printf("#<lambda>"); break;
    case PAIR:
        putchar('(');
        for (;;) {
            print(v->pair.car);
            v = v->pair.cdr;
            if (v->kind != PAIR) break;
            putchar(' ');
        }
        if (v != nil) { printf(" . "); print(v); }
        putchar(')');
        break;
    }
}

// Environments are lists of frames; a frame is a list of (symbol . value) pairs.
static Value *lookup(Value *env, Value *symbol) {
    for (; env != nil; env = env->pair.cdr)
        for (Value *b = env->pair.car; b != nil; b = b->pair.cdr)
            if (b->pair.car->pair.car == symbol) return b->pair.car;
    fail("unbound symbol", symbol->name);
}

static void define(Value *env, Value *symbol, Value *value) {
    env->pair.car = cons(cons(symbol, value), env->pair.car);
}

static int truthy(Value *v) { return v != nil && !(v->kind == INT && v->integer == 0); }

static Value *eval(Value *expr, Value *env);

static Value *eval_list(Value *list, Value *env) {
    if (list == nil) return nil;
    Value *head = eval(list->pair.car, env);
    return cons(head, eval_list(list->pair.cdr, env));
}

static Value *s_quote, *s_if, *s_define, *s_lambda, *s_let, *s_begin, *s_set;

static Value *eval(Value *expr, Value *env) {
    for (;;) {
        if (expr->kind == SYMBOL) return lookup(env, expr)->pair.cdr;
        if (expr->kind != PAIR) return expr;
        Value *op = expr->pair.car, *rest = expr->pair.cdr;
        if (op == s_quote) return car(rest);
        if (op == s_if) {
            expr = truthy(eval(car(rest), env)) ? car(cdr(rest)) : (cdr(cdr(rest)) == nil ? nil : car(cdr(cdr(rest))));
            continue;
        }
        if (op == s_define) {
            Value *target = car(rest);
            if (target->kind == PAIR) {
                Value *lambda = make(LAMBDA);
                lambda->lambda.parameters = target->pair.cdr;
                lambda->lambda.body = cdr(rest);
                lambda->lambda.env = env;
                define(env, target->pair.car, lambda);
                return target->pair.car;
            }
            define(env, target, eval(car(cdr(rest)), env));
            return target;
        }
        if (op == s_set) {
            lookup(env, car(rest))->pair.cdr = eval(car(cdr(rest)), env);
            return nil;
        }
        if (op == s_lambda) {
            Value *lambda = make(LAMBDA);
            lambda->lambda.parameters = car(rest);
            lambda->lambda.body = cdr(rest);
            lambda->lambda.env = env;
            return lambda;
        }
        if (op == s_let) {
            Value *frame = nil;
            for (Value *b = car(rest); b != nil; b = b->pair.cdr) frame = cons(cons(car(b->pair.car), eval(car(cdr(b->pair.car)), env)), frame);
            env = cons(frame, env);
            expr = cons(s_begin, cdr(rest));
            continue;
        }
        if (op == s_begin) {
            if (rest == nil) return nil;
            for (; rest->pair.cdr != nil; rest = rest->pair.cdr) eval(rest->pair.car, env);
            expr = rest->pair.car;
            continue;
        }
        Value *f = eval(op, env);
        Value *args = eval_list(rest, env);
        if (f->kind == BUILTIN) return f->builtin.call(args);
        if (f->kind != LAMBDA) fail("not a function", NULL);
        Value *frame = nil;
        Value *p = f->lambda.parameters;
        for (; p->kind == PAIR; p = p->pair.cdr, args = args->pair.cdr) {
            if (args == nil) fail("too few arguments", NULL);
            frame = cons(cons(p->pair.car, args->pair.car), frame);
        }
        if (p != nil) frame = cons(cons(p, args), frame);
        else if (args != nil) fail("too many arguments", NULL);
        env = cons(frame, f->lambda.env);
        expr = cons(s_begin, f->lambda.body);
    }
}

// Builtins: integers stay exact; a real operand makes the result real.
static double as_real(Value *v) {
    if (v->kind == INT) return (double)v->integer;
    if (v->kind == REAL) return v->real;
    fail("not a number", NULL);
}

static Value *arithmetic(Value *args, char op) {
    Value *acc = car(args);
    for (args = args->pair.cdr; args != nil; args = args->pair.cdr) {
        Value *b = args->pair.car;
        if (acc->kind == INT && b->kind == INT) {
            long long x = acc->integer, y = b->integer;
            if ((op == '/' || op == '%') && y == 0) fail("division by zero", NULL);
            acc = integer(op == '+' ? x + y : op == '-' ? x - y : op == '*' ? x * y : op == '/' ? x / y : x % y);
        } else {
            double x = as_real(acc), y = as_real(b);
            acc = real(op == '+' ? x + y : op == '-' ? x - y : op == '*' ? x * y : op == '/' ? x / y : fmod(x, y));
        }
    }
    return acc;
}

static Value *b_add(Value *a) { return arithmetic(a, '+'); }
static Value *b_sub(Value *a) { return arithmetic(a, '-'); }
static Value *b_mul(Value *a) { return arithmetic(a, '*'); }
static Value *b_div(Value *a) { return arithmetic(a, '/'); }
static Value *b_mod(Value *a) { return arithmetic(a, '%'); }
static Value *b_less(Value *a) { return integer(as_real(car(a)) < as_real(car(cdr(a)))); }
static Value *b_equal(Value *a) {
    Value *x = car(a), *y = car(cdr(a));
    if (x->kind == INT && y->kind == INT) return integer(x->integer == y->integer);
    if ((x->kind == INT || x->kind == REAL) && (y->kind == INT || y->kind == REAL)) return integer(as_real(x) == as_real(y));
    return integer(x == y);
}
static Value *b_car(Value *a) { return car(car(a)); }
static Value *b_cdr(Value *a) { return cdr(car(a)); }
static Value *b_cons(Value *a) { return cons(car(a), car(cdr(a))); }
static Value *b_list(Value *a) { return a; }
static Value *b_null(Value *a) { return integer(car(a) == nil); }
static Value *b_sqrt(Value *a) { return real(sqrt(as_real(car(a)))); }
static Value *b_print(Value *a) {
    for (Value *v = a; v != nil; v = v->pair.cdr) {
        print(v->pair.car);
        if (v->pair.cdr != nil) putchar(' ');
    }
    putchar('\n');
    return nil;
}
static Value *b_allocated(Value *a) { (void)a; return integer(allocated); }

static const struct { const char *name; Builtin call; } builtins[] = {
    {"+", b_add}, {"-", b_sub}, {"*", b_mul}, {"/", b_div}, {"mod", b_mod}, {"<", b_less}, {"=", b_equal},
    {"car", b_car}, {"cdr", b_cdr}, {"cons", b_cons}, {"list", b_list}, {"null?", b_null}, {"sqrt", b_sqrt},
    {"print", b_print}, {"allocated", b_allocated},
};

static const char *own_program =
    "(define (fib n) (if (< n 2) n (+ (fib (- n 1)) (fib (- n 2)))))\n"
    "(print 'fib 20 (fib 20))\n"
    "(define (tak x y z) (if (< y x) (tak (tak (- x 1) y z) (tak (- y 1) z x) (tak (- z 1) x y)) z))\n"
    "(print 'tak (tak 14 8 2))\n"
    "(define (range a b) (if (< a b) (cons a (range (+ a 1) b)) '()))\n"
    "(define (map f l) (if (null? l) '() (cons (f (car l)) (map f (cdr l)))))\n"
    "(define (filter p l) (if (null? l) '() (if (p (car l)) (cons (car l) (filter p (cdr l))) (filter p (cdr l)))))\n"
    "(define (fold f acc l) (if (null? l) acc (fold f (f acc (car l)) (cdr l))))\n"
    "(define (insert x l) (if (null? l) (list x) (if (< x (car l)) (cons x l) (cons (car l) (insert x (cdr l))))))\n"
    "(define (sort l) (fold (lambda (acc x) (insert x acc)) '() l))\n"
    "(define seed 12345)\n"
    "(define (random) (set! seed (mod (+ (* seed 1103515245) 12345) 2147483648)) (mod seed 1000))\n"
    "(define numbers (map (lambda (i) (random)) (range 0 300)))\n"
    "(define sorted (sort numbers))\n"
    "(print 'sorted-head (car sorted) (car (cdr sorted)) (car (cdr (cdr sorted))) 'sum (fold + 0 sorted))\n"
    "(print 'evens (fold + 0 (filter (lambda (x) (= (mod x 2) 0)) (range 0 2000))))\n"
    "(define (make-counter) (let ((n 0)) (lambda () (set! n (+ n 1)) n)))\n"
    "(define counter (make-counter))\n"
    "(define (repeat k f) (if (< 0 k) (begin (f) (repeat (- k 1) f)) 'done))\n"
    "(repeat 5000 counter)\n"
    "(print 'counter (counter))\n"
    "(define (newton x) (let ((guess 1.0)) (define (step g k) (if (< 0 k) (step (/ (+ g (/ x g)) 2) (- k 1)) g)) (step guess 20)))\n"
    "(print 'newton (newton 2) (sqrt 2))\n"
    "(define (loop i acc) (if (< i 40000) (loop (+ i 1) (+ acc (* i 0.5))) acc))\n"
    "(print 'loop (loop 0 0))\n"
    "(print 'quoted '(a (b . c) 3 4.5))\n";

int main(int argc, char **argv) {
    static char *program;
    if (argc > 2) {
        fprintf(stderr, "usage: lisp [FILE]\n");
        return 2;
    }
    if (argc == 2) {
        FILE *file = fopen(argv[1], "rb");
        if (!file) {
            perror("lisp");
            return 1;
        }
        size_t size = 0, capacity = 4096;
        program = malloc(capacity);
        size_t n;
        while ((n = fread(program + size, 1, capacity - size - 1, file)) > 0) {
            size += n;
            if (capacity - size < 2) program = realloc(program, capacity *= 2);
        }
        program[size] = 0;
        fclose(file);
    }
    s_quote = intern("quote", 5);
    s_if = intern("if", 2);
    s_define = intern("define", 6);
    s_lambda = intern("lambda", 6);
    s_let = intern("let", 3);
    s_begin = intern("begin", 5);
    s_set = intern("set!", 4);
    global = cons(nil, nil);
    for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++) {
        Value *b = make(BUILTIN);
        b->builtin.name = builtins[i].name;
        b->builtin.call = builtins[i].call;
        define(global, intern(builtins[i].name, strlen(builtins[i].name)), b);
    }
    at = program ? program : own_program;
    for (skip(); *at; skip()) eval(read_value(), global);
    printf("values allocated: %lld\n", allocated);
    return 0;
}
