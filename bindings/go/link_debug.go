//go:build !ocicache_release && !ocicache_external

package ocicache

// The default: the debug build of the repository this package lives in (`cargo build`).

// #cgo CFLAGS: -I${SRCDIR}/../../include
// #cgo LDFLAGS: ${SRCDIR}/../../target/debug/liboci_cache.a -lgcc_s -lutil -lrt -lpthread -lm -ldl
import "C"
