// Package ocicache caches OCI images for CI step runners. It wraps the oci-cache library's
// C ABI (include/oci_cache.h) and copies every result into plain Go values; an [Image] also
// keeps the library's image, whose locks protect its layers from pruning until
// [Image.Release].
//
// A [Cache] is an open cache directory. It is safe to use from many goroutines at once, and
// several caches (in this process or others) may share one directory:
//
//	cache, err := ocicache.Open("/var/cache/steps", ocicache.WithLogger(logger))
//	if err != nil {
//		return err
//	}
//	defer cache.Close()
//
//	image, err := cache.Fetch(ctx, "registry.example/steps/hello:1.2.3")
//	if err != nil {
//		return err
//	}
//	defer image.Release() // until then, no prune removes its layers
//	for _, layer := range image.Layers {
//		fmt.Println(layer.Digest, layer.Path, layer.Cache)
//	}
//
// Errors are of type [*Error]; test them with [errors.Is] against the sentinels
// ([ErrNotFound], [ErrNetwork], ...). A fetch whose context ends returns an error that matches
// both [ErrCancelled] and the context's error ([context.Canceled] or
// [context.DeadlineExceeded]).
//
// Credentials come from the environment's Docker config (DOCKER_AUTH_CONFIG, else
// ~/.docker/config.json) unless [WithCredentials], [WithRegistryToken], [WithAuthFile] or
// [WithoutDockerConfig] say otherwise. An image the registry gave only for credentials is
// recorded as private in the cache directory: a later cache hit on it, by any caller, first
// proves access with that caller's credentials, and fails with [ErrUnauthorized] if refused.
//
// [Cache.Prune] removes layers (least recently used first, by age, or all) and [WithMaxSize]
// keeps the cache within a budget, never taking a layer that a running fetch or an unreleased
// Image of any process uses. [WithOffline] serves cached images with no network at all.
//
// The library is linked statically from the repository's target/debug directory by default;
// see README.md for release builds and other locations.
package ocicache
