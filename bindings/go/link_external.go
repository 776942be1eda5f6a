//go:build ocicache_external

package ocicache

// With the ocicache_external tag the package names no library and no header directory: the
// builder supplies both through CGO_CFLAGS and CGO_LDFLAGS (see README.md).

import "C"
