package ocicache

// #include <stdint.h>
import "C"

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"runtime/cgo"
	"sort"
	"strconv"
	"time"
)

// The library's log levels (oci_cache_log_level).
const (
	logLevelError = 1
	logLevelWarn  = 2
	logLevelInfo  = 3
	logLevelDebug = 4
	logLevelTrace = 5
)

// LevelTrace is the slog level of the library's TRACE events (the HTTP stack's details).
const LevelTrace = slog.LevelDebug - 4

// logSink receives one cache's log events on the library's threads.
type logSink struct {
	handler slog.Handler
}

// callbackLevel is the most verbose library level that logger would record now.
func callbackLevel(logger *slog.Logger) C.uint32_t {
	ctx := context.Background()
	switch {
	case logger.Enabled(ctx, LevelTrace):
		return logLevelTrace
	case logger.Enabled(ctx, slog.LevelDebug):
		return logLevelDebug
	case logger.Enabled(ctx, slog.LevelInfo):
		return logLevelInfo
	case logger.Enabled(ctx, slog.LevelWarn):
		return logLevelWarn
	default:
		return logLevelError
	}
}

// slogLevel maps a library level to slog's.
func slogLevel(level C.uint32_t) slog.Level {
	switch level {
	case logLevelError:
		return slog.LevelError
	case logLevelWarn:
		return slog.LevelWarn
	case logLevelInfo:
		return slog.LevelInfo
	case logLevelDebug:
		return slog.LevelDebug
	default:
		return LevelTrace
	}
}

// ocicacheDeliverLog is called by the C shim on the library's threads for each event.
//
//export ocicacheDeliverLog
func ocicacheDeliverLog(handle C.uintptr_t, level C.uint32_t, target, message, fields *C.char) {
	sink, ok := handleValue[*logSink](uintptr(handle))
	if !ok {
		return
	}
	sink.deliver(slogLevel(level), C.GoString(target), C.GoString(message), C.GoString(fields))
}

// handleValue resolves a callback's handle that may have been deleted. This library calls no
// log callback after oci_cache_close returned (it runs them under the lock that closing takes)
// and no progress callback after the fetch returned, but should a call still arrive for a
// deleted handle, cgo.Handle.Value would panic on a library thread and end the process: the
// call is dropped instead.
func handleValue[T any](handle uintptr) (value T, ok bool) {
	defer func() {
		if recover() != nil {
			var none T
			value, ok = none, false
		}
	}()
	value, ok = cgo.Handle(handle).Value().(T)
	return value, ok
}

// deliver turns one event into a slog record: the message, `target`, and the event's fields
// as attributes.
func (s *logSink) deliver(level slog.Level, target, message, fields string) {
	ctx := context.Background()
	if !s.handler.Enabled(ctx, level) {
		return
	}

	record := slog.NewRecord(time.Now(), level, message, 0)
	record.AddAttrs(slog.String("target", target))
	record.AddAttrs(fieldAttrs(fields)...)
	_ = s.handler.Handle(ctx, record)
}

// fieldAttrs expands the event's JSON object of fields into attributes, sorted by key.
// Unreadable JSON is kept whole as a `fields` string.
func fieldAttrs(fields string) []slog.Attr {
	decoder := json.NewDecoder(bytes.NewReader([]byte(fields)))
	decoder.UseNumber()
	var values map[string]any
	if err := decoder.Decode(&values); err != nil {
		return []slog.Attr{slog.String("fields", fields)}
	}

	keys := make([]string, 0, len(values))
	for key := range values {
		keys = append(keys, key)
	}
	sort.Strings(keys)

	attrs := make([]slog.Attr, 0, len(keys))
	for _, key := range keys {
		attrs = append(attrs, fieldAttr(key, values[key]))
	}
	return attrs
}

// fieldAttr keeps numbers as integers when they are, so that handlers see 42, not 42.0.
func fieldAttr(key string, value any) slog.Attr {
	switch v := value.(type) {
	case string:
		return slog.String(key, v)
	case bool:
		return slog.Bool(key, v)
	case json.Number:
		if n, err := v.Int64(); err == nil {
			return slog.Int64(key, n)
		}
		if n, err := strconv.ParseUint(v.String(), 10, 64); err == nil {
			return slog.Uint64(key, n)
		}
		if n, err := v.Float64(); err == nil {
			return slog.Float64(key, n)
		}
		return slog.String(key, v.String())
	default:
		return slog.Any(key, v)
	}
}
