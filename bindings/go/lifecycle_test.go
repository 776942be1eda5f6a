package ocicache_test

// The lifecycle of cached images: served offline, merged into one directory, pruned (never
// while an Image pins them), counted, and reported on as they download.

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	ocicache "oci-cache/bindings/go"
)

func TestOfflineCacheServesCachedTagsWithNoRequest(t *testing.T) {
	repository := repositoryFor(t)
	pushed := pushSample(t, repository, "--tag", "1.0.0", "--tag", "latest")
	references := []string{pushed.reference("1.0.0"), pushed.reference("latest")}
	dir := t.TempDir()
	online := fetchAll(t, openCacheIn(t, dir), references...)
	offline := openCacheIn(t, dir, ocicache.WithOffline())

	before := requestsFor(t, repository)
	served := fetchAll(t, offline, references...)

	if sent := requestsFor(t, repository)[len(before):]; len(sent) != 0 {
		t.Errorf("the offline fetches sent %d request(s): %v", len(sent), sent)
	}
	for i, image := range served {
		if image.ManifestDigest != online[i].ManifestDigest {
			t.Errorf("offline %s is %s, online it was %s",
				image.Reference, image.ManifestDigest, online[i].ManifestDigest)
		}
		assertSampleFiles(t, image)
	}
}

func TestOfflineFetchOfAnUncachedTagFailsWithNotCached(t *testing.T) {
	repository := repositoryFor(t)
	pushed := pushSample(t, repository, "--tag", "1.0.0", "--tag", "2.0.0")
	dir := t.TempDir()
	fetchAll(t, openCacheIn(t, dir), pushed.reference("1.0.0"))
	offline := openCacheIn(t, dir, ocicache.WithOffline())

	before := requestsFor(t, repository)
	_, err := offline.Fetch(context.Background(), pushed.reference("2.0.0"))

	if !errors.Is(err, ocicache.ErrNotCached) {
		t.Errorf("offline fetch of a tag never fetched: got %v, want ErrNotCached", err)
	}
	if sent := requestsFor(t, repository)[len(before):]; len(sent) != 0 {
		t.Errorf("the offline fetch sent %d request(s): %v", len(sent), sent)
	}
}

func TestMergedDirectoryHoldsTheImageFilesReadOnly(t *testing.T) {
	pushed := pushSample(t, repositoryFor(t))
	cache := openCache(t)

	image, err := cache.Fetch(context.Background(), pushed.reference("1.0.0"),
		ocicache.WithMerged())
	if err != nil {
		t.Fatal(err)
	}
	defer image.Release()

	if image.MergedPath == "" {
		t.Fatalf("no merged path with WithMerged: %+v", image)
	}
	modes := map[string]os.FileMode{"step.yml": 0o444, "run.sh": 0o555, "bin/greet": 0o555}
	for name, want := range modes {
		info, err := os.Stat(filepath.Join(image.MergedPath, name))
		if err != nil {
			t.Errorf("%s of the merged directory: %v", name, err)
		} else if info.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", name, info.Mode().Perm(), want)
		}
	}
	target, err := os.Readlink(filepath.Join(image.MergedPath, "bin", "hello"))
	if err != nil || target != "greet" {
		t.Errorf("bin/hello of the merged directory links to %q (%v), want greet", target, err)
	}
}

func TestFetchWithoutWithMergedHasNoMergedPath(t *testing.T) {
	pushed := pushSample(t, repositoryFor(t))
	cache := openCache(t)

	image := fetchAll(t, cache, pushed.reference("1.0.0"))[0]

	if image.MergedPath != "" {
		t.Errorf("merged path %q without WithMerged", image.MergedPath)
	}
}

