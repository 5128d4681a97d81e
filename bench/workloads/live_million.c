/* Scale: a million blocks alive at once. Allocates BLOCKS blocks of 16 to 48 bytes, links
 * them into a list (so every one is reachable at the peak), walks the list, then frees them
 * all. The peak RSS of each tool, less the native one, divided by BLOCKS, is that tool's
 * memory per live block (docs/performance.md).
 * usage: live_million BLOCKS   (prints the count and a checksum) */
#include <stdio.h>
#include <stdlib.h>

struct node {
    struct node *next;
    unsigned long value;
};

int main(int argc, char **argv)
{
    long blocks = argc > 1 ? atol(argv[1]) : 1000000;
    struct node *head = NULL;
    for (long i = 0; i < blocks; i++) {
        struct node *n = malloc(16 + (size_t)(i % 5) * 8);
        if (!n)
            abort();
        n->next = head;
        n->value = (unsigned long)i * 2654435761u;
        head = n;
    }
    unsigned long sum = 0;
    long count = 0;
    for (struct node *n = head; n; n = n->next) {
        sum += n->value;
        count++;
    }
    while (head) {
        struct node *next = head->next;
        free(head);
        head = next;
    }
    printf("%ld blocks, checksum %lu\n", count, sum);
    return 0;
}
