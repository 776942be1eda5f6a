package ocicache

// #include "oci_cache.h"
import "C"

import (
	"context"
	"runtime"
	"time"
)

// PruneOptions say which layers Prune removes; at least one must ask for something. A layer
// that a running fetch or an unreleased Image (of any process) uses is never removed.
type PruneOptions struct {
	// MaxSize removes the least recently used layers until the layers fit in this many bytes.
	// Zero is no size limit.
	MaxSize uint64
	// UnusedFor removes the layers not used for longer than this, rounded up to whole
	// seconds. Zero is no age limit. A layer's last use is recorded at most hourly.
	UnusedFor time.Duration
	// All removes every layer.
	All bool
}

// PruneReport is what a Prune did.
type PruneReport struct {
	// RemovedLayers is the number of layers removed.
	RemovedLayers int `json:"removed_layers"`
	// RemovedBytes is the size of the files of the removed layers.
	RemovedBytes uint64 `json:"removed_bytes"`
	// RemovedImages is the number of image records (and their merged directories) removed
	// because a layer of theirs was.
	RemovedImages int `json:"removed_images"`
	// InUse is the number of layers that were to go but stayed: a fetch or an Image used them.
	InUse int `json:"in_use"`
	// SizeBefore is the size of the cache's layers before the prune, in bytes.
	SizeBefore uint64 `json:"size_before"`
	// SizeAfter is the size of the cache's layers after the prune, in bytes.
	SizeAfter uint64 `json:"size_after"`
}

// Prune removes cached layers as opts say, least recently used first, with the image records
// and merged directories that needed them, and reports what it did. Options that ask for
// nothing are an ErrInvalidArgument. It blocks until done: ctx is only checked before it
// starts.
func (c *Cache) Prune(ctx context.Context, opts PruneOptions) (PruneReport, error) {
	var report PruneReport
	if err := notStarted(ctx, "prune"); err != nil {
		return report, err
	}
	if opts.UnusedFor < 0 {
		return report, invalidArgument("PruneOptions.UnusedFor %v is negative", opts.UnusedFor)
	}
	// Rounded up, so that a layer is never removed younger than asked, and a fraction of a
	// second is not taken for no limit.
	unusedFor := uint64(opts.UnusedFor / time.Second)
	if opts.UnusedFor%time.Second != 0 {
		unusedFor++
	}

	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.handle == nil {
		return report, closedError()
	}

	var creport *C.oci_cache_report
	var cerr *C.oci_cache_error
	result := C.oci_cache_prune(c.handle, C.uint64_t(opts.MaxSize), C.uint64_t(unusedFor),
		C.bool(opts.All), &creport, &cerr)
	runtime.KeepAlive(c)
	if err := takeError(result, cerr); err != nil {
		return report, err
	}
	err := decodeReport(creport, "prune", &report)
	return report, err
}
