package ocicache

// #include "oci_cache.h"
//
// oci_cache_result ocicache_set_progress(oci_cache_fetch_options *options, uintptr_t handle,
//                                        oci_cache_error **error_out);
import "C"

import "runtime/cgo"

// Progress is how far one layer of a fetch is.
type Progress struct {
	// Digest is the layer's blob digest.
	Digest string
	// Done is how many bytes of the blob are there: all of them for a cached layer.
	Done uint64
	// Total is the blob's size in bytes.
	Total uint64
}

// WithProgress calls report with the progress of each layer of this fetch: once for a layer
// that is cached (Done == Total), and as a layer downloads (from 0, at most once per MiB, and
// at its end). It runs on the library's threads, for several layers at once, so it must be
// safe for concurrent calls, return quickly, not panic, and never call a method of a Cache:
// hand the values to a goroutine of your own for anything slow. It is not called after Fetch
// returned.
func WithProgress(report func(Progress)) FetchOption {
	return func(c *fetchConfig) { c.progress = report }
}

// progressCallback gives the library report, identified by a new cgo.Handle; the caller
// deletes the handle once the fetches with options have returned.
func progressCallback(
	options *C.oci_cache_fetch_options, report func(Progress),
) (cgo.Handle, error) {
	handle := cgo.NewHandle(report)

	var cerr *C.oci_cache_error
	result := C.ocicache_set_progress(options, C.uintptr_t(handle), &cerr)
	if err := takeError(result, cerr); err != nil {
		handle.Delete()
		return 0, err
	}
	return handle, nil
}

// ocicacheDeliverProgress is called by the C shim on the library's threads for each report.
//
//export ocicacheDeliverProgress
func ocicacheDeliverProgress(handle C.uintptr_t, digest *C.char, done, total C.uint64_t) {
	report, ok := handleValue[func(Progress)](uintptr(handle))
	if !ok {
		return
	}
	report(Progress{Digest: C.GoString(digest), Done: uint64(done), Total: uint64(total)})
}
