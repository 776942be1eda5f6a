package ocicache_test

// Credentials, private images, Docker configs and mirrors, against the test bed's registries:
// images are pushed to the plain registry and fetched from the secured one on the same storage,
// which answers 401 with a Basic challenge unless given securedUser's credentials.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	ocicache "oci-cache/bindings/go"
)

func TestRightCredentialsFetchFromTheSecuredRegistry(t *testing.T) {
	repository := repositoryFor(t)
	pushed := pushSample(t, repository)
	cache := openCacheWithoutDockerConfig(t, t.TempDir(),
		ocicache.WithCredentials(registry.securedHost, securedUser, securedPassword))

	image, err := cache.Fetch(context.Background(), securedReference(pushed, "1.0.0"))
	if err != nil {
		t.Fatalf("fetch with the right credentials: %v", err)
	}

	if image.ManifestDigest != pushed.ManifestDigest || len(image.Layers) != len(pushed.Layers) {
		t.Errorf("got manifest %s with %d layers, want %s with %d", image.ManifestDigest,
			len(image.Layers), pushed.ManifestDigest, len(pushed.Layers))
	}
	assertSampleFiles(t, image)
	if served := requestsIn(t, registry.securedLog, repository); !anyWithStatus(served, "200") {
		t.Errorf("the secured registry served nothing for %s: %v", repository, served)
	}
}

func TestWrongPasswordIsErrUnauthorized(t *testing.T) {
	pushed := pushSample(t, repositoryFor(t))
	cache := openCacheWithoutDockerConfig(t, t.TempDir(),
		ocicache.WithCredentials(registry.securedHost, securedUser, "wrong"))

	assertUnauthorized(t, cache, securedReference(pushed, "1.0.0"))
}

func TestNoCredentialsIsErrUnauthorized(t *testing.T) {
	pushed := pushSample(t, repositoryFor(t))
	cache := openCacheWithoutDockerConfig(t, t.TempDir())

	assertUnauthorized(t, cache, securedReference(pushed, "1.0.0"))
}

func TestALaterRegistryTokenReplacesCredentials(t *testing.T) {
	pushed := pushSample(t, repositoryFor(t))
	reference := securedReference(pushed, "1.0.0")
	right := ocicache.WithCredentials(registry.securedHost, securedUser, securedPassword)
	// The secured registry knows Basic auth only, so it refuses any bearer token.
	token := ocicache.WithRegistryToken(registry.securedHost, "a-token-it-does-not-know")

	tokenLast := openCacheWithoutDockerConfig(t, t.TempDir(), right, token)
	assertUnauthorized(t, tokenLast, reference)

	credentialsLast := openCacheWithoutDockerConfig(t, t.TempDir(), token, right)
	if _, err := credentialsLast.Fetch(context.Background(), reference); err != nil {
		t.Fatalf("fetch with the credentials given after the token: %v", err)
	}
}

func TestAPrivateImageIsRefusedToAHandleWithoutCredentials(t *testing.T) {
	repository := repositoryFor(t)
	pushed := pushSample(t, repository)
	reference := securedReference(pushed, "1.0.0")
	dir := t.TempDir()
	ctx := context.Background()
	authorised := openCacheWithoutDockerConfig(t, dir,
		ocicache.WithCredentials(registry.securedHost, securedUser, securedPassword))
	if _, err := authorised.Fetch(ctx, reference); err != nil {
		t.Fatalf("fetch with the right credentials: %v", err)
	}
	anonymous := openCacheWithoutDockerConfig(t, dir)

	before := requestsIn(t, registry.securedLog, repository)
	image, err := anonymous.Fetch(ctx, reference)
	refused := requestsIn(t, registry.securedLog, repository)[len(before):]

	if !errors.Is(err, ocicache.ErrUnauthorized) || image != nil {
		t.Fatalf("a handle without credentials got %+v, %v; want ErrUnauthorized", image, err)
	}
	if len(refused) == 0 || anyWithStatus(refused, "200") {
		t.Errorf("want the access check refused and nothing served, the registry saw %v", refused)
	}

	again, err := authorised.Fetch(ctx, reference)
	if err != nil {
		t.Fatalf("the authorised handle's fetch after the refusal: %v", err)
	}
	for i, layer := range again.Layers {
		if layer.Cache != ocicache.OutcomeHit {
			t.Errorf("layer %d served to the authorised handle as %q, want %q", i, layer.Cache,
				ocicache.OutcomeHit)
		}
	}
	assertSampleFiles(t, again)
}

func TestCredentialsFromAnAuthFile(t *testing.T) {
	pushed := pushSample(t, repositoryFor(t))
	authFile := writeAuthFile(t, registry.securedHost, securedUser, securedPassword)
	// The auth file is read even though the environment's Docker config is not.
	cache := openCacheWithoutDockerConfig(t, t.TempDir(), ocicache.WithAuthFile(authFile))

	image, err := cache.Fetch(context.Background(), securedReference(pushed, "1.0.0"))
	if err != nil {
		t.Fatalf("fetch with the auth file's credentials: %v", err)
	}

	assertSampleFiles(t, image)
}

