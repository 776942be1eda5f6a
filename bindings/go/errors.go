package ocicache

// #include <stdlib.h>
// #include "oci_cache.h"
import "C"

import (
	"fmt"
	"strings"
)

// Code is one of the library's stable result codes (oci_cache_result). Values never change
// meaning; new ones may be added.
type Code uint32

// The result codes of the C ABI, with the same values.
const (
	// CodeInvalidArgument: an argument was missing, not UTF-8, or out of range.
	CodeInvalidArgument Code = C.OCI_CACHE_RESULT_INVALID_ARGUMENT
	// CodeInvalidReference: the image reference is malformed.
	CodeInvalidReference Code = C.OCI_CACHE_RESULT_INVALID_REFERENCE
	// CodeNotFound: the registry has no such repository, tag, manifest or blob.
	CodeNotFound Code = C.OCI_CACHE_RESULT_NOT_FOUND
	// CodeUnauthorized: the registry refused the credentials, or asked for some.
	CodeUnauthorized Code = C.OCI_CACHE_RESULT_UNAUTHORIZED
	// CodeIntegrity: bytes did not match their digest or size.
	CodeIntegrity Code = C.OCI_CACHE_RESULT_INTEGRITY
	// CodeUnsafeLayer: a layer tried to write outside its directory, or holds a forbidden entry.
	CodeUnsafeLayer Code = C.OCI_CACHE_RESULT_UNSAFE_LAYER
	// CodeNetwork: the registry could not be reached, or the connection failed.
	CodeNetwork Code = C.OCI_CACHE_RESULT_NETWORK
	// CodeIO: a file-system operation on the cache failed.
	CodeIO Code = C.OCI_CACHE_RESULT_IO
	// CodeCancelled: the caller cancelled the operation.
	CodeCancelled Code = C.OCI_CACHE_RESULT_CANCELLED
	// CodeUnsupported: a media type, manifest schema or option the library does not support.
	CodeUnsupported Code = C.OCI_CACHE_RESULT_UNSUPPORTED
	// CodeNoMatchingPlatform: an index has no entry for the requested platform.
	CodeNoMatchingPlatform Code = C.OCI_CACHE_RESULT_NO_MATCHING_PLATFORM
	// CodeRegistry: the registry answered with something that is not valid.
	CodeRegistry Code = C.OCI_CACHE_RESULT_REGISTRY
	// CodeClosed: the cache was closed.
	CodeClosed Code = C.OCI_CACHE_RESULT_CLOSED
	// CodePanic: a bug; the library panicked and the panic was caught at the boundary.
	CodePanic Code = C.OCI_CACHE_RESULT_PANIC
	// CodeNotCached: the data is not in the cache and the network may not be used.
	CodeNotCached Code = C.OCI_CACHE_RESULT_NOT_CACHED
)

// String is the library's short lowercase name of the code ("not_found"), or "unknown".
func (c Code) String() string {
	return C.GoString(C.oci_cache_result_name(C.uint32_t(c)))
}

// Error is an error of the library: a result code and a message that says what failed, on
// what, and why. Match it with [errors.Is] against the sentinels below, which compare codes
// only; use [errors.As] to read the code and message.
type Error struct {
	// Code is the library's result code.
	Code Code
	// Message is the library's message, verbatim.
	Message string

	// cause is the context error of a cancelled fetch, returned by Unwrap.
	cause error
}

// Error returns the library's message, or the code's name when there is none.
func (e *Error) Error() string {
	if e.Message == "" {
		return "oci-cache: " + e.Code.String()
	}
	return e.Message
}

// Is reports whether target is an *Error with the same code, so that
// errors.Is(err, ErrNotFound) holds for every not-found error.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Unwrap returns the context error that cancelled a fetch, or nil.
func (e *Error) Unwrap() error {
	return e.cause
}

// causedBy returns a copy of e that also matches cause, the context error that cancelled it.
func (e *Error) causedBy(cause error) *Error {
	caused := *e
	caused.cause = cause
	return &caused
}

// Sentinels, one for each result code, for use with [errors.Is].
var (
	// ErrInvalidArgument matches errors with CodeInvalidArgument.
	ErrInvalidArgument = sentinel(CodeInvalidArgument)
	// ErrInvalidReference matches errors with CodeInvalidReference.
	ErrInvalidReference = sentinel(CodeInvalidReference)
	// ErrNotFound matches errors with CodeNotFound.
	ErrNotFound = sentinel(CodeNotFound)
	// ErrUnauthorized matches errors with CodeUnauthorized.
	ErrUnauthorized = sentinel(CodeUnauthorized)
	// ErrIntegrity matches errors with CodeIntegrity.
	ErrIntegrity = sentinel(CodeIntegrity)
	// ErrUnsafeLayer matches errors with CodeUnsafeLayer.
	ErrUnsafeLayer = sentinel(CodeUnsafeLayer)
	// ErrNetwork matches errors with CodeNetwork.
	ErrNetwork = sentinel(CodeNetwork)
	// ErrIO matches errors with CodeIO.
	ErrIO = sentinel(CodeIO)
	// ErrCancelled matches errors with CodeCancelled.
	ErrCancelled = sentinel(CodeCancelled)
	// ErrUnsupported matches errors with CodeUnsupported.
	ErrUnsupported = sentinel(CodeUnsupported)
	// ErrNoMatchingPlatform matches errors with CodeNoMatchingPlatform.
	ErrNoMatchingPlatform = sentinel(CodeNoMatchingPlatform)
	// ErrRegistry matches errors with CodeRegistry.
	ErrRegistry = sentinel(CodeRegistry)
	// ErrClosed matches errors with CodeClosed, such as any call on a closed Cache.
	ErrClosed = sentinel(CodeClosed)
	// ErrPanic matches errors with CodePanic.
	ErrPanic = sentinel(CodePanic)
	// ErrNotCached matches errors with CodeNotCached.
	ErrNotCached = sentinel(CodeNotCached)
)

func sentinel(code Code) *Error {
	return &Error{Code: code, Message: "oci-cache: " + strings.ReplaceAll(code.String(), "_", " ")}
}

// takeError turns a result and the error object the library stored into an error, and frees
// the object. It returns nil for OCI_CACHE_RESULT_OK.
func takeError(result C.oci_cache_result, cerr *C.oci_cache_error) error {
	defer C.oci_cache_error_free(cerr)

	if result == C.OCI_CACHE_RESULT_OK {
		return nil
	}
	if cerr == nil {
		return &Error{Code: Code(result)}
	}

	return &Error{
		Code:    Code(C.oci_cache_error_code(cerr)),
		Message: C.GoString(C.oci_cache_error_message(cerr)),
	}
}

// invalidArgument is an error found before calling the library.
func invalidArgument(format string, args ...any) error {
	return &Error{Code: CodeInvalidArgument, Message: fmt.Sprintf(format, args...)}
}
