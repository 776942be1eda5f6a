package ocicache

// #include "oci_cache.h"
import "C"

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

// copyImage copies everything of image into Go values; the caller still frees image.
func copyImage(image *C.oci_cache_image) *Image {
	count := int(C.oci_cache_image_layer_count(image))
	copied := &Image{
		Reference:      C.GoString(C.oci_cache_image_reference(image)),
		ManifestDigest: C.GoString(C.oci_cache_image_manifest_digest(image)),
		Platform:       C.GoString(C.oci_cache_image_platform(image)),
		Cache:          outcome(C.oci_cache_image_cache_outcome(image)),
		Layers:         make([]Layer, count),
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