func TestAMissingAuthFileFailsOpen(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "config.json")

	_, err := ocicache.Open(t.TempDir(), ocicache.WithAuthFile(missing))

	if !errors.Is(err, ocicache.ErrInvalidArgument) || !strings.Contains(err.Error(), missing) {
		t.Fatalf("got %v, want ErrInvalidArgument naming %s", err, missing)
	}
}

func TestACAFileThatIsNotPEMFailsOpen(t *testing.T) {
	bogus := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(bogus, []byte("not a certificate"), 0o600); err != nil {
		t.Fatalf("writing %s: %v", bogus, err)
	}

	_, err := ocicache.Open(t.TempDir(), ocicache.WithCAFile(bogus))

	if !errors.Is(err, ocicache.ErrInvalidArgument) {
		t.Fatalf("got %v, want ErrInvalidArgument", err)
	}
}

func TestADeadMirrorIsSkippedForTheOrigin(t *testing.T) {
	repository := repositoryFor(t)
	pushed := pushSample(t, repository)
	dead := fmt.Sprintf("http://127.0.0.1:%d", closedPort(t))
	cache := openCacheWithoutDockerConfig(t, t.TempDir(), ocicache.WithMirror(registry.host, dead))

	image, err := cache.Fetch(context.Background(), pushed.reference("1.0.0"))
	if err != nil {
		t.Fatalf("fetch with a dead mirror: %v", err)
	}

	assertSampleFiles(t, image)
	if served := requestsFor(t, repository); !anyWithStatus(served, "200") {
		t.Errorf("the origin served nothing for %s: %v", repository, served)
	}
}

func TestAMirrorServesWhenTheOriginIsDown(t *testing.T) {
	repository := repositoryFor(t)
	pushSample(t, repository)
	origin := fmt.Sprintf("127.0.0.1:%d", closedPort(t))
	cache := openCacheWithoutDockerConfig(t, t.TempDir(),
		ocicache.WithMirror(origin, "http://"+registry.host))

	image, err := cache.Fetch(context.Background(), origin+"/"+repository+":1.0.0")
	if err != nil {
		t.Fatalf("fetch through the mirror of a dead origin: %v", err)
	}

	assertSampleFiles(t, image)
}

func TestADigestOnlyMirrorIsNotAskedForATag(t *testing.T) {
	repository := repositoryFor(t)
	pushed := pushSample(t, repository)
	origin := fmt.Sprintf("127.0.0.1:%d", closedPort(t))
	cache := openCacheWithoutDockerConfig(t, t.TempDir(),
		ocicache.WithDigestOnlyMirror(origin, "http://"+registry.host))
	ctx := context.Background()

	before := requestsFor(t, repository)
	_, err := cache.Fetch(ctx, origin+"/"+repository+":1.0.0")
	if err == nil {
		t.Fatalf("a tag was resolved with the origin down and a digest-only mirror")
	}
	for _, r := range requestsFor(t, repository)[len(before):] {
		if strings.HasSuffix(r.Path, "/manifests/1.0.0") {
			t.Errorf("the digest-only mirror was asked for the tag: %v", r)
		}
	}

	image, err := cache.Fetch(ctx, origin+"/"+repository+"@"+pushed.IndexDigest)
	if err != nil {
		t.Fatalf("fetch by digest through the digest-only mirror: %v", err)
	}
	assertSampleFiles(t, image)
}

func TestMirrorsAreTriedInTheOrderGiven(t *testing.T) {
	repository := repositoryFor(t)
	pushed := pushSample(t, repository)
	origin := fmt.Sprintf("127.0.0.1:%d", closedPort(t))
	reference := origin + "/" + repository + "@" + pushed.IndexDigest
	// Both mirrors serve the same storage; the secured one wants its credentials.
	plain := ocicache.WithMirror(origin, "http://"+registry.host)
	secured := ocicache.WithDigestOnlyMirror(origin, "http://"+registry.securedHost)
	credentials := ocicache.WithCredentials(registry.securedHost, securedUser, securedPassword)

	for _, order := range []struct {
		name               string
		mirrors            []ocicache.Option
		firstLog, otherLog string
	}{
		{"plain first", []ocicache.Option{plain, secured}, registry.log, registry.securedLog},
		{"secured first", []ocicache.Option{secured, plain}, registry.securedLog, registry.log},
	} {
		firstBefore := len(requestsIn(t, order.firstLog, repository))
		otherBefore := len(requestsIn(t, order.otherLog, repository))
		opts := append([]ocicache.Option{credentials}, order.mirrors...)
		cache := openCacheWithoutDockerConfig(t, t.TempDir(), opts...)

		if _, err := cache.Fetch(context.Background(), reference); err != nil {
			t.Fatalf("%s: fetch through the mirrors: %v", order.name, err)
		}

		first := requestsIn(t, order.firstLog, repository)[firstBefore:]
		other := requestsIn(t, order.otherLog, repository)[otherBefore:]
		if !anyWithStatus(first, "200") || len(other) != 0 {
			t.Errorf("%s: the first mirror served %v, the other was sent %v", order.name, first,
				other)
		}
	}
}

