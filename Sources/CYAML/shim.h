#ifndef CYAML_SHIM_H
#define CYAML_SHIM_H

// libyaml's public API imports into Swift as it is; pkg-config (yaml-0.1.pc) supplies the include path.
#include <yaml.h>

#endif
