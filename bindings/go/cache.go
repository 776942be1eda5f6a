package ocicache

// #include <stdlib.h>
// #include "oci_cache.h"
//
// oci_cache_result ocicache_set_log_callback(oci_cache_options *options, uintptr_t handle,
//                                            uint32_t level, oci_cache_error **error_out);
import "C"

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"runtime"
	"runtime/cgo"
	"strings"
	"sync"
	"unsafe"
)

// Cache is an open cache directory. Its methods are safe to call from many goroutines at once.
// Close it when done; a Cache that is garbage collected unclosed is closed by a finalizer.
type Cache struct {
	// mu is held for reading by every call into the library and for writing by Close, so
	// that Close waits for running calls and no call starts on a freed handle.
	mu     sync.RWMutex
	handle *C.oci_cache
	// logs identifies this cache's log sink to the library's threads; zero without a logger.
	logs cgo.Handle
}

// Option configures Open.
type Option func(*openConfig)

type openConfig struct {
	platform            string
	insecureRegistries  []string
	maxConcurrentLayers int
	logger              *slog.Logger
	registries          registryConfig
	offline             bool
	maxSize             uint64
}

// WithPlatform chooses the platform (`os/architecture[/variant]`) picked from image indexes.
// The default is the host's.
func WithPlatform(platform string) Option {
	return func(c *openConfig) { c.platform = platform }
}

// WithInsecureRegistry lets the cache reach registry (`host[:port]`) over plain HTTP.
// Repeat it for several registries.
func WithInsecureRegistry(registry string) Option {
	return func(c *openConfig) { c.insecureRegistries = append(c.insecureRegistries, registry) }
}

// WithMaxConcurrentLayers sets how many layers of one image download at once (the library's
// default is 4; it accepts 1 to 64). Zero keeps the default.
func WithMaxConcurrentLayers(n int) Option {
	return func(c *openConfig) { c.maxConcurrentLayers = n }
}

// WithLogger sends the library's log events to logger (the default is slog.Default()). The
// events it receives are chosen once, at Open, from the lowest level the logger's handler has
// enabled then; nil turns logging off. The logger's handler runs on the library's threads
// and must not call methods of a Cache.
func WithLogger(logger *slog.Logger) Option {
	return func(c *openConfig) { c.logger = logger }
}

// WithOffline forbids the network: a cached image is served (an image under a mutable tag such
// as `latest` from the digest the tag last resolved to, with a warning logged) and anything
// else fails with ErrNotCached.
func WithOffline() Option {
	return func(c *openConfig) { c.offline = true }
}

// WithMaxSize gives the cache's layers a budget of bytes: after a fetch that downloaded
// something, the least recently used layers that no fetch or Image (of any process) uses are
// pruned until the layers fit. Zero, the default, is no budget.
func WithMaxSize(bytes uint64) Option {
	return func(c *openConfig) { c.maxSize = bytes }
}

// Open opens the cache directory dir, creating it if it is missing.
func Open(dir string, opts ...Option) (*Cache, error) {
	config := openConfig{logger: slog.Default()}
	for _, opt := range opts {
		opt(&config)
	}

	cdir, err := cString("cache directory", dir)
	if err != nil {
		return nil, err
	}
	defer C.free(unsafe.Pointer(cdir))

	options := C.oci_cache_options_new()
	defer C.oci_cache_options_free(options)
	if err := config.apply(options); err != nil {
		return nil, err
	}

	cache := &Cache{}
	if config.logger != nil {
		cache.logs = cgo.NewHandle(&logSink{handler: config.logger.Handler()})
		level := callbackLevel(config.logger)
		var cerr *C.oci_cache_error
		result := C.ocicache_set_log_callback(options, C.uintptr_t(cache.logs), level, &cerr)
		if err := takeError(result, cerr); err != nil {
			cache.logs.Delete()
			return nil, err
		}
	}

	var handle *C.oci_cache
	var cerr *C.oci_cache_error
	result := C.oci_cache_open(cdir, options, &handle, &cerr)
	if err := takeError(result, cerr); err != nil {
		if cache.logs != 0 {
			cache.logs.Delete()
		}
		return nil, err
	}

	cache.handle = handle
	runtime.SetFinalizer(cache, (*Cache).Close)
	return cache, nil
}

