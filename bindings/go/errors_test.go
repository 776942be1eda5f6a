package ocicache_test

import (
	"context"
	"errors"
	"testing"

	ocicache "oci-cache/bindings/go"
)

func TestInvalidReferenceIsErrInvalidReference(t *testing.T) {
	cache := openCache(t)

	_, err := cache.Fetch(context.Background(), "Not A Reference//:")

	var e *ocicache.Error
	if !errors.Is(err, ocicache.ErrInvalidReference) || !errors.As(err, &e) {
		t.Fatalf("got %v, want ErrInvalidReference", err)
	}
	if e.Code != ocicache.CodeInvalidReference || e.Message == "" || err.Error() != e.Message {
		t.Errorf("got code %v, message %q, Error() %q", e.Code, e.Message, err.Error())
	}
	if errors.Is(err, ocicache.ErrNotFound) {
		t.Errorf("%v matches ErrNotFound too", err)
	}
}

func TestMissingTagIsErrNotFound(t *testing.T) {
	pushed := pushSample(t, repositoryFor(t))
	cache := openCache(t)

	_, err := cache.Fetch(context.Background(), pushed.reference("9.9.9"))

	if !errors.Is(err, ocicache.ErrNotFound) {
		t.Fatalf("got %v, want ErrNotFound", err)
	}
}

func TestNulByteInAReferenceIsAnInvalidArgument(t *testing.T) {
	cache := openCache(t)

	_, err := cache.Fetch(context.Background(), registry.host+"/go/x:1.0.0\x00latest")

	if !errors.Is(err, ocicache.ErrInvalidArgument) {
		t.Fatalf("got %v, want ErrInvalidArgument", err)
	}
}

func TestOpenRejectsAMalformedPlatform(t *testing.T) {
	_, err := ocicache.Open(t.TempDir(), ocicache.WithPlatform("linux"))

	if !errors.Is(err, ocicache.ErrInvalidArgument) {
		t.Fatalf("got %v, want ErrInvalidArgument", err)
	}
}

func TestCodesHaveTheLibrarysNames(t *testing.T) {
	for code, name := range map[ocicache.Code]string{
		ocicache.CodeInvalidArgument: "invalid_argument",
		ocicache.CodeNotCached:       "not_cached",
		ocicache.Code(999):           "unknown",
	} {
		if code.String() != name {
			t.Errorf("Code(%d) is %q, want %q", uint32(code), code.String(), name)
		}
	}
}
