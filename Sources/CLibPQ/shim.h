#ifndef CLIBPQ_SHIM_H
#define CLIBPQ_SHIM_H

// libpq's public API imports into Swift as it is; pkg-config (libpq.pc) supplies the include path.
#include <libpq-fe.h>

#endif