// apply sets the configured values on the library's options.
func (c *openConfig) apply(options *C.oci_cache_options) error {
	if c.platform != "" {
		if err := setOption(options, C.OCI_CACHE_OPTION_PLATFORM, "platform", c.platform); err != nil {
			return err
		}
	}

	for _, registry := range c.insecureRegistries {
		err := setOption(options, C.OCI_CACHE_OPTION_INSECURE_REGISTRY, "insecure registry", registry)
		if err != nil {
			return err
		}
	}

	if c.maxConcurrentLayers != 0 {
		if c.maxConcurrentLayers < 0 {
			return invalidArgument("max concurrent layers %d is negative", c.maxConcurrentLayers)
		}
		count := uint64(c.maxConcurrentLayers)
		err := setUintOption(options, C.OCI_CACHE_OPTION_MAX_CONCURRENT_LAYERS, count)
		if err != nil {
			return err
		}
	}

	if c.offline {
		if err := setUintOption(options, C.OCI_CACHE_OPTION_OFFLINE, 1); err != nil {
			return err
		}
	}

	if c.maxSize != 0 {
		if err := setUintOption(options, C.OCI_CACHE_OPTION_MAX_SIZE_BYTES, c.maxSize); err != nil {
			return err
		}
	}

	return c.registries.apply(options)
}

func setOption(options *C.oci_cache_options, option C.uint32_t, name, value string) error {
	cvalue, err := cString(name, value)
	if err != nil {
		return err
	}
	defer C.free(unsafe.Pointer(cvalue))

	var cerr *C.oci_cache_error
	return takeError(C.oci_cache_options_set_string(options, option, cvalue, &cerr), cerr)
}

func setUintOption(options *C.oci_cache_options, option C.uint32_t, value uint64) error {
	var cerr *C.oci_cache_error
	result := C.oci_cache_options_set_uint(options, option, C.uint64_t(value), &cerr)
	return takeError(result, cerr)
}

// Close closes the cache once the calls running on it have returned. Images and statuses
// already returned stay valid. Calls after Close fail with ErrClosed; closing again returns nil.
func (c *Cache) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()

	if c.handle == nil {
		return nil
	}
	runtime.SetFinalizer(c, nil)
	C.oci_cache_close(c.handle)
	c.handle = nil

	if c.logs != 0 {
		c.logs.Delete()
		c.logs = 0
	}
	return nil
}

// closedError is returned by calls on a closed Cache.
func closedError() error {
	return &Error{Code: CodeClosed, Message: "oci-cache: the cache is closed"}
}

// FetchOption configures one Fetch.
type FetchOption func(*fetchConfig)

type fetchConfig struct {
	platform string
	merged   bool
	progress func(Progress)
}

// WithFetchPlatform chooses the platform (`os/architecture[/variant]`) of this fetch, in place
// of the cache's.
func WithFetchPlatform(platform string) FetchOption {
	return func(c *fetchConfig) { c.platform = platform }
}

// WithMerged also gives the image as one directory, Image.MergedPath: its layers applied in
// order, whiteouts honoured, made of hard links to the layers' read-only files. It is built
// once per manifest and shared by every fetch that asks for it.
func WithMerged() FetchOption {
	return func(c *fetchConfig) { c.merged = true }
}

// apply sets the configured values on the library's fetch options, except the progress
// callback, whose handle the fetch itself owns.
func (c *fetchConfig) apply(options *C.oci_cache_fetch_options) error {
	if c.platform != "" {
		cplatform, err := cString("platform", c.platform)
		if err != nil {
			return err
		}
		defer C.free(unsafe.Pointer(cplatform))

		var cerr *C.oci_cache_error
		result := C.oci_cache_fetch_options_set_string(
			options, C.OCI_CACHE_OPTION_PLATFORM, cplatform, &cerr)
		if err := takeError(result, cerr); err != nil {
			return err
		}
	}

	if c.merged {
		var cerr *C.oci_cache_error
		result := C.oci_cache_fetch_options_set_uint(options, C.OCI_CACHE_OPTION_MERGED, 1, &cerr)
		return takeError(result, cerr)
	}
	return nil
}

