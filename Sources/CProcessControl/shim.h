#ifndef CPROCESSCONTROL_SHIM_H
#define CPROCESSCONTROL_SHIM_H

/// Linux's prctl(2) is variadic, which Swift cannot call: this makes the guard of `migrate` the
/// subreaper of its child's descendants. Part of libc: nothing to link. Elsewhere it fails
/// (returns -1).
#if defined(__linux__)
#include <sys/prctl.h>
static inline int pg_lock_exporter_set_child_subreaper(void) {
    return prctl(PR_SET_CHILD_SUBREAPER, 1UL, 0UL, 0UL, 0UL);
}
#else
static inline int pg_lock_exporter_set_child_subreaper(void) { return -1; }
#endif

#endif
