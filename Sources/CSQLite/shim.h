#ifndef CSQLITE_SHIM_H
#define CSQLITE_SHIM_H

// SQLite's public API (Debian's libsqlite3-dev) imports into Swift as it is; pkg-config
// (sqlite3.pc) supplies the include path.
#include <sqlite3.h>

// SQLITE_TRANSIENT is a macro casting -1 to a function pointer, which Swift cannot import: bound
// text and blobs are copied by SQLite before the bind call returns, so no Swift buffer has to
// outlive it.
static inline sqlite3_destructor_type csqlite_transient(void) { return SQLITE_TRANSIENT; }

#endif
