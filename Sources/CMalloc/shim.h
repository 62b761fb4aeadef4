#ifndef CMALLOC_SHIM_H
#define CMALLOC_SHIM_H

/// glibc's allocator tuning (`mallopt`), which Swift's Glibc module does not export. Part of
/// libc: nothing to link. Elsewhere (macOS, musl) the module is empty.
#if defined(__linux__) && __has_include(<malloc.h>)
#include <malloc.h>
#endif

#endif
