/* A process whose last thread ends with pthread_exit ends, with hakmem's
 * purge thread running: that thread ends when no thread with a heap is
 * left. Before it did, such a process stayed forever (the purge thread
 * blocks every signal, so SIGTERM did not end it either); CPython's
 * test_threading waited 5 minutes for a forked child that ends that way.
 * Linked with hakmem; run under `timeout`, which turns a hang into a
 * failure.
 *
 *   exit_test        main makes the purge thread run, then pthread_exit
 *   exit_test fork   the same in a child forked from a second thread, whose
 *                    only thread then ends with pthread_exit; the parent
 *                    waits for it and checks its exit status */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "purge_thread.h"

/* Where the blocks go, so the compiler keeps the calls. */
static void *volatile sink;

/* Frees memory for the purge thread to give back until it runs (3 s at
 * most); exits with 1 if it never does, as the test would prove nothing. */
static void start_purge_thread(const char *who)
{
    for (int i = 0; i < 300 && !purge_thread_exists(); i++) {
        char *p = malloc(8 << 20), *q = malloc(100000);
        memset(p, 1, 8 << 20);
        memset(q, 2, 100000);
        sink = p;
        free(sink);
        sink = q;
        free(sink);
        usleep(10000);
    }
    if (!purge_thread_exists()) {
        fprintf(stderr, "exit_test: %s: the purge thread never started\n", who);
        exit(1);
    }
}

static void *fork_and_wait(void *arg)
{
    (void)arg;
    pid_t pid = fork();
    if (pid < 0) {
        perror("exit_test: fork");
        exit(1);
    }
    if (pid == 0) {
        start_purge_thread("child");
        pthread_exit(NULL); /* the child's only thread */
    }
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "exit_test: the child did not exit cleanly (status 0x%x)\n", status);
        exit(1);
    }
    printf("exit_test: a forked child whose only thread called pthread_exit ended\n");
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "fork") == 0) {
        start_purge_thread("parent");
        pthread_t t;
        if (pthread_create(&t, NULL, fork_and_wait, NULL) != 0 || pthread_join(t, NULL) != 0) {
            fprintf(stderr, "exit_test: thread\n");
            return 1;
        }
        return 0;
    }
    start_purge_thread("main");
    printf("exit_test: the purge thread runs; main calls pthread_exit\n");
    fflush(stdout);
    pthread_exit(NULL);
}
