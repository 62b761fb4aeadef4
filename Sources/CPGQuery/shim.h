#ifndef CPGQUERY_SHIM_H
#define CPGQUERY_SHIM_H

// libpg_query's public API (PostgreSQL 15's parser outside the server) imports into Swift as it
// is. Debian's libpg-query-dev ships no pkg-config file: the header is /usr/include/pg_query.h and
// the module map links libpg_query.so by name.
#include <pg_query.h>

#endif