func TestAMalformedMirrorIsAnInvalidArgument(t *testing.T) {
	for _, mirror := range []struct{ registry, url string }{
		{"r.example", "ftp://x"},
		{"r.example", "not a url"},
		{"", "http://mirror.example"},
	} {
		_, err := ocicache.Open(t.TempDir(), ocicache.WithMirror(mirror.registry, mirror.url))

		if !errors.Is(err, ocicache.ErrInvalidArgument) {
			t.Errorf("WithMirror(%q, %q): got %v, want ErrInvalidArgument", mirror.registry,
				mirror.url, err)
		}
	}
}

func TestAnInvalidDockerAuthConfigFailsOpenUnlessTurnedOff(t *testing.T) {
	t.Setenv("DOCKER_AUTH_CONFIG", "{not json")

	_, err := ocicache.Open(t.TempDir())
	if !errors.Is(err, ocicache.ErrInvalidArgument) ||
		!strings.Contains(err.Error(), "DOCKER_AUTH_CONFIG") {
		t.Fatalf("got %v, want ErrInvalidArgument naming DOCKER_AUTH_CONFIG", err)
	}

	cache, err := ocicache.Open(t.TempDir(), ocicache.WithoutDockerConfig())
	if err != nil {
		t.Fatalf("opening without the Docker config: %v", err)
	}
	cache.Close()
}

func TestASecretWithANulByteIsRefusedWithoutShowingIt(t *testing.T) {
	secret := "s3cret\x00tail"

	for _, opt := range []ocicache.Option{
		ocicache.WithCredentials("r.example", "ci", secret),
		ocicache.WithRegistryToken("r.example", secret),
	} {
		_, err := ocicache.Open(t.TempDir(), opt)

		if !errors.Is(err, ocicache.ErrInvalidArgument) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("got %v, want ErrInvalidArgument without the secret", err)
		}
	}
}

// openCacheWithoutDockerConfig is openCacheIn with the environment's Docker config turned off,
// so that only opts decide which credentials the cache has.
func openCacheWithoutDockerConfig(
	t *testing.T, dir string, opts ...ocicache.Option,
) *ocicache.Cache {
	t.Helper()
	opts = append([]ocicache.Option{ocicache.WithoutDockerConfig()}, opts...)
	return openCacheIn(t, dir, opts...)
}

// securedReference is the sample's reference under tag on the secured registry.
func securedReference(s sample, tag string) string {
	return registry.securedHost + strings.TrimPrefix(s.reference(tag), registry.host)
}

// assertUnauthorized fetches reference and checks that it fails with ErrUnauthorized, naming
// the reference, and that nothing of it was cached.
func assertUnauthorized(t *testing.T, cache *ocicache.Cache, reference string) {
	t.Helper()
	ctx := context.Background()

	image, err := cache.Fetch(ctx, reference)
	if !errors.Is(err, ocicache.ErrUnauthorized) || image != nil {
		t.Fatalf("got %+v, %v; want ErrUnauthorized", image, err)
	}
	if !strings.Contains(err.Error(), reference) {
		t.Errorf("the error %q does not name %s", err, reference)
	}

	status, err := cache.Status(ctx, reference)
	if err != nil || status.Cached || status.ManifestDigest != "" {
		t.Errorf("after the refusal the cache holds %+v (%v), want nothing", status, err)
	}
}

// writeAuthFile writes a Docker config.json giving user and password for host, and returns
// its path.
func writeAuthFile(t *testing.T, host, user, password string) string {
	t.Helper()
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	config := map[string]any{"auths": map[string]any{host: map[string]string{"auth": auth}}}
	text, err := json.Marshal(config)
	if err != nil {
		t.Fatalf("encoding the auth file: %v", err)
	}

	path := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(path, text, 0o600); err != nil {
		t.Fatalf("writing the auth file: %v", err)
	}
	return path
}

// closedPort returns a loopback port that nothing listens on: one just bound and released.
func closedPort(t *testing.T) int {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("binding a loopback port: %v", err)
	}
	port := listener.Addr().(*net.TCPAddr).Port
	listener.Close()
	return port
}

// anyWithStatus reports whether one of requests was answered with status.
func anyWithStatus(requests []request, status string) bool {
	for _, r := range requests {
		if r.Status == status {
			return true
		}
	}
	return false
}
