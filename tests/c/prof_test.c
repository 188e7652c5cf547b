/* HAKMEM_PROF: a program that keeps blocks from two known functions, three
 * times as many bytes from one as from the other, and frees a third lot.
 * tests/prof.sh runs it and reads the profile with google-pprof.
 *
 *   prof_test DUMP_PATH    (run with HAKMEM_PROF=1; also calls hak_prof_dump) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hakmem.h"

#define BLOCK 1000
static void *kept[80000];
static int nkept;

__attribute__((noinline)) static void keep_three_parts(void) {
    for (int i = 0; i < 60000; i++) kept[nkept++] = memset(malloc(BLOCK), 1, BLOCK);
}

__attribute__((noinline)) static void keep_one_part(void) {
    for (int i = 0; i < 20000; i++) kept[nkept++] = memset(malloc(BLOCK), 2, BLOCK);
}

/* Allocated and freed: must not show in the profile of live memory. */
__attribute__((noinline)) static void churn_and_free(void) {
    for (int i = 0; i < 60000; i++) free(memset(malloc(BLOCK), 3, BLOCK));
}

int main(int argc, char **argv) {
    keep_three_parts();
    churn_and_free();
    keep_one_part();
    if (argc > 1 && hak_prof_dump(argv[1]) != 0) {
        perror("hak_prof_dump");
        return 1;
    }
    printf("prof_test: %d blocks of %d bytes kept\n", nkept, BLOCK);
    return 0; /* the exit profile is written after this */
}
