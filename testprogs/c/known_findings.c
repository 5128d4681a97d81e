/* known_findings.c: a program with findings someone has decided to live with, for
 * suppressions (--gen-suppressions, --suppressions) and baselines (--baseline).
 *
 * Run without arguments, a correct tool reports four findings:
 *   heap-buffer-overflow: read of 1 byte, 0 bytes after a 10-byte block (FP:overflow)
 *   double-free of a 16-byte block (FP:double)
 *   definite leak, 24 bytes in 1 block, allocated in make_node (FP:node, malloc)
 *   definite leak, 40 bytes in 1 block, allocated in make_table (FP:table, calloc)
 * Run with the argument "extra", one more (the "new" finding):
 *   definite leak, 7 bytes in 1 block, strdup called from add_label (FP:extra)
 * memcheck reports the same (the overflow as "Invalid read of size 1"). Exits 0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct node {
    struct node *next;
    long value;
    long pad;
};

static struct node *make_node(long value) {
    struct node *n = malloc(sizeof *n); /* FP:node */
    n->next = NULL;
    n->value = value;
    return n;
}

static long *make_table(void) {
    return calloc(10, sizeof(int)); /* FP:table */
}

static char *add_label(const char *text) {
    return strdup(text); /* FP:extra */
}

int main(int argc, char **argv) {
    char *buf = malloc(10);
    memset(buf, 'x', 10);
    volatile char c = buf[10]; /* FP:overflow */
    (void)c;
    free(buf);

    void *twice = malloc(16);
    free(twice);
    free(twice); /* FP:double */

    struct node *n = make_node(7);
    long *table = make_table();
    char *label = NULL;
    if (argc > 1 && strcmp(argv[1], "extra") == 0)
        label = add_label("labels");
    printf("%ld %ld %s\n", n->value, table[0], label ? label : "-");
    n = NULL;
    table = NULL;
    label = NULL;
    return 0;
}
