package ocicache_test

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"

	ocicache "oci-cache/bindings/go"
)

func TestColdFetchDownloadsAndWarmSemverFetchSendsNoRequest(t *testing.T) {
	repository := repositoryFor(t)
	pushed := pushSample(t, repository)
	cache := openCache(t)
	ctx := context.Background()

	cold, err := cache.Fetch(ctx, pushed.reference("1.0.0"))
	if err != nil {
		t.Fatalf("cold fetch: %v", err)
	}
	if cold.Cache != ocicache.OutcomeMiss {
		t.Errorf("cold fetch served as %q, want %q", cold.Cache, ocicache.OutcomeMiss)
	}
	if cold.ManifestDigest != pushed.ManifestDigest {
		t.Errorf("manifest digest %s, want %s", cold.ManifestDigest, pushed.ManifestDigest)
	}
	if len(cold.Layers) != len(pushed.Layers) {
		t.Fatalf("%d layers, want %d: %+v", len(cold.Layers), len(pushed.Layers), cold.Layers)
	}
	for i, layer := range cold.Layers {
		if layer.Digest != pushed.Layers[i].Digest || layer.Size != pushed.Layers[i].Size {
			t.Errorf("layer %d is %s (%d bytes), want %s (%d bytes)", i, layer.Digest, layer.Size,
				pushed.Layers[i].Digest, pushed.Layers[i].Size)
		}
		if layer.Cache != ocicache.OutcomeMiss {
			t.Errorf("layer %d served as %q on a cold fetch", i, layer.Cache)
		}
	}
	assertSampleFiles(t, cold)

	before := requestsFor(t, repository)
	warm, err := cache.Fetch(ctx, pushed.reference("1.0.0"))
	if err != nil {
		t.Fatalf("warm fetch: %v", err)
	}
	if sent := requestsFor(t, repository)[len(before):]; len(sent) != 0 {
		t.Errorf("the warm fetch of a full version sent %d request(s): %v", len(sent), sent)
	}

	if warm.Cache != ocicache.OutcomeHit {
		t.Errorf("warm fetch served as %q, want %q", warm.Cache, ocicache.OutcomeHit)
	}
	for i, layer := range warm.Layers {
		if layer.Cache != ocicache.OutcomeHit {
			t.Errorf("layer %d served as %q on a warm fetch", i, layer.Cache)
		}
		if layer.Path != cold.Layers[i].Path {
			t.Errorf("layer %d moved from %s to %s", i, cold.Layers[i].Path, layer.Path)
		}
	}
	assertSampleFiles(t, warm)
}

func TestWarmMutableTagFetchAsksOnlyForTheManifest(t *testing.T) {
	repository := repositoryFor(t)
	pushed := pushSample(t, repository, "--tag", "latest")
	cache := openCache(t)
	ctx := context.Background()
	if _, err := cache.Fetch(ctx, pushed.reference("latest")); err != nil {
		t.Fatalf("cold fetch: %v", err)
	}

	before := requestsFor(t, repository)
	warm, err := cache.Fetch(ctx, pushed.reference("latest"))
	if err != nil {
		t.Fatalf("warm fetch: %v", err)
	}
	sent := requestsFor(t, repository)[len(before):]

	if warm.Cache != ocicache.OutcomeMutable {
		t.Errorf("warm fetch of latest served as %q, want %q", warm.Cache, ocicache.OutcomeMutable)
	}
	if len(sent) != 1 || filepath.Base(filepath.Dir(sent[0].Path)) != "manifests" {
		t.Errorf("warm fetch of latest sent %v, want one manifest request", sent)
	}
	for i, layer := range warm.Layers {
		if layer.Cache != ocicache.OutcomeHit {
			t.Errorf("layer %d served as %q, want it reused", i, layer.Cache)
		}
	}
}

