// C++'s operators under hakmem: they resolve to libhakmem.so itself (not
// libstdc++'s wrappers), new throws std::bad_alloc when there is no memory
// (after calling the new-handler), nothrow new returns null, aligned new
// aligns, and every form of delete takes its blocks back (reused at once).
// Run preloaded with HAKTEST_EXPECT_HAKMEM=1 (without it, as against the
// system malloc, where the operators are checked are libstdc++'s); exits 1
// with a line per failure.
#include <dlfcn.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

static int failures;

#define CHECK(cond, ...)                                                     \
    do {                                                                     \
        if (!(cond)) {                                                       \
            std::printf("new_test: FAIL %s:%d: ", __FILE__, __LINE__);       \
            std::printf(__VA_ARGS__);                                        \
            std::printf("\n");                                               \
            failures++;                                                      \
        }                                                                    \
    } while (0)

static bool from_hakmem(const void *fn)
{
    Dl_info info;
    return dladdr(fn, &info) != 0 && info.dli_fname && std::strstr(info.dli_fname, "libhakmem");
}

static int handler_calls;
static void handler()
{
    handler_calls++;
    std::set_new_handler(nullptr); // the next failure throws
}

struct alignas(256) Wide {
    char bytes[256];
};

int main()
{
    void *(*plain_new)(std::size_t) = &::operator new;
    void (*plain_delete)(void *) noexcept = &::operator delete;
    void (*sized_delete)(void *, std::size_t) noexcept = &::operator delete;
    void *(*aligned_new)(std::size_t, std::align_val_t) = &::operator new;
    if (std::getenv("HAKTEST_EXPECT_HAKMEM")) {
        CHECK(from_hakmem(reinterpret_cast<void *>(plain_new)), "operator new is not hakmem's");
        CHECK(from_hakmem(reinterpret_cast<void *>(plain_delete)), "operator delete is not hakmem's");
        CHECK(from_hakmem(reinterpret_cast<void *>(sized_delete)), "sized delete is not hakmem's");
        CHECK(from_hakmem(reinterpret_cast<void *>(aligned_new)), "aligned new is not hakmem's");
    }

    // A block given back by delete is one of the next two new hands out
    // (the next in default mode; hardened mode hands out one other first).
    int *a = new int(7);
    std::uintptr_t first = reinterpret_cast<std::uintptr_t>(a);
    delete a;
    int *b = new int(8), *c = new int(9);
    CHECK(first == reinterpret_cast<std::uintptr_t>(b) || first == reinterpret_cast<std::uintptr_t>(c),
          "delete did not give the block back");
    delete b;
    delete c;
    char *arr = new char[100];
    std::memset(arr, 1, 100);
    delete[] arr;
    char *sized = static_cast<char *>(::operator new(48));
    ::operator delete(sized, 48);

    Wide *w = new Wide[3];
    CHECK(reinterpret_cast<std::uintptr_t>(w) % 256 == 0, "aligned new[] gave %p", (void *)w);
    delete[] w;
    Wide *one = new Wide;
    CHECK(reinterpret_cast<std::uintptr_t>(one) % 256 == 0, "aligned new gave %p", (void *)one);
    delete one;

    const std::size_t impossible = std::size_t(1) << 62;
    void *none = ::operator new(impossible, std::nothrow);
    CHECK(none == nullptr, "nothrow new of 2^62 bytes gave %p", none);
    void *none_aligned = ::operator new(impossible, std::align_val_t(64), std::nothrow);
    CHECK(none_aligned == nullptr, "aligned nothrow new of 2^62 bytes gave %p", none_aligned);

    bool threw = false;
    try {
        void *p = ::operator new(impossible);
        std::printf("new_test: FAIL new of 2^62 bytes returned %p\n", p);
        failures++;
    } catch (const std::bad_alloc &) {
        threw = true;
    }
    CHECK(threw, "new of 2^62 bytes did not throw std::bad_alloc");

    std::set_new_handler(handler);
    threw = false;
    try {
        char *p = new char[impossible];
        std::printf("new_test: FAIL new[] of 2^62 bytes returned %p\n", (void *)p);
        failures++;
    } catch (const std::bad_alloc &) {
        threw = true;
    }
    CHECK(threw && handler_calls == 1, "new[] with a handler: threw %d, handler called %d times",
          threw, handler_calls);

    threw = false;
    try {
        void *p = ::operator new(impossible, std::align_val_t(4096));
        std::printf("new_test: FAIL aligned new of 2^62 bytes returned %p\n", p);
        failures++;
    } catch (const std::bad_alloc &) {
        threw = true;
    }
    CHECK(threw, "aligned new of 2^62 bytes did not throw std::bad_alloc");

    std::printf("new_test: %d failure(s)\n", failures);
    return failures != 0;
}
