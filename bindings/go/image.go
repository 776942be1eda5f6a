package ocicache

// #include "oci_cache.h"
import "C"

import (
	"runtime"
	"sync"
)

// Outcome says how an image or a layer was served.
type Outcome string

// The outcomes of the C ABI's oci_cache_outcome.
const (
	// OutcomeHit: served from the cache (an image: with no request at all).
	OutcomeHit Outcome = "hit"
	// OutcomeMiss: downloaded now (an image: something had to be fetched).
	OutcomeMiss Outcome = "miss"
	// OutcomeMutable: an image under a mutable tag; one manifest request, cached layers reused.
	OutcomeMutable Outcome = "mutable"
	// OutcomeDisabled: caching is disabled; downloaded into a directory outside the cache.
	OutcomeDisabled Outcome = "disabled"
)

// Image is a fetched image: where each of its layers is on disk, and how it was served.
//
// An Image pins its layers: until Release, no prune (of this process or another, by
// Cache.Prune or a WithMaxSize budget) removes its layer directories or its MergedPath. Call
// Release when done with the files; an Image that is garbage collected unreleased is released
// by a finalizer, but only whenever the collector gets to it.
type Image struct {
	// Reference is the normalised reference (`registry/repository:tag`).
	Reference string
	// ManifestDigest is the digest of the manifest (for an index: of the chosen platform's).
	ManifestDigest string
	// Platform is the image's platform (`os/architecture[/variant]`): the chosen index entry's,
	// or for a plain manifest the one its image config names; "" when neither names one.
	Platform string
	// Cache says how the image was served.
	Cache Outcome
	// Layers are the image's layers, base first.
	Layers []Layer
	// MergedPath is the directory of the layers applied in order, whiteouts honoured, when
	// the fetch asked for it with WithMerged; "" otherwise. Its files are hard links to the
	// layers' read-only files.
	MergedPath string

	// pins holds the library's image, whose shared locks keep the layers from prunes; shared
	// by copies of this Image.
	pins *imagePins
}

// Release lets prunes remove the image's layers again, once no other Image uses them. The
// fields stay readable, but the directories they name may go. Calling it again, or from
// several goroutines at once, is harmless.
func (i *Image) Release() {
	if i.pins != nil {
		i.pins.release()
	}
}

// imagePins owns the library's image (and so its layers' pins) until release.
type imagePins struct {
	mu    sync.Mutex
	image *C.oci_cache_image
}

// newImage copies image into Go values and keeps image for its pins, freed by Release or a
// finalizer.
func newImage(image *C.oci_cache_image) *Image {
	copied := copyImage(image)

	copied.pins = &imagePins{image: image}
	runtime.SetFinalizer(copied.pins, (*imagePins).release)
	return copied
}

// release frees the library's image, once.
func (p *imagePins) release() {
	p.mu.Lock()
	defer p.mu.Unlock()

	if p.image == nil {
		return
	}
	C.oci_cache_image_free(p.image)
	p.image = nil
	runtime.SetFinalizer(p, nil)
}

// Layer is one extracted layer of an Image.
type Layer struct {
	// Digest is the blob's digest.
	Digest string
	// MediaType is the blob's media type.
	MediaType string
	// Size is the blob's size in bytes.
	Size int64
	// Path is the absolute path of the directory the layer is extracted in.
	Path string
	// Cache says how the layer was served.
	Cache Outcome
}

// copyImage copies everything of image into Go values.
func copyImage(image *C.oci_cache_image) *Image {
	count := int(C.oci_cache_image_layer_count(image))
	copied := &Image{
		Reference:      C.GoString(C.oci_cache_image_reference(image)),
		ManifestDigest: C.GoString(C.oci_cache_image_manifest_digest(image)),
		Platform:       C.GoString(C.oci_cache_image_platform(image)),
		Cache:          outcome(C.oci_cache_image_cache_outcome(image)),
		Layers:         make([]Layer, count),
		MergedPath:     C.GoString(C.oci_cache_image_merged_path(image)),
	}

	for i := range copied.Layers {
		index := C.size_t(i)
		copied.Layers[i] = Layer{
			Digest:    C.GoString(C.oci_cache_image_layer_digest(image, index)),
			MediaType: C.GoString(C.oci_cache_image_layer_media_type(image, index)),
			Size:      int64(C.oci_cache_image_layer_size(image, index)),
			Path:      C.GoString(C.oci_cache_image_layer_path(image, index)),
			Cache:     outcome(C.oci_cache_image_layer_cache_outcome(image, index)),
		}
	}
	return copied
}

// outcome names an oci_cache_outcome; a value this package does not know is "unknown".
func outcome(value C.uint32_t) Outcome {
	switch value {
	case C.OCI_CACHE_OUTCOME_HIT:
		return OutcomeHit
	case C.OCI_CACHE_OUTCOME_MISS:
		return OutcomeMiss
	case C.OCI_CACHE_OUTCOME_MUTABLE:
		return OutcomeMutable
	case C.OCI_CACHE_OUTCOME_DISABLED:
		return OutcomeDisabled
	default:
		return "unknown"
	}
}