func TestPruneToASizeRemovesTheLeastRecentlyUsedImage(t *testing.T) {
	first, second := pushTwoSamples(t)
	dir := t.TempDir()
	cache := openCacheIn(t, dir)
	kept, stale := fetchAndRelease(t, cache, first, second)
	// Used last by the fetches, but long ago by its use records.
	unusedSince(t, dir, stale, 30*24*time.Hour)
	staleSize, budget := layersSize(t, stale), layersSize(t, kept)

	report, err := cache.Prune(context.Background(), ocicache.PruneOptions{MaxSize: budget})
	if err != nil {
		t.Fatal(err)
	}

	want := ocicache.PruneReport{
		RemovedLayers: len(stale.Layers),
		RemovedBytes:  staleSize,
		RemovedImages: 1,
		SizeBefore:    staleSize + budget,
		SizeAfter:     budget,
	}
	if report != want {
		t.Errorf("prune to %d bytes: got %+v, want %+v", budget, report, want)
	}
	assertLayersGone(t, stale)
	assertSampleFiles(t, kept)
}

func TestPruneUnusedForRemovesOnlyLayersUnusedThatLong(t *testing.T) {
	first, second := pushTwoSamples(t)
	dir := t.TempDir()
	cache := openCacheIn(t, dir)
	kept, stale := fetchAndRelease(t, cache, first, second)
	unusedSince(t, dir, stale, 3*time.Hour)

	report, err := cache.Prune(context.Background(), ocicache.PruneOptions{UnusedFor: time.Hour})
	if err != nil {
		t.Fatal(err)
	}

	if report.RemovedLayers != len(stale.Layers) || report.RemovedImages != 1 {
		t.Errorf("prune of layers unused for an hour: %+v, want the stale image's %d layers",
			report, len(stale.Layers))
	}
	assertLayersGone(t, stale)
	assertSampleFiles(t, kept)
}

func TestPruneKeepsTheLayersOfAnImageUntilItIsReleased(t *testing.T) {
	pushed := pushSample(t, repositoryFor(t))
	cache := openCache(t)
	image := fetchAll(t, cache, pushed.reference("1.0.0"))[0]
	ctx := context.Background()

	pinned, err := cache.Prune(ctx, ocicache.PruneOptions{All: true})
	if err != nil {
		t.Fatal(err)
	}
	if pinned.RemovedLayers != 0 || pinned.InUse != len(image.Layers) {
		t.Errorf("prune of all with the image unreleased: %+v, want its %d layers in use",
			pinned, len(image.Layers))
	}
	assertSampleFiles(t, image)

	releaseFromManyGoroutines(image, 4)
	released, err := cache.Prune(ctx, ocicache.PruneOptions{All: true})
	if err != nil {
		t.Fatal(err)
	}
	if released.RemovedLayers != len(image.Layers) || released.InUse != 0 {
		t.Errorf("prune of all after Release: %+v, want its %d layers removed",
			released, len(image.Layers))
	}
	assertLayersGone(t, image)
}

func TestAnImageCollectedUnreleasedIsReleasedByItsFinalizer(t *testing.T) {
	pushed := pushSample(t, repositoryFor(t))
	cache := openCache(t)
	// Only the layers outlive the Image.
	layers := fetchAll(t, cache, pushed.reference("1.0.0"))[0].Layers

	var report ocicache.PruneReport
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		runtime.GC()
		var err error
		report, err = cache.Prune(context.Background(), ocicache.PruneOptions{All: true})
		if err != nil {
			t.Fatal(err)
		}
		if report.RemovedLayers > 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}

	if report.RemovedLayers != len(layers) {
		t.Errorf("prune of all after the image was collected: %+v, want its %d layers removed",
			report, len(layers))
	}
	assertLayersGone(t, &ocicache.Image{Layers: layers})
}

func TestPruneThatAsksForNothingIsAnInvalidArgument(t *testing.T) {
	cache := openCache(t)

	_, err := cache.Prune(context.Background(), ocicache.PruneOptions{})

	if !errors.Is(err, ocicache.ErrInvalidArgument) {
		t.Fatalf("got %v, want ErrInvalidArgument", err)
	}
}

func TestMaxSizePrunesReleasedLayersAfterADownloadButNotTheFetchedImage(t *testing.T) {
	first, second := pushTwoSamples(t)
	dir := t.TempDir()
	released := fetchAll(t, openCacheIn(t, dir), first)[0]
	released.Release()
	// A budget no image fits in: everything goes but what the fetch itself pins.
	budgeted := openCacheIn(t, dir, ocicache.WithMaxSize(1))

	image := fetchAll(t, budgeted, second)[0]

	assertLayersGone(t, released)
	assertSampleFiles(t, image)
}

