/* flex_member.c: structs with a flexible array member, malloc(offsetof(..., name) + len + 1),
 * kept in a list reachable from a global. Nothing is lost.
 *
 * The node sizes (19, 20, 22 bytes) are not multiples of 8, yet the nodes hold pointers at
 * offsets 0 and 8 (C allows this: malloc's result is suitably aligned for any object, and
 * the struct needs 8). A correct tool reports no definite, indirect or possible leak:
 * every node and every payload is reachable from `names` (3 nodes + 3 payloads of 32
 * bytes, all `reachable`). No error. Prints "3 names", exits 0.
 *
 * valgrind 3.19 memcheck: "definitely lost: 0 bytes in 0 blocks", "still reachable: 157
 * bytes in 6 blocks".
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct name_node {
    struct name_node *next;
    char *payload;
    char name[];
};

struct name_node *names;

static void add(const char *name)
{
    size_t len = strlen(name);
    struct name_node *n = malloc(offsetof(struct name_node, name) + len + 1); /* FP:node */
    n->payload = malloc(32); /* FP:payload */
    memset(n->payload, 'p', 32);
    memcpy(n->name, name, len + 1);
    n->next = names;
    names = n;
}

int main(void)
{
    add("ab");
    add("cde");
    add("fghij");
    int count = 0;
    for (struct name_node *n = names; n; n = n->next)
        count++;
    printf("%d names\n", count);
    return 0;
}
