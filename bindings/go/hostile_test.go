package ocicache_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	ocicache "oci-cache/bindings/go"
)

// hostileRegistry is a registry that serves a valid manifest whose one layer claims 50 MB,
// and then misbehaves on the layer's blob: it sends the headers and a few KB, then either
// resets the connection or stalls until the test ends.
type hostileRegistry struct {
	host     string
	manifest []byte
	digest   string
	// stall keeps the blob's connection open instead of resetting it.
	stall bool
	// blobRequests counts the layer requests received.
	blobRequests chan struct{}
	done         chan struct{}
	handlers     sync.WaitGroup
}

const (
	hostileLayerSize = 50_000_000
	emptyConfig      = "{}"
)

func digestOf(content []byte) string {
	sum := sha256.Sum256(content)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// startHostileRegistry starts the registry on a loopback port; it stops when the test ends.
func startHostileRegistry(t *testing.T, stall bool) *hostileRegistry {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listening on loopback: %v", err)
	}

	manifest, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config": map[string]any{
			"mediaType": "application/vnd.oci.image.config.v1+json",
			"digest":    digestOf([]byte(emptyConfig)),
			"size":      len(emptyConfig),
		},
		"layers": []map[string]any{{
			"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
			// The digest of bytes that are never sent in full.
			"digest": digestOf([]byte("the layer that never arrives")),
			"size":   hostileLayerSize,
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := &hostileRegistry{
		host:         listener.Addr().String(),
		manifest:     manifest,
		digest:       digestOf(manifest),
		stall:        stall,
		blobRequests: make(chan struct{}, 100),
		done:         make(chan struct{}),
	}

	server := &http.Server{Handler: r}
	go server.Serve(listener)
	t.Cleanup(func() {
		close(r.done)
		server.Close()
		r.handlers.Wait()
	})
	return r
}

// reference is an image on this registry.
func (r *hostileRegistry) reference() string {
	return r.host + "/hostile/step:1.0.0"
}

func (r *hostileRegistry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.handlers.Add(1)
	defer r.handlers.Done()

	path := req.URL.Path
	switch {
	case path == "/v2/" || path == "/v2":
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, "{}")
	case strings.HasPrefix(path, "/v2/hostile/step/manifests/"):
		w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		w.Header().Set("Docker-Content-Digest", r.digest)
		w.Header().Set("Content-Length", fmt.Sprint(len(r.manifest)))
		if req.Method != http.MethodHead {
			w.Write(r.manifest)
		}
	case path == "/v2/hostile/step/blobs/"+digestOf([]byte(emptyConfig)):
		io.WriteString(w, emptyConfig)
	case strings.HasPrefix(path, "/v2/hostile/step/blobs/"):
		r.blobRequests <- struct{}{}
		r.breakBlob(w)
	default:
		http.NotFound(w, req)
	}
}

// layerPrefix is the first 8 KB of a gzip tar holding one 1 MiB random file: enough for the
// client to check the format and start extracting before the connection breaks.
var layerPrefix = sync.OnceValue(func() []byte {
	var layer bytes.Buffer
	compressed := gzip.NewWriter(&layer)
	archive := tar.NewWriter(compressed)
	content := make([]byte, 1<<20)
	rand.New(rand.NewSource(1)).Read(content)
	archive.WriteHeader(&tar.Header{Name: "blob.bin", Mode: 0o644, Size: int64(len(content))})
	archive.Write(content)
	archive.Close()
	compressed.Close()
	return layer.Bytes()[:8<<10]
})

// breakBlob starts the 50 MB answer, sends the first 8 KB of a real layer, then resets or
// stalls.
func (r *hostileRegistry) breakBlob(w http.ResponseWriter) {
	conn, buffered, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()

	fmt.Fprintf(buffered, "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"+
		"Content-Length: %d\r\n\r\n", hostileLayerSize)
	buffered.Write(layerPrefix())
	if err := buffered.Flush(); err != nil {
		return
	}

	if r.stall {
		<-r.done
		return
	}
	// Linger 0 makes Close send RST instead of FIN: the client's next read or write fails.
	if tcp, ok := conn.(*net.TCPConn); ok {
		tcp.SetLinger(0)
	}
}

func TestRegistryResettingMidBlobFailsTheFetchWithoutKillingTheProcess(t *testing.T) {
	hostile := startHostileRegistry(t, false)
	// TRACE sends the HTTP stack's events through the callback too, from its own threads.
	traceLevel := &slog.HandlerOptions{Level: ocicache.LevelTrace}
	trace := slog.New(slog.NewTextHandler(io.Discard, traceLevel))
	cache, err := ocicache.Open(t.TempDir(), ocicache.WithInsecureRegistry(hostile.host),
		ocicache.WithLogger(trace))
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close()

	for attempt := 1; attempt <= 5; attempt++ {
		started := time.Now()
		_, err := cache.Fetch(context.Background(), hostile.reference())

		if !errors.Is(err, ocicache.ErrNetwork) && !errors.Is(err, ocicache.ErrIntegrity) {
			t.Fatalf("attempt %d: got %v, want a network or integrity error", attempt, err)
		}
		t.Logf("attempt %d failed in %v: %v", attempt, time.Since(started).Round(time.Millisecond), err)
	}
	if len(hostile.blobRequests) == 0 {
		t.Errorf("no fetch reached the layer's blob")
	}
}

func TestFetchPastItsDeadlineReturnsDeadlineExceeded(t *testing.T) {
	hostile := startHostileRegistry(t, true)
	cache := openCache(t, ocicache.WithInsecureRegistry(hostile.host))
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()

	_, err := cache.Fetch(ctx, hostile.reference())
	late := time.Since(deadlineOf(ctx))

	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ocicache.ErrCancelled) {
		t.Fatalf("got %v, want an error matching context.DeadlineExceeded and ErrCancelled", err)
	}
	if errors.Is(err, context.Canceled) {
		t.Errorf("%v matches context.Canceled, but the deadline ended the fetch", err)
	}
	if late > time.Second {
		t.Errorf("the fetch returned %v after its deadline", late)
	}
	if len(hostile.blobRequests) == 0 {
		t.Errorf("the fetch ended before it reached the stalled blob")
	}
}

func TestCloseWaitsForARunningFetch(t *testing.T) {
	hostile := startHostileRegistry(t, true)
	cache := openCache(t, ocicache.WithInsecureRegistry(hostile.host))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	fetched := make(chan error, 1)
	go func() {
		_, err := cache.Fetch(ctx, hostile.reference())
		fetched <- err
	}()
	select {
	case <-hostile.blobRequests: // the fetch is now blocked in the stalled blob
	case err := <-fetched:
		t.Fatalf("the fetch returned %v before reaching the stalled blob", err)
	case <-time.After(10 * time.Second):
		t.Fatalf("the fetch did not reach the stalled blob in 10 s")
	}

	closed := make(chan error, 1)
	go func() { closed <- cache.Close() }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a fetch was running; fetch: %v", err, <-fetched)
	case <-time.After(300 * time.Millisecond):
	}

	cancel()
	if err := <-fetched; !errors.Is(err, context.Canceled) {
		t.Errorf("the running fetch returned %v, want it cancelled", err)
	}
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("Close did not return after the fetch did")
	}
}

func deadlineOf(ctx context.Context) time.Time {
	deadline, _ := ctx.Deadline()
	return deadline
}
