/* A shared library with its own thread-local state and allocations, loaded
 * with dlopen after start-up by tests/cpp/lifecycle.cpp. */
#include <stdlib.h>
#include <string.h>

static __thread char *mine;
static __thread unsigned long count;

/* Allocates a block in this thread's TLS slot (freeing the previous one) and
 * returns a block the caller must free. */
char *tls_lib_step(unsigned long i)
{
    free(mine);
    mine = malloc(32 + i % 200);
    if (mine == NULL)
        return NULL;
    memset(mine, (int)(i & 0xff), 32);
    count++;
    char *out = malloc(64);
    if (out != NULL)
        memcpy(out, mine, 32);
    return out;
}

unsigned long tls_lib_count(void)
{
    return count;
}

void tls_lib_release(void)
{
    free(mine);
    mine = NULL;
}
