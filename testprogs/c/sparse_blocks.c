/* sparse_blocks.c: big blocks whose pages were mostly never touched, each holding one
 * pointer deep inside. The exit scan skips untouched pages of big blocks
 * (crates/shim/src/leaks.rs); it must still find the pointers on the pages that were
 * written.
 *
 * A correct tool reports: the 64 MiB block kept by a global, and the 48-byte block whose
 * only pointer sits 40 MiB into it, as still reachable; the 32 MiB block whose pointer is
 * dropped as definitely lost (FP:big_lost), and the 24-byte block it points to from 20 MiB
 * in as indirectly lost (FP:inner_lost). No error. Prints "sparse done"; exits 0.
 * valgrind 3.19 memcheck: the same reachable records, but the lost pair as "possibly lost"
 * (33,554,456 bytes in 2 blocks): some value in memory it scans falls inside the 32 MiB
 * block as valgrind places it (with a 1 MiB block it says definitely lost, like fencepost).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

void **kept;

/* In a thread of its own, so that no register of a live thread keeps a pointer into the
 * lost block (memcheck scans live threads' registers at exit). */
static void *lose_one(void *arg)
{
    void **lost = malloc(32u << 20); /* FP:big_lost */
    lost[(20u << 20) / sizeof(void *) + 1] = malloc(24); /* FP:inner_lost */
    return arg;
}

int main(void)
{
    kept = malloc(64u << 20);
    kept[(40u << 20) / sizeof(void *)] = malloc(48);
    pthread_t t;
    pthread_create(&t, NULL, lose_one, NULL);
    pthread_join(t, NULL);
    printf("sparse done\n");
    return 0;
}
