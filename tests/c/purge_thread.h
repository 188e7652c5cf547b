/* Whether hakmem's purge thread runs: some thread of this process is
 * named hakmem-purge. For purge_test and exit_test. */
#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static bool purge_thread_exists(void)
{
    DIR *d = opendir("/proc/self/task");
    bool found = false;
    for (struct dirent *e; d && (e = readdir(d));) {
        char path[300], comm[32] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (f && fgets(comm, sizeof comm, f) && strncmp(comm, "hakmem-purge", 12) == 0)
            found = true;
        if (f)
            fclose(f);
    }
    if (d)
        closedir(d);
    return found;
}