// Fetch fetches reference through the cache and returns where its layers are on disk. It
// blocks until the image is complete, the fetch failed, or ctx is done; in the last case the
// error matches both ErrCancelled and ctx.Err(). The image's directories are protected from
// pruning until its Release.
func (c *Cache) Fetch(ctx context.Context, reference string, opts ...FetchOption) (*Image, error) {
	var config fetchConfig
	for _, opt := range opts {
		opt(&config)
	}
	if err := notStarted(ctx, "fetch of "+reference); err != nil {
		return nil, err
	}

	creference, err := cString("reference", reference)
	if err != nil {
		return nil, err
	}
	defer C.free(unsafe.Pointer(creference))

	options := C.oci_cache_fetch_options_new()
	defer C.oci_cache_fetch_options_free(options)
	if err := config.apply(options); err != nil {
		return nil, err
	}

	// The library calls the progress callback only until the fetch returns: its handle may go
	// then.
	if config.progress != nil {
		progress, err := progressCallback(options, config.progress)
		if err != nil {
			return nil, err
		}
		defer progress.Delete()
	}

	var token *C.oci_cache_cancel
	if ctx.Done() != nil {
		token = C.oci_cache_cancel_new()
		defer C.oci_cache_cancel_free(token)

		var cerr *C.oci_cache_error
		result := C.oci_cache_fetch_options_set_cancel(options, token, &cerr)
		if err := takeError(result, cerr); err != nil {
			return nil, err
		}
	}

	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.handle == nil {
		return nil, closedError()
	}

	var image *C.oci_cache_image
	var cerr *C.oci_cache_error
	result := whileWatching(ctx, token, func() C.oci_cache_result {
		return C.oci_cache_fetch(c.handle, creference, options, &image, &cerr)
	})
	runtime.KeepAlive(c)

	if err := takeError(result, cerr); err != nil {
		if e, ok := err.(*Error); ok && e.Code == CodeCancelled && ctx.Err() != nil {
			return nil, e.causedBy(ctx.Err())
		}
		return nil, err
	}
	return newImage(image), nil
}

// notStarted is the error of a call that ctx ended before it began, or nil; what names the
// call.
func notStarted(ctx context.Context, what string) error {
	err := ctx.Err()
	if err == nil {
		return nil
	}
	cancelled := &Error{Code: CodeCancelled, Message: "oci-cache: " + what + " cancelled"}
	return cancelled.causedBy(err)
}

// whileWatching runs call, which blocks in the library, and triggers token when ctx is done
// before call returns. It returns once call has returned and nothing uses token any more, so
// the caller may free it. A nil token means ctx can never be done.
func whileWatching(
	ctx context.Context, token *C.oci_cache_cancel, call func() C.oci_cache_result,
) C.oci_cache_result {
	if token == nil {
		return call()
	}

	returned := make(chan struct{})
	watcher := make(chan struct{})
	go func() {
		defer close(watcher)
		select {
		case <-ctx.Done():
			C.oci_cache_cancel_trigger(token)
		case <-returned:
		}
	}()

	result := call()
	close(returned)
	<-watcher
	return result
}

// ImageStatus is what the cache holds of one reference, read without network.
type ImageStatus struct {
	// Reference is the normalised reference.
	Reference string `json:"reference"`
	// Cached is true when the manifest and every layer are cached.
	Cached bool `json:"cached"`
	// ManifestDigest is the manifest's digest, or "" when the manifest is not cached.
	ManifestDigest string `json:"manifest_digest"`
	// Layers lists each layer of the cached manifest.
	Layers []LayerStatus `json:"layers"`
}

// LayerStatus is whether one layer is in the cache.
type LayerStatus struct {
	// Digest is the layer's blob digest.
	Digest string `json:"digest"`
	// Present is true when the layer is extracted in the cache.
	Present bool `json:"present"`
	// Path is where the layer's files are, or would be.
	Path string `json:"path"`
}

