// The C side of the progress bridge: the library calls `deliver_progress` with the userdata it
// was given, which is a runtime/cgo.Handle (an integer), never a Go pointer.

#include <stdint.h>

#include "oci_cache.h"
#include "_cgo_export.h"

static void deliver_progress(void *userdata, const char *digest, uint64_t done,
                             uint64_t total) {
  ocicacheDeliverProgress((uintptr_t)userdata, (char *)digest, done, total);
}

oci_cache_result ocicache_set_progress(oci_cache_fetch_options *options,
                                       uintptr_t handle,
                                       oci_cache_error **error_out) {
  return oci_cache_fetch_options_set_progress(options, deliver_progress,
                                              (void *)handle, error_out);
}
