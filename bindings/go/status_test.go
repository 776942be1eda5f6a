package ocicache_test

import (
	"context"
	"errors"
	"testing"

	ocicache "oci-cache/bindings/go"
)

func TestStatusReportsWhatTheCacheHolds(t *testing.T) {
	pushed := pushSample(t, repositoryFor(t))
	dir := t.TempDir()
	cache := openCacheIn(t, dir)
	ctx := context.Background()
	reference := pushed.reference("1.0.0")

	before, err := cache.Status(ctx, reference)
	if err != nil {
		t.Fatal(err)
	}
	if before.Cached || before.ManifestDigest != "" || len(before.Layers) != 0 {
		t.Errorf("status before any fetch: %+v", before)
	}

	image, err := cache.Fetch(ctx, reference)
	if err != nil {
		t.Fatal(err)
	}
	after, err := cache.Status(ctx, reference)
	if err != nil {
		t.Fatal(err)
	}
	if !after.Cached || after.ManifestDigest != image.ManifestDigest ||
		len(after.Layers) != len(image.Layers) {
		t.Fatalf("status after the fetch: %+v, image %+v", after, image)
	}
	for i, layer := range after.Layers {
		fetched := image.Layers[i]
		if !layer.Present || layer.Digest != fetched.Digest || layer.Path != fetched.Path {
			t.Errorf("layer %d: status %+v, fetched %+v", i, layer, image.Layers[i])
		}
	}

	whole, err := cache.CacheStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if whole.Dir == "" || whole.Disabled || whole.SizeBytes <= 0 ||
		whole.Layers != len(image.Layers) || whole.Images != 1 {
		t.Errorf("cache status %+v after fetching one image of %d layers into %s",
			whole, len(image.Layers), dir)
	}
}

func TestStatusOfAnEmptyReferenceIsAnInvalidArgument(t *testing.T) {
	cache := openCache(t)

	_, err := cache.Status(context.Background(), "")

	if !errors.Is(err, ocicache.ErrInvalidArgument) {
		t.Fatalf("got %v, want ErrInvalidArgument", err)
	}
}
