package ocicache_test

import (
	"context"
	"log/slog"
	"testing"

	ocicache "oci-cache/bindings/go"
)

func TestLibraryLogsReachTheSlogHandler(t *testing.T) {
	pushed := pushSample(t, repositoryFor(t))
	logs := &recordingHandler{}
	cache := openCache(t, ocicache.WithLogger(slog.New(logs)))

	image, err := cache.Fetch(context.Background(), pushed.reference("1.0.0"))
	if err != nil {
		t.Fatal(err)
	}

	for _, layer := range image.Layers {
		records := logs.find("layer cache", "digest", layer.Digest)
		if len(records) == 0 {
			t.Errorf("no \"layer cache\" record for %s", layer.Digest)
			continue
		}
		r := records[0]
		if r.Level != slog.LevelDebug || attr(r, "outcome") != "miss" || attr(r, "target") == "" {
			t.Errorf("record %q at %v: outcome %q, target %q; want DEBUG, miss and a target",
				r.Message, r.Level, attr(r, "outcome"), attr(r, "target"))
		}
	}
	if len(logs.find("layer cache", "outcome", "")) == 0 {
		t.Errorf("no record carries an outcome attribute")
	}
}

func TestLoggerLevelChoosesTheEventsSent(t *testing.T) {
	pushed := pushSample(t, repositoryFor(t))
	logs := &levelFilter{recordingHandler: &recordingHandler{}, min: slog.LevelInfo}
	cache := openCache(t, ocicache.WithLogger(slog.New(logs)))

	if _, err := cache.Fetch(context.Background(), pushed.reference("1.0.0")); err != nil {
		t.Fatal(err)
	}

	logs.mu.Lock()
	defer logs.mu.Unlock()
	if len(logs.records) == 0 {
		t.Errorf("no INFO record for a completed fetch")
	}
	for _, r := range logs.records {
		if r.Level < slog.LevelInfo {
			t.Errorf("an INFO logger received %v %q", r.Level, r.Message)
		}
	}
}

// levelFilter records only from min up, and tells the library so through Enabled.
type levelFilter struct {
	*recordingHandler
	min slog.Level
}

func (h *levelFilter) Enabled(_ context.Context, level slog.Level) bool { return level >= h.min }