func TestFetchPlatformChoosesTheIndexEntry(t *testing.T) {
	// With a large layer the host's image has three layers and the generic one two.
	pushed := pushSample(t, repositoryFor(t), "--large-mib", "1")
	cache := openCache(t)

	image, err := cache.Fetch(context.Background(), pushed.reference("1.0.0"),
		ocicache.WithFetchPlatform("generic/unknown"))
	if err != nil {
		t.Fatalf("fetch for generic/unknown: %v", err)
	}

	if image.Platform != "generic/unknown" {
		t.Errorf("platform %q, want generic/unknown", image.Platform)
	}
	if image.ManifestDigest == pushed.ManifestDigest || len(image.Layers) != 2 {
		t.Errorf("got manifest %s with %d layers, want the generic entry's two layers",
			image.ManifestDigest, len(image.Layers))
	}
	assertSampleFiles(t, image)
}

func TestManyGoroutinesFetchingOnOneCacheGetOneResult(t *testing.T) {
	pushed := pushSample(t, repositoryFor(t))
	cache := openCache(t)

	images := fetchConcurrently(t, pushed.reference("1.0.0"), []*ocicache.Cache{cache}, 16)

	assertSameImage(t, images)
	assertSampleFiles(t, images[0])
}

func TestManyCachesOnOneDirectoryGetOneResult(t *testing.T) {
	pushed := pushSample(t, repositoryFor(t))
	dir := t.TempDir()
	caches := make([]*ocicache.Cache, 4)
	for i := range caches {
		caches[i] = openCacheIn(t, dir)
	}

	images := fetchConcurrently(t, pushed.reference("1.0.0"), caches, 16)

	assertSameImage(t, images)
	assertSampleFiles(t, images[0])
}

// fetchConcurrently fetches reference from n goroutines at once, spread over caches.
func fetchConcurrently(
	t *testing.T, reference string, caches []*ocicache.Cache, n int,
) []*ocicache.Image {
	t.Helper()
	images := make([]*ocicache.Image, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			images[i], errs[i] = caches[i%len(caches)].Fetch(context.Background(), reference)
		}(i)
	}
	close(start)
	wg.Wait()

	for i, err := range errs {
		if err != nil {
			t.Fatalf("fetch %d of %d: %v", i, n, err)
		}
	}
	return images
}

// assertSameImage checks that every fetch saw the same manifest and the same layer
// directories; only how each was served may differ.
func assertSameImage(t *testing.T, images []*ocicache.Image) {
	t.Helper()
	type layerView struct{ Digest, MediaType, Path string }
	view := func(image *ocicache.Image) []layerView {
		var layers []layerView
		for _, l := range image.Layers {
			layers = append(layers, layerView{l.Digest, l.MediaType, l.Path})
		}
		return layers
	}

	first := images[0]
	for i, image := range images[1:] {
		if image.ManifestDigest != first.ManifestDigest || image.Reference != first.Reference ||
			!reflect.DeepEqual(view(image), view(first)) {
			t.Errorf("fetch %d got %+v, fetch 0 got %+v", i+1, image, first)
		}
	}
}

// assertSampleFiles checks the sample step's files on disk: step.yml and an executable
// run.sh in the zstd layer, bin/greet and its symlink bin/hello in the gzip one.
func assertSampleFiles(t *testing.T, image *ocicache.Image) {
	t.Helper()
	if len(image.Layers) < 2 {
		t.Fatalf("the sample has at least 2 layers, got %+v", image.Layers)
	}
	binLayer, stepLayer := image.Layers[0].Path, image.Layers[1].Path

	if _, err := os.Stat(filepath.Join(stepLayer, "step.yml")); err != nil {
		t.Errorf("step.yml: %v", err)
	}
	if info, err := os.Stat(filepath.Join(stepLayer, "run.sh")); err != nil {
		t.Errorf("run.sh: %v", err)
	} else if info.Mode().Perm()&0o111 == 0 {
		t.Errorf("run.sh has mode %v, want it executable", info.Mode())
	}
	target, err := os.Readlink(filepath.Join(binLayer, "bin", "hello"))
	if err != nil || target != "greet" {
		t.Errorf("bin/hello links to %q (%v), want greet", target, err)
	}
}
