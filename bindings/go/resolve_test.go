package ocicache_test

import (
	"context"
	"errors"
	"testing"

	ocicache "oci-cache/bindings/go"
)

func TestResolvePinsATagToItsCurrentDigestAndTheFetchKeepsTheTag(t *testing.T) {
	pushed := pushSample(t, repositoryFor(t), "--tag", "1.0.0", "--tag", "latest")
	cache := openCache(t)
	ctx := context.Background()

	resolved, err := cache.Resolve(ctx, pushed.reference("latest"))
	if err != nil {
		t.Fatal(err)
	}
	pinned := pushed.reference("latest") + "@" + pushed.IndexDigest
	if resolved.Digest != pushed.IndexDigest || resolved.Pinned != pinned {
		t.Fatalf("resolved %+v, want digest %s and pinned %s", resolved, pushed.IndexDigest, pinned)
	}
	image, err := cache.Fetch(ctx, resolved.Pinned)
	if err != nil {
		t.Fatal(err)
	}
	defer image.Release()
	if image.Reference != pinned || image.ManifestDigest != pushed.ManifestDigest {
		t.Fatalf("fetched %s (%s), want %s (%s)", image.Reference, image.ManifestDigest, pinned,
			pushed.ManifestDigest)
	}
}

func TestResolveOfAnUnknownTagIsErrNotFound(t *testing.T) {
	pushed := pushSample(t, repositoryFor(t))
	cache := openCache(t)

	_, err := cache.Resolve(context.Background(), pushed.reference("9.9.9"))

	if !errors.Is(err, ocicache.ErrNotFound) {
		t.Fatalf("got %v, want ErrNotFound", err)
	}
}
