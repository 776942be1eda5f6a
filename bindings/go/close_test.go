package ocicache_test

import (
	"context"
	"errors"
	"testing"

	ocicache "oci-cache/bindings/go"
)

func TestCloseTwiceReturnsNil(t *testing.T) {
	cache, err := ocicache.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}

	if err := cache.Close(); err != nil {
		t.Errorf("first Close: %v", err)
	}
	if err := cache.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestCallsAfterCloseFailWithErrClosed(t *testing.T) {
	cache := openCache(t)
	if err := cache.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	reference := registry.host + "/go/after-close:1.0.0"

	_, fetchErr := cache.Fetch(ctx, reference)
	_, statusErr := cache.Status(ctx, reference)
	_, cacheStatusErr := cache.CacheStatus(ctx)

	errs := map[string]error{"Fetch": fetchErr, "Status": statusErr, "CacheStatus": cacheStatusErr}
	for name, err := range errs {
		if !errors.Is(err, ocicache.ErrClosed) {
			t.Errorf("%s after Close: got %v, want ErrClosed", name, err)
		}
	}
}
