/* Allocation-bound: the benchmarks-game binary-trees, single-threaded. Millions of
 * 16-byte nodes are malloc'd and freed in tree order, with a long-lived tree kept
 * alive throughout, so the cost per malloc/free of each tool dominates.
 * usage: binary_trees MAX_DEPTH   (prints the check sums, so runs can be compared) */
#include <stdio.h>
#include <stdlib.h>

struct node { struct node *left, *right; };

static struct node *bottom_up(int depth)
{
    struct node *n = malloc(sizeof *n);
    if (!n)
        abort();
    if (depth > 0) {
        n->left = bottom_up(depth - 1);
        n->right = bottom_up(depth - 1);
    } else {
        n->left = n->right = NULL;
    }
    return n;
}

static long check(const struct node *n)
{
    return 1 + (n->left ? check(n->left) + check(n->right) : 0);
}

static void delete(struct node *n)
{
    if (n->left) {
        delete(n->left);
        delete(n->right);
    }
    free(n);
}

int main(int argc, char **argv)
{
    const int min_depth = 4;
    int max_depth = argc > 1 ? atoi(argv[1]) : 16;
    if (max_depth < min_depth + 2)
        max_depth = min_depth + 2;

    struct node *stretch = bottom_up(max_depth + 1);
    printf("stretch tree of depth %d\t check: %ld\n", max_depth + 1, check(stretch));
    delete(stretch);

    struct node *long_lived = bottom_up(max_depth);
    for (int d = min_depth; d <= max_depth; d += 2) {
        long iterations = 1L << (max_depth - d + min_depth), sum = 0;
        for (long i = 0; i < iterations; i++) {
            struct node *t = bottom_up(d);
            sum += check(t);
            delete(t);
        }
        printf("%ld\t trees of depth %d\t check: %ld\n", iterations, d, sum);
    }
    printf("long lived tree of depth %d\t check: %ld\n", max_depth, check(long_lived));
    delete(long_lived);
    return 0;
}
