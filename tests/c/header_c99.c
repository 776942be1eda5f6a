/* The public header compiles on its own as C99 (run.sh adds -Werror). */
#include "oci_cache.h"
