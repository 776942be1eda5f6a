// The C side of the log bridge: the library calls `deliver` with the userdata it was given,
// which is a runtime/cgo.Handle (an integer), never a Go pointer.

#include <stdint.h>

#include "oci_cache.h"
#include "_cgo_export.h"

static void deliver(void *userdata, uint32_t level, const char *target,
                    const char *message, const char *fields) {
  ocicacheDeliverLog((uintptr_t)userdata, level, (char *)target,
                     (char *)message, (char *)fields);
}

oci_cache_result ocicache_set_log_callback(oci_cache_options *options,
                                           uintptr_t handle, uint32_t level,
                                           oci_cache_error **error_out) {
  return oci_cache_options_set_log_callback(options, deliver, (void *)handle,
                                            level, error_out);
}
