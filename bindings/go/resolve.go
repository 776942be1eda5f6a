package ocicache

// #include <stdlib.h>
// #include "oci_cache.h"
import "C"

import (
	"context"
	"runtime"
	"unsafe"
)

// Resolved is a reference and the digest it points at now: what a lock file records.
type Resolved struct {
	// Reference is the reference as given.
	Reference string `json:"reference"`
	// Pinned is `registry/repository[:tag]@digest`, normalised: a line for a lock file, and a
	// reference that Fetch serves by digest while keeping the tag in its result.
	Pinned string `json:"pinned"`
	// Digest is the digest of the manifest or index the reference points at.
	Digest string `json:"digest"`
}

// Resolve asks the registry which digest reference points at now (one HEAD request; none for a
// reference pinned by digest). Nothing is downloaded or cached.
func (c *Cache) Resolve(ctx context.Context, reference string) (Resolved, error) {
	var resolved Resolved
	if err := notStarted(ctx, "resolve of "+reference); err != nil {
		return resolved, err
	}
	creference, err := cString("reference", reference)
	if err != nil {
		return resolved, err
	}
	defer C.free(unsafe.Pointer(creference))

	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.handle == nil {
		return resolved, closedError()
	}

	var creport *C.oci_cache_report
	var cerr *C.oci_cache_error
	result := C.oci_cache_resolve(c.handle, creference, &creport, &cerr)
	runtime.KeepAlive(c)
	if err := takeError(result, cerr); err != nil {
		return resolved, err
	}
	err = decodeReport(creport, "resolve", &resolved)
	return resolved, err
}
