package ocicache

// #include <stdlib.h>
// #include "oci_cache.h"
import "C"

import "unsafe"

// registryConfig is how a cache reaches registries: with which credentials, trusting which
// certificate authorities, through which mirrors.
type registryConfig struct {
	// auths are the credentials and tokens in the order given, so that a later one for a
	// registry replaces an earlier one as the library does.
	auths []registryAuth
	// authFile is a Docker config file to read credentials from; "" for the default places.
	authFile string
	// caFiles are PEM files of certificate authorities trusted besides the system's.
	caFiles []string
	// mirrors are `REGISTRY=URL[,digest-only]` specs, in the order given.
	mirrors []string
	// withoutDockerConfig turns off reading DOCKER_AUTH_CONFIG and ~/.docker/config.json.
	withoutDockerConfig bool
}

// registryAuth is the credentials of one registry: a user name and password, or a token.
type registryAuth struct {
	registry string
	// bearer says that token is sent as is, in place of username and password.
	bearer             bool
	username, password string
	token              string
}

// WithCredentials uses username and password (or an access token as the password) for
// registry (`host[:port]`, `docker.io` for Docker Hub), for Basic auth or with its token
// server. They take precedence over a Docker config's and are sent to no other host. A later
// WithCredentials or WithRegistryToken for the same registry replaces this one.
func WithCredentials(registry, username, password string) Option {
	auth := registryAuth{registry: registry, username: username, password: password}
	return func(c *openConfig) { c.registries.auths = append(c.registries.auths, auth) }
}

// WithRegistryToken sends token to registry (`host[:port]`) as it is, as a bearer token. It
// takes precedence over a Docker config's and is sent to no other host. A later
// WithCredentials or WithRegistryToken for the same registry replaces this one.
func WithRegistryToken(registry, token string) Option {
	auth := registryAuth{registry: registry, bearer: true, token: token}
	return func(c *openConfig) { c.registries.auths = append(c.registries.auths, auth) }
}

// WithAuthFile reads credentials from the Docker config file (`config.json` format) at path,
// in place of DOCKER_AUTH_CONFIG and ~/.docker/config.json. It is read even with
// WithoutDockerConfig. An empty path keeps the default.
func WithAuthFile(path string) Option {
	return func(c *openConfig) { c.registries.authFile = path }
}

// WithCAFile trusts the certificate authorities of the PEM file at path besides the system's.
// Repeat it for several files.
func WithCAFile(path string) Option {
	return func(c *openConfig) { c.registries.caFiles = append(c.registries.caFiles, path) }
}

// WithMirror tries the registry at url (`http://` or `https://`, without `/v2/`) before
// registry (`host[:port]`) for every request: tags, manifests and blobs. Mirrors are tried in
// the order given, together with those of WithDigestOnlyMirror; one that fails is skipped.
// Whatever a mirror serves is verified as if it came from registry.
func WithMirror(registry, url string) Option {
	spec := registry + "=" + url
	return func(c *openConfig) { c.registries.mirrors = append(c.registries.mirrors, spec) }
}

// WithDigestOnlyMirror is WithMirror for a mirror that is asked for manifests by digest and
// blobs only, never to resolve a tag.
func WithDigestOnlyMirror(registry, url string) Option {
	spec := registry + "=" + url + ",digest-only"
	return func(c *openConfig) { c.registries.mirrors = append(c.registries.mirrors, spec) }
}

// WithoutDockerConfig stops the cache from reading credentials from the environment's Docker
// config: the content of DOCKER_AUTH_CONFIG, $DOCKER_CONFIG/config.json or
// ~/.docker/config.json. A file given with WithAuthFile is still read.
func WithoutDockerConfig() Option {
	return func(c *openConfig) { c.registries.withoutDockerConfig = true }
}

// apply sets the configured values on the library's options.
func (c *registryConfig) apply(options *C.oci_cache_options) error {
	for _, auth := range c.auths {
		if err := auth.apply(options); err != nil {
			return err
		}
	}

	if c.authFile != "" {
		err := setOption(options, C.OCI_CACHE_OPTION_AUTH_FILE, "auth file", c.authFile)
		if err != nil {
			return err
		}
	}

	for _, file := range c.caFiles {
		if err := setOption(options, C.OCI_CACHE_OPTION_CA_FILE, "CA file", file); err != nil {
			return err
		}
	}

	for _, spec := range c.mirrors {
		if err := setOption(options, C.OCI_CACHE_OPTION_MIRROR, "mirror", spec); err != nil {
			return err
		}
	}

	if c.withoutDockerConfig {
		return setUintOption(options, C.OCI_CACHE_OPTION_DOCKER_CONFIG, 0)
	}
	return nil
}

// apply gives the library the credentials of one registry.
func (a registryAuth) apply(options *C.oci_cache_options) error {
	cregistry, err := cString("registry", a.registry)
	if err != nil {
		return err
	}
	defer C.free(unsafe.Pointer(cregistry))

	if a.bearer {
		ctoken, err := cSecret("the registry token of "+a.registry, a.token)
		if err != nil {
			return err
		}
		defer C.free(unsafe.Pointer(ctoken))

		var cerr *C.oci_cache_error
		result := C.oci_cache_options_set_registry_token(options, cregistry, ctoken, &cerr)
		return takeError(result, cerr)
	}

	cusername, err := cString("user name", a.username)
	if err != nil {
		return err
	}
	defer C.free(unsafe.Pointer(cusername))
	cpassword, err := cSecret("the password of "+a.registry, a.password)
	if err != nil {
		return err
	}
	defer C.free(unsafe.Pointer(cpassword))

	var cerr *C.oci_cache_error
	result := C.oci_cache_options_set_credentials(options, cregistry, cusername, cpassword, &cerr)
	return takeError(result, cerr)
}
