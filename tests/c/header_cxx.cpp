// The public header compiles on its own as C++11 (run.sh adds -Werror).
#include "oci_cache.h"
