//go:build ocicache_release && !ocicache_external

package ocicache

// With the ocicache_release tag: the release build of the repository this package lives in
// (`cargo build --release`).

// #cgo CFLAGS: -I${SRCDIR}/../../include
// #cgo LDFLAGS: ${SRCDIR}/../../target/release/liboci_cache.a
// #cgo LDFLAGS: -lgcc_s -lutil -lrt -lpthread -lm -ldl
import "C"
