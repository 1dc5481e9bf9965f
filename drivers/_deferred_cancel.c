/* Preloaded into the SANE worker (LD_PRELOAD, see drivers/sane_driver.py); not a Python module.
 *
 * Why: back ends built on sanei_thread (the `test` back end among them) run a reader thread that sets
 * PTHREAD_CANCEL_ASYNCHRONOUS, and end every page with pthread_cancel + pthread_join.  An asynchronous cancel
 * may land anywhere, e.g. inside free() while the thread's malloc arena is locked; the thread then dies
 * holding that lock, blocks on it again while freeing its tcache on the way out, and the join in sane_read
 * waits for ever.  Caught under gdb: the reader "(Exiting)" in tcache_thread_shutdown -> _int_free ->
 * __lll_lock_wait_private, the main thread in sanei_thread_waitpid -> pthread_join, inside sane_test_read.
 * POSIX allows only async-cancel-safe functions under asynchronous cancellation, and malloc/free are not.
 *
 * What: every request for asynchronous cancellation is kept deferred.  The cancel then takes effect at the
 * next cancellation point (write(), read(), usleep(), poll() ...), which is where a reader thread blocks;
 * a reader that already wrote its last bytes simply finishes and is joined.  A back end whose reader spins
 * without ever reaching a cancellation point would make sane_cancel wait; the parent's cancel grace and
 * page timeout still kill such a worker, as for any hung back end.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>

typedef int (*setcanceltype_fn)(int, int *);

int pthread_setcanceltype(int type, int *oldtype)
{
    static setcanceltype_fn real;
    if (!real) {
        real = (setcanceltype_fn)dlsym(RTLD_NEXT, "pthread_setcanceltype");
        if (!real)
            return ENOSYS;
    }
    if (type == PTHREAD_CANCEL_ASYNCHRONOUS)
        type = PTHREAD_CANCEL_DEFERRED;
    return real(type, oldtype);
}