func TestSessionCountersCountAMissAndAHit(t *testing.T) {
	pushed := pushSample(t, repositoryFor(t))
	cache := openCache(t)
	reference := pushed.reference("1.0.0")

	fetchAll(t, cache, reference, reference)

	layers, bytes := sampleLayers(pushed)
	want := ocicache.Counters{Hits: layers, Misses: layers, BytesDownloaded: bytes, BytesSaved: bytes}
	status := cacheStatus(t, cache)
	if status.Session != want || status.Total != want {
		t.Errorf("after a miss and a hit: session %+v, total %+v; want both %+v",
			status.Session, status.Total, want)
	}
}

func TestTotalCountersIncludeAClosedCache(t *testing.T) {
	pushed := pushSample(t, repositoryFor(t))
	dir := t.TempDir()
	reference := pushed.reference("1.0.0")
	earlier := openCacheIn(t, dir)
	fetchAll(t, earlier, reference, reference)
	if err := earlier.Close(); err != nil {
		t.Fatal(err)
	}
	later := openCacheIn(t, dir)

	fetchAll(t, later, reference)

	layers, bytes := sampleLayers(pushed)
	status := cacheStatus(t, later)
	session := ocicache.Counters{Hits: layers, BytesSaved: bytes}
	total := ocicache.Counters{
		Hits: 2 * layers, Misses: layers, BytesDownloaded: bytes, BytesSaved: 2 * bytes,
	}
	if status.Session != session || status.Total != total {
		t.Errorf("the later cache: session %+v, total %+v; want %+v and %+v",
			status.Session, status.Total, session, total)
	}
}

func TestProgressOfADownloadRisesToEachLayersTotal(t *testing.T) {
	pushed := pushSample(t, repositoryFor(t), "--large-mib", "8")
	cache := openCache(t)
	var reports progressLog

	image, err := cache.Fetch(context.Background(), pushed.reference("1.0.0"),
		ocicache.WithProgress(reports.add))
	if err != nil {
		t.Fatal(err)
	}
	defer image.Release()

	for _, layer := range image.Layers {
		dones := reports.of(t, layer, uint64(layer.Size))
		for i := 1; i < len(dones); i++ {
			if dones[i] <= dones[i-1] {
				t.Errorf("layer %s: done went from %d to %d", layer.Digest, dones[i-1], dones[i])
			}
		}
		if len(dones) == 0 || dones[len(dones)-1] != uint64(layer.Size) {
			t.Errorf("layer %s of %d bytes: done %v, want it to end at the total",
				layer.Digest, layer.Size, dones)
		}
	}
	large := image.Layers[2]
	if dones := reports.of(t, large, uint64(large.Size)); len(dones) < 4 {
		t.Errorf("the 8 MiB layer reported done %v, want a report per MiB or so", dones)
	}
}

func TestProgressOfACachedFetchReportsEachLayerComplete(t *testing.T) {
	pushed := pushSample(t, repositoryFor(t))
	cache := openCache(t)
	reference := pushed.reference("1.0.0")
	fetchAll(t, cache, reference)
	var reports progressLog

	image, err := cache.Fetch(context.Background(), reference, ocicache.WithProgress(reports.add))
	if err != nil {
		t.Fatal(err)
	}
	defer image.Release()

	for _, layer := range image.Layers {
		total := uint64(layer.Size)
		if dones := reports.of(t, layer, total); len(dones) != 1 || dones[0] != total {
			t.Errorf("cached layer %s of %d bytes reported done %v, want once, complete",
				layer.Digest, total, dones)
		}
	}
	if all := reports.snapshot(); len(all) != len(image.Layers) {
		t.Errorf("%d reports for %d layers: %+v", len(all), len(image.Layers), all)
	}
}

// progressLog records progress reports, which arrive on several library threads at once.
type progressLog struct {
	mu  sync.Mutex
	all []ocicache.Progress
}

func (l *progressLog) add(p ocicache.Progress) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all = append(l.all, p)
}

// snapshot returns the reports so far.
func (l *progressLog) snapshot() []ocicache.Progress {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]ocicache.Progress(nil), l.all...)
}

