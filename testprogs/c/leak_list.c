/* leak_list.c: a 10-node linked list whose head pointer is dropped.
 *
 * A correct tool reports two loss records, both allocated in new_node() at the line
 * marked FP:node (leak_list.c:26):
 *   definite, 32 bytes in 1 block   (the head: nothing points to it)
 *   indirect, 288 bytes in 9 blocks (the rest: only reachable from the lost head)
 * No errors. Exit status 0.
 *
 * valgrind 3.19 memcheck: "320 (32 direct, 288 indirect) bytes in 1 blocks are
 * definitely lost" and "288 bytes in 9 blocks are indirectly lost", both at
 * new_node (leak_list.c:26). Natively: prints "sum 45", exits 0.
 */
#include <stdio.h>
#include <stdlib.h>

struct node {
    struct node *next;
    long value;
    long pad[2]; /* makes a node 32 bytes */
};

_Static_assert(sizeof(struct node) == 32, "node is 32 bytes");

__attribute__((noinline)) static struct node *new_node(long value, struct node *next)
{
    struct node *n = malloc(sizeof *n); /* FP:node */
    n->next = next;
    n->value = value;
    n->pad[0] = n->pad[1] = 0;
    return n;
}

__attribute__((noinline)) static long build_and_drop(void)
{
    struct node *head = NULL;
    for (long i = 0; i < 10; i++)
        head = new_node(i, head);
    long sum = 0;
    for (struct node *n = head; n; n = n->next)
        sum += n->value;
    head = NULL; /* the only pointer to the list dies with this frame */
    return sum;
}

int main(void)
{
    printf("sum %ld\n", build_and_drop());
    return 0;
}
