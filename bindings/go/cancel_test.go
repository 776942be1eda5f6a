package ocicache_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"sync/atomic"
	"testing"
	"time"

	ocicache "oci-cache/bindings/go"
)

func TestCancellingDuringALargeLayerReturnsPromptlyAndTheNextFetchCompletes(t *testing.T) {
	pushed := pushSample(t, repositoryFor(t), "--large-mib", "256")
	large := pushed.Layers[2].Digest
	logs := &recordingHandler{}
	cache := openCache(t, ocicache.WithLogger(slog.New(logs)))
	reference := pushed.reference("1.0.0")

	// Cancel as soon as the large layer's download begins (its "layer cache" event), so that
	// the cancel lands mid-download however fast or slow this machine is.
	ctx, cancel := context.WithCancel(context.Background())
	var cancelledAt atomic.Value
	go func() {
		logs.waitFor("layer cache", "digest", large, time.Minute)
		cancelledAt.Store(time.Now())
		cancel()
	}()
	started := time.Now()
	_, err := cache.Fetch(ctx, reference)
	returned := time.Now()

	if err == nil {
		t.Fatalf("the fetch of a 256 MiB layer completed before the cancel")
	}
	if !errors.Is(err, context.Canceled) || !errors.Is(err, ocicache.ErrCancelled) {
		t.Fatalf("got %v, want an error matching context.Canceled and ErrCancelled", err)
	}
	took := returned.Sub(cancelledAt.Load().(time.Time))
	if took > time.Second {
		t.Errorf("the fetch returned %v after the cancel", took)
	}
	into := cancelledAt.Load().(time.Time).Sub(started)
	t.Logf("cancelled %v into the fetch; returned %v later: %v", into, took, err)
	if len(logs.find("layer cache", "digest", large)) == 0 {
		t.Errorf("the cancel came before the large layer's download started")
	}
	if extracted := logs.find("layer extracted", "digest", large); len(extracted) != 0 {
		t.Errorf("the large layer was complete before the cancel: %v", extracted)
	}

	started = time.Now()
	image, err := cache.Fetch(context.Background(), reference)
	if err != nil {
		t.Fatalf("the fetch after the cancel: %v", err)
	}
	t.Logf("the complete fetch after the cancel took %v", time.Since(started))
	if len(image.Layers) != 3 || image.Layers[2].Digest != large {
		t.Fatalf("the fetch after the cancel got layers %+v", image.Layers)
	}
	entries, err := os.ReadDir(image.Layers[2].Path)
	if err != nil || len(entries) == 0 {
		t.Errorf("the large layer's directory %s: %d entries (%v)",
			image.Layers[2].Path, len(entries), err)
	}
	status, err := cache.Status(context.Background(), reference)
	if err != nil || !status.Cached {
		t.Errorf("status after the complete fetch: %+v (%v), want it cached", status, err)
	}
	assertSampleFiles(t, image)
}

func TestFetchWithAnEndedContextIsCancelledAtOnce(t *testing.T) {
	cache := openCache(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	_, err := cache.Fetch(ctx, registry.host+"/go/never/fetched:1.0.0")

	if !errors.Is(err, context.Canceled) || !errors.Is(err, ocicache.ErrCancelled) {
		t.Fatalf("got %v, want an error matching context.Canceled and ErrCancelled", err)
	}
}
