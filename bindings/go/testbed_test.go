package ocicache_test

// Shared fixtures: one real registry (docker-registry, started by the project's testbed
// example) for the whole run, and a second one on the same storage that asks for Basic
// credentials; sample images pushed to the first, caches opened on temporary directories, and
// the registries' access logs read back to count requests.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	ocicache "oci-cache/bindings/go"
)

// registry is the test bed's registry, set by TestMain.
var registry struct {
	// host is the registry's `127.0.0.1:PORT`.
	host string
	// log is the path of its access log.
	log string
	// testbed is the testbed binary, which also pushes sample images.
	testbed string
	// securedHost is the registry on the same storage that wants securedUser's credentials.
	securedHost string
	// securedLog is the path of the secured registry's access log.
	securedLog string
}

// The Basic credentials the secured registry accepts.
const (
	securedUser     = "ci"
	securedPassword = "s3cret"
)

func TestMain(m *testing.M) {
	os.Exit(runWithRegistry(m))
}

// runWithRegistry starts `testbed serve` with a secured registry beside the plain one, runs
// the tests, and stops the registries by closing the testbed's standard input.
func runWithRegistry(m *testing.M) int {
	testbed := os.Getenv("OCI_CACHE_TESTBED")
	if testbed == "" {
		testbed = filepath.Join("..", "..", "target", "debug", "examples", "testbed")
	}
	testbed, err := filepath.Abs(testbed)
	if err == nil {
		_, err = os.Stat(testbed)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "the testbed example is missing (%v): run `cargo build --examples` "+
			"in the repository root, or set OCI_CACHE_TESTBED to its path\n", err)
		return 1
	}

	serve := exec.Command(testbed, "serve", "--basic-auth", securedUser+":"+securedPassword)
	serve.Stderr = os.Stderr
	stdin, err := serve.StdinPipe()
	if err != nil {
		fmt.Fprintf(os.Stderr, "testbed serve: %v\n", err)
		return 1
	}
	stdout, err := serve.StdoutPipe()
	if err != nil {
		fmt.Fprintf(os.Stderr, "testbed serve: %v\n", err)
		return 1
	}
	if err := serve.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "starting %s serve: %v\n", testbed, err)
		return 1
	}
	defer func() {
		stdin.Close()
		if err := serve.Wait(); err != nil {
			fmt.Fprintf(os.Stderr, "testbed serve exited: %v\n", err)
		}
	}()

	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	if err != nil {
		fmt.Fprintf(os.Stderr, "reading the registry's address from testbed serve: %v\n", err)
		return 1
	}
	var started struct {
		Host        string `json:"host"`
		Log         string `json:"log"`
		SecuredHost string `json:"secured_host"`
		SecuredLog  string `json:"secured_log"`
	}
	if err := json.Unmarshal(line, &started); err != nil || started.SecuredHost == "" {
		fmt.Fprintf(os.Stderr, "testbed serve printed %q, not {host, log, secured_host, "+
			"secured_log}: %v\n", line, err)
		return 1
	}
	registry.host, registry.log, registry.testbed = started.Host, started.Log, testbed
	registry.securedHost, registry.securedLog = started.SecuredHost, started.SecuredLog

	return m.Run()
}

// sample is a sample step image pushed by `testbed push-sample`.
type sample struct {
	// Repository is `HOST/REPOSITORY`.
	Repository     string `json:"repository"`
	IndexDigest    string `json:"index_digest"`
	ManifestDigest string `json:"manifest_digest"`
	Layers         []struct {
		Digest string `json:"digest"`
		Size   int64  `json:"size"`
	} `json:"layers"`
}

// reference is the sample's reference under tag.
func (s sample) reference(tag string) string {
	return s.Repository + ":" + tag
}

// repositoryFor names a repository after the test, so that no two tests share one.
func repositoryFor(t *testing.T) string {
	name := strings.ToLower(t.Name())
	name = regexp.MustCompile(`[^a-z0-9]+`).ReplaceAllString(name, "-")
	return "go/" + strings.Trim(name, "-")
}

