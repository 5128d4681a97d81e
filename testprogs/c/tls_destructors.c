/* tls_destructors.c: 10 threads each store a 128-byte block in a pthread key whose
 * destructor frees it at thread exit.
 *
 * A correct tool sees every block freed by the destructors (they run inside the exiting
 * thread, after the thread's start routine returned): no definite, indirect or possible
 * record, no error. Prints "threads done"; exits 0.
 * valgrind 3.19 memcheck: "All heap blocks were freed" apart from libc's own.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_key_t key;

static void release(void *p)
{
    free(p);
}

static void *worker(void *arg)
{
    (void)arg;
    char *p = malloc(128); /* FP:keyed */
    memset(p, 1, 128);
    pthread_setspecific(key, p);
    return NULL;
}

int main(void)
{
    pthread_key_create(&key, release);
    pthread_t t[10];
    for (int i = 0; i < 10; i++)
        pthread_create(&t[i], NULL, worker, NULL);
    for (int i = 0; i < 10; i++)
        pthread_join(t[i], NULL);
    printf("threads done\n");
    return 0;
}
