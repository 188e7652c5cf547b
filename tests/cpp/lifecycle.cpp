// Lifecycle cases a C++ program meets: exceptions thrown and caught in several
// threads, frees from atexit handlers and from static destructors after main
// returns, a shared library with its own TLS loaded with dlopen, 20,000
// short-lived threads whose blocks other threads free (RSS must stay bounded),
// and fork while other threads are inside malloc, hundreds of times.
//
//   lifecycle PATH_TO_TLS_LIB     prints one line per case; exit 1 on failure
#include <dlfcn.h>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

static int failures;
static void check(bool ok, const char *what)
{
    if (!ok) {
        failures++;
        std::fprintf(stderr, "lifecycle: FAIL: %s\n", what);
    }
}

static long rss_kib()
{
    FILE *f = std::fopen("/proc/self/statm", "r");
    long pages = 0, resident = 0;
    if (f == nullptr || std::fscanf(f, "%ld %ld", &pages, &resident) != 2)
        std::exit(1);
    std::fclose(f);
    return resident * 4;
}

// Freed after main returns, by the static destructor.
struct Registry {
    std::map<std::string, std::vector<int>> entries;
    ~Registry()
    {
        entries.clear();
        std::puts("lifecycle: static destructor freed its blocks");
    }
};
static Registry registry;
static char *at_exit_block;

static void free_at_exit()
{
    check(std::strcmp(at_exit_block, "atexit") == 0, "block freed in atexit is intact");
    std::free(at_exit_block);
    std::puts("lifecycle: atexit handler freed its block");
}

static void exceptions()
{
    std::atomic<long> caught{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; t++)
        ts.emplace_back([&caught, t] {
            for (int i = 0; i < 2000; i++) {
                try {
                    std::vector<std::string> v(1 + i % 13, std::string(40 + t, 'x'));
                    if (i % 3 == 0)
                        throw std::runtime_error("error " + std::to_string(i) + v[0]);
                } catch (const std::exception &e) {
                    if (std::strncmp(e.what(), "error ", 6) == 0)
                        caught++;
                }
            }
        });
    for (auto &t : ts)
        t.join();
    check(caught == 4 * 667, "every exception was caught");
    std::printf("lifecycle: exceptions: %ld thrown and caught in 4 threads\n", caught.load());
}

static void dlopen_tls(const char *path)
{
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    check(h != nullptr, "dlopen of the TLS library");
    if (h == nullptr)
        return;
    auto step = reinterpret_cast<char *(*)(unsigned long)>(dlsym(h, "tls_lib_step"));
    auto count = reinterpret_cast<unsigned long (*)()>(dlsym(h, "tls_lib_count"));
    auto release = reinterpret_cast<void (*)()>(dlsym(h, "tls_lib_release"));
    std::vector<std::thread> ts;
    std::atomic<int> good{0};
    for (int t = 0; t < 4; t++)
        ts.emplace_back([&] {
            for (unsigned long i = 0; i < 5000; i++) {
                char *p = step(i);
                if (p != nullptr && static_cast<unsigned char>(p[31]) == (i & 0xff))
                    good++;
                std::free(p); // allocated in the library, freed here
            }
            if (count() != 5000)
                good -= 100000;
            release();
        });
    for (auto &t : ts)
        t.join();
    check(good == 4 * 5000, "the library's TLS and blocks behave in every thread");
    dlclose(h);
    std::printf("lifecycle: dlopen'ed library with TLS: %d blocks across the boundary\n", good.load());
}

static void short_threads()
{
    const int total = 20000, batch = 200;
    long start = rss_kib(), peak = start;
    std::vector<void *> handed;
    for (int done = 0; done < total; done += batch) {
        std::vector<pthread_t> ts(batch);
        static void *out[200];
        for (int i = 0; i < batch; i++)
            pthread_create(&ts[i], nullptr, [](void *arg) -> void * {
                long k = reinterpret_cast<long>(arg);
                void *keep = std::malloc(64 + k % 2000);
                std::memset(keep, 1, 64);
                std::vector<int> scratch(100 + k % 300, 7);
                out[k % 200] = keep;
                return nullptr;
            }, reinterpret_cast<void *>(static_cast<long>(done + i)));
        for (auto &t : ts)
            pthread_join(t, nullptr);
        for (int i = 0; i < batch; i++)
            std::free(out[i]); // blocks of threads that have exited
        long now = rss_kib();
        if (now > peak)
            peak = now;
    }
    check(peak - start < 64 * 1024, "RSS stays bounded over 20,000 threads");
    std::printf("lifecycle: 20000 short threads: RSS %ld KiB at start, %ld KiB peak\n", start, peak);
}

static void fork_in_malloc()
{
    std::atomic<bool> stop{false};
    std::vector<std::thread> ts;
    for (int t = 0; t < 2; t++)
        ts.emplace_back([&stop, t] {
            std::vector<std::unique_ptr<char[]>> keep(64);
            unsigned long i = t;
            while (!stop.load(std::memory_order_relaxed)) {
                keep[i % 64].reset(new char[16 + (i * 37) % 5000]);
                i++;
            }
        });
    int ok = 0;
    const int forks = 300;
    for (int f = 0; f < forks; f++) {
        pid_t pid = fork();
        if (pid == 0) {
            std::vector<std::string> v;
            for (int i = 0; i < 200; i++)
                v.emplace_back(100 + i, 'c');
            std::_Exit(v.size() == 200 ? 0 : 1);
        }
        int status = 0;
        if (pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0)
            ok++;
    }
    stop = true;
    for (auto &t : ts)
        t.join();
    check(ok == forks, "every child allocated and exited cleanly");
    std::printf("lifecycle: fork while 2 threads allocate: %d/%d children ok\n", ok, forks);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        std::fprintf(stderr, "usage: lifecycle PATH_TO_TLS_LIB\n");
        return 2;
    }
    Dl_info info;
    if (std::getenv("HAKTEST_EXPECT_HAKMEM") != nullptr &&
        (dladdr(reinterpret_cast<void *>(&malloc), &info) == 0 || std::strstr(info.dli_fname, "libhakmem") == nullptr)) {
        std::fprintf(stderr, "lifecycle: malloc is not hakmem's\n");
        return 1;
    }
    for (int i = 0; i < 1000; i++)
        registry.entries["key" + std::to_string(i)].assign(i % 50, i);
    at_exit_block = static_cast<char *>(std::malloc(16));
    std::strcpy(at_exit_block, "atexit");
    std::atexit(free_at_exit);

    exceptions();
    dlopen_tls(argv[1]);
    short_threads();
    fork_in_malloc();
    std::printf("lifecycle: %d failures\n", failures);
    return failures != 0;
}