// pushSample pushes the sample step image to repository with the testbed's extra arguments
// (`--tag T`, `--large-mib N`, `--message M`); with no tag it is pushed as 1.0.0.
func pushSample(t *testing.T, repository string, args ...string) sample {
	t.Helper()
	if !strings.Contains(strings.Join(args, " "), "--tag") {
		args = append(args, "--tag", "1.0.0")
	}
	push := []string{"push-sample", "--registry", registry.host, "--repository", repository}
	args = append(push, args...)

	out, err := exec.Command(registry.testbed, args...).Output()
	if err != nil {
		t.Fatalf("testbed %s: %v", strings.Join(args, " "), describeExit(err))
	}
	var pushed sample
	if err := json.Unmarshal(out, &pushed); err != nil {
		t.Fatalf("testbed push-sample printed %q: %v", out, err)
	}
	return pushed
}

func describeExit(err error) string {
	if exit, ok := err.(*exec.ExitError); ok {
		return fmt.Sprintf("%v: %s", err, exit.Stderr)
	}
	return err.Error()
}

// openCache opens a cache on a new temporary directory that reaches the test registry over
// HTTP and logs nothing below WARN; it is closed when the test ends.
func openCache(t *testing.T, opts ...ocicache.Option) *ocicache.Cache {
	t.Helper()
	return openCacheIn(t, t.TempDir(), opts...)
}

// openCacheIn is openCache on a given directory.
func openCacheIn(t *testing.T, dir string, opts ...ocicache.Option) *ocicache.Cache {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
	defaults := []ocicache.Option{
		ocicache.WithInsecureRegistry(registry.host),
		ocicache.WithLogger(quiet),
	}
	opts = append(defaults, opts...)

	cache, err := ocicache.Open(dir, opts...)
	if err != nil {
		t.Fatalf("opening a cache in %s: %v", dir, err)
	}
	t.Cleanup(func() { cache.Close() })
	return cache
}

// request is one line of the registry's access log.
type request struct {
	Method, Path, Status string
}

func (r request) String() string {
	return r.Method + " " + r.Path + " " + r.Status
}

// accessLine matches the Apache-format lines of the access log, not the registry's own logs.
var accessLine = regexp.MustCompile(`"([A-Z]+) (/\S*) HTTP/[0-9.]+" ([0-9]{3}) `)

// requestsFor returns the requests the registry served under `/v2/<repository>/`, once its
// access log has stopped growing: the registry writes a line after the response is sent.
func requestsFor(t *testing.T, repository string) []request {
	t.Helper()
	return requestsIn(t, registry.log, repository)
}

// requestsIn is requestsFor for the registry whose access log is log.
func requestsIn(t *testing.T, log, repository string) []request {
	t.Helper()
	read := func() []request {
		text, err := os.ReadFile(log)
		if err != nil {
			t.Fatalf("reading the access log %s: %v", log, err)
		}
		prefix := "/v2/" + repository + "/"
		var requests []request
		for _, line := range strings.Split(string(text), "\n") {
			m := accessLine.FindStringSubmatch(line)
			if m != nil && strings.HasPrefix(m[2], prefix) {
				requests = append(requests, request{Method: m[1], Path: m[2], Status: m[3]})
			}
		}
		return requests
	}

	requests := read()
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		again := read()
		if len(again) == len(requests) {
			break
		}
		requests = again
	}
	return requests
}

// recordingHandler is a slog handler that keeps every record, at every level.
type recordingHandler struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r.Clone())
	return nil
}

func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }

func (h *recordingHandler) WithGroup(string) slog.Handler { return h }

// find returns the records with message whose attribute key has value (any value when value
// is "").
func (h *recordingHandler) find(message, key, value string) []slog.Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	var found []slog.Record
	for _, r := range h.records {
		if r.Message == message && hasAttr(r, key, value) {
			found = append(found, r)
		}
	}
	return found
}

// waitFor waits until a record like find's has arrived, or timeout has passed.
func (h *recordingHandler) waitFor(message, key, value string, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for len(h.find(message, key, value)) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
}

// hasAttr reports whether r has attribute key, with value unless value is "".
func hasAttr(r slog.Record, key, value string) bool {
	found := false
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == key && (value == "" || a.Value.String() == value) {
			found = true
			return false
		}
		return true
	})
	return found
}

// attr returns the value of r's attribute key, or "".
func attr(r slog.Record, key string) string {
	value := ""
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			value = a.Value.String()
			return false
		}
		return true
	})
	return value
}