// of returns the Done values reported for layer in order, checking that each report gave
// total as the Total.
func (l *progressLog) of(t *testing.T, layer ocicache.Layer, total uint64) []uint64 {
	t.Helper()
	var dones []uint64
	for _, p := range l.snapshot() {
		if p.Digest != layer.Digest {
			continue
		}
		if p.Total != total {
			t.Errorf("layer %s: report %+v, want a total of %d", layer.Digest, p, total)
		}
		dones = append(dones, p.Done)
	}
	return dones
}

// pushTwoSamples pushes two sample images with no layer in common to the test's repository
// and returns their references, 1.0.0 and 2.0.0.
func pushTwoSamples(t *testing.T) (first, second string) {
	t.Helper()
	repository := repositoryFor(t)
	one := pushSample(t, repository, "--tag", "1.0.0", "--message", "first")
	two := pushSample(t, repository, "--tag", "2.0.0", "--message", "second")
	return one.reference("1.0.0"), two.reference("2.0.0")
}

// fetchAndRelease fetches first, then second, and releases both images, so that prunes may
// take their layers.
func fetchAndRelease(
	t *testing.T, cache *ocicache.Cache, first, second string,
) (*ocicache.Image, *ocicache.Image) {
	t.Helper()
	images := fetchAll(t, cache, first, second)
	for _, image := range images {
		image.Release()
	}
	return images[0], images[1]
}

// fetchAll fetches each reference in turn and fails the test on an error.
func fetchAll(t *testing.T, cache *ocicache.Cache, references ...string) []*ocicache.Image {
	t.Helper()
	images := make([]*ocicache.Image, len(references))
	for i, reference := range references {
		image, err := cache.Fetch(context.Background(), reference)
		if err != nil {
			t.Fatalf("fetching %s: %v", reference, err)
		}
		images[i] = image
	}
	return images
}

// unusedSince records the last use of image's layers in the cache at dir as age ago.
func unusedSince(t *testing.T, dir string, image *ocicache.Image, age time.Duration) {
	t.Helper()
	then := time.Now().Add(-age)
	for _, layer := range image.Layers {
		hex := strings.TrimPrefix(layer.Digest, "sha256:")
		use := filepath.Join(dir, "uses", "sha256", hex)
		if err := os.Chtimes(use, then, then); err != nil {
			t.Fatalf("dating the last use of layer %s: %v", layer.Digest, err)
		}
	}
}

// layersSize is the size of the files of image's layer directories, as prunes count it.
func layersSize(t *testing.T, image *ocicache.Image) uint64 {
	t.Helper()
	var size uint64
	for _, layer := range image.Layers {
		err := filepath.WalkDir(layer.Path, func(_ string, entry fs.DirEntry, err error) error {
			if err != nil || !entry.Type().IsRegular() {
				return err
			}
			info, err := entry.Info()
			if err == nil {
				size += uint64(info.Size())
			}
			return err
		})
		if err != nil {
			t.Fatalf("measuring layer %s: %v", layer.Digest, err)
		}
	}
	return size
}

// assertLayersGone checks that no layer directory of image is left.
func assertLayersGone(t *testing.T, image *ocicache.Image) {
	t.Helper()
	for _, layer := range image.Layers {
		if _, err := os.Lstat(layer.Path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("layer directory %s is still there (%v)", layer.Path, err)
		}
	}
}

// releaseFromManyGoroutines releases image from n goroutines at once.
func releaseFromManyGoroutines(image *ocicache.Image, n int) {
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			image.Release()
		}()
	}
	wg.Wait()
}

// sampleLayers is the number of layers of the host's image of pushed, and their blob bytes.
func sampleLayers(pushed sample) (layers, bytes uint64) {
	for _, layer := range pushed.Layers {
		layers++
		bytes += uint64(layer.Size)
	}
	return layers, bytes
}

// cacheStatus is cache's CacheStatus; an error fails the test.
func cacheStatus(t *testing.T, cache *ocicache.Cache) *ocicache.CacheStatus {
	t.Helper()
	status, err := cache.CacheStatus(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return status
}