// CacheStatus is what the cache holds as a whole.
type CacheStatus struct {
	// Dir is the cache directory.
	Dir string `json:"dir"`
	// Disabled is true when caching is turned off by the environment (CI_STEPS_OCI_CACHE=false).
	Disabled bool `json:"disabled"`
	// SizeBytes is the total size of the files under the cache directory.
	SizeBytes int64 `json:"size_bytes"`
	// Layers is the number of extracted layers.
	Layers int `json:"layers"`
	// Images is the number of images recorded, by manifest digest.
	Images int `json:"images"`
	// Session counts the fetches of this Cache since it opened.
	Session Counters `json:"session"`
	// Total counts the fetches of every cache on this directory, this one included, since the
	// directory was made. A cache adds its counts when it closes, and every minute or so while
	// it fetches.
	Total Counters `json:"total"`
}

// Counters count layers served from the cache and downloaded, and their blob bytes.
type Counters struct {
	// Hits is the number of layers served from the cache.
	Hits uint64 `json:"hits"`
	// Misses is the number of layers downloaded.
	Misses uint64 `json:"misses"`
	// BytesDownloaded is the blob bytes downloaded for the misses.
	BytesDownloaded uint64 `json:"bytes_downloaded"`
	// BytesSaved is the blob bytes the hits did not download.
	BytesSaved uint64 `json:"bytes_saved"`
}

// Status reports what the cache holds of reference, without network. The reference must not
// be empty: CacheStatus reports on the whole cache.
func (c *Cache) Status(ctx context.Context, reference string) (*ImageStatus, error) {
	if reference == "" {
		return nil, invalidArgument("reference is empty: CacheStatus reports on the whole cache")
	}
	var status ImageStatus
	if err := c.report(ctx, &reference, &status); err != nil {
		return nil, err
	}
	return &status, nil
}

// CacheStatus reports what the cache holds as a whole, without network.
func (c *Cache) CacheStatus(ctx context.Context) (*CacheStatus, error) {
	var status CacheStatus
	if err := c.report(ctx, nil, &status); err != nil {
		return nil, err
	}
	return &status, nil
}

// report asks the library for the status of reference (nil: of the whole cache) and decodes
// its JSON into status.
func (c *Cache) report(ctx context.Context, reference *string, status any) error {
	if err := notStarted(ctx, "status"); err != nil {
		return err
	}

	var creference *C.char
	if reference != nil {
		var err error
		if creference, err = cString("reference", *reference); err != nil {
			return err
		}
		defer C.free(unsafe.Pointer(creference))
	}

	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.handle == nil {
		return closedError()
	}

	var report *C.oci_cache_report
	var cerr *C.oci_cache_error
	result := C.oci_cache_status(c.handle, creference, &report, &cerr)
	runtime.KeepAlive(c)
	if err := takeError(result, cerr); err != nil {
		return err
	}
	return decodeReport(report, "status", status)
}

// decodeReport decodes the JSON of report into into, and frees report; what names the report
// in an error.
func decodeReport(report *C.oci_cache_report, what string, into any) error {
	defer C.oci_cache_report_free(report)

	text := C.GoString(C.oci_cache_report_json(report))
	if err := json.Unmarshal([]byte(text), into); err != nil {
		return fmt.Errorf("oci-cache: decoding the %s report %q: %w", what, text, err)
	}
	return nil
}

// cString copies s into C memory, to be freed with C.free. A NUL byte cannot cross the
// boundary, so a string holding one is an invalid argument rather than silently cut short.
func cString(name, s string) (*C.char, error) {
	return copyToC(s, fmt.Sprintf("%s %q", name, s))
}

// cSecret is cString for a password or a token: its error names the secret, never shows it.
func cSecret(name, s string) (*C.char, error) {
	return copyToC(s, name)
}

// copyToC copies s into C memory unless it holds a NUL byte; described names s in the error.
func copyToC(s, described string) (*C.char, error) {
	if strings.IndexByte(s, 0) >= 0 {
		return nil, invalidArgument("%s contains a NUL byte", described)
	}
	return C.CString(s), nil
}
