/* What C++'s operator new does when hakmem has no memory: call the
 * program's new-handler and try again while there is one, then throw
 * std::bad_alloc. It is C, compiled with unwind tables, because Rust built
 * with panic=abort aborts any exception that unwinds through its frames;
 * the Rust operators (cxx.rs) tail-call it, so none of theirs is left
 * below it when it throws.
 *
 * libstdc++ is referenced weakly: libhakmem.so needs nothing but libc, and
 * any program that calls operator new has libstdc++ loaded. */

#include <stddef.h>
#include <stdlib.h>

typedef void (*new_handler)(void);

extern new_handler _ZSt15get_new_handlerv(void) __attribute__((weak));
extern void _ZSt17__throw_bad_allocv(void) __attribute__((weak, noreturn));

/* `retry` is hakmem's allocation for new (cxx.rs), asked again after each
 * new-handler call. */
void *hak_cxx_new_failed(size_t size, size_t align, int nothrow, void *(*retry)(size_t, size_t))
{
    for (;;) {
        new_handler h = _ZSt15get_new_handlerv ? _ZSt15get_new_handlerv() : NULL;
        if (h == NULL) {
            if (nothrow)
                return NULL;
            if (_ZSt17__throw_bad_allocv)
                _ZSt17__throw_bad_allocv();
            abort();
        }
        /* A handler that throws from a nothrow new ends the program, as
         * std::terminate would: hakmem cannot catch it in C. */
        h();
        void *p = retry(size, align);
        if (p != NULL)
            return p;
    }
}
