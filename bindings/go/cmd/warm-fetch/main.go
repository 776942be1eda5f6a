// Command warm-fetch measures warm fetches through the Go binding, in one process, for the
// benchmark suite (benches/bench.py): it opens a cache, fetches REFERENCE once (expected to be
// cached already; not counted), then N more times, and prints one JSON line with the median and
// the 90th percentile of the per-call time in microseconds.
//
//	warm-fetch CACHE_DIR REFERENCE N
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"time"

	ocicache "oci-cache/bindings/go"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: warm-fetch CACHE_DIR REFERENCE N")
		os.Exit(2)
	}
	calls, err := strconv.Atoi(os.Args[3])
	if err != nil || calls <= 0 {
		fmt.Fprintln(os.Stderr, "warm-fetch: N must be a positive number")
		os.Exit(2)
	}
	if err := measure(os.Args[1], os.Args[2], calls); err != nil {
		fmt.Fprintln(os.Stderr, "warm-fetch:", err)
		os.Exit(1)
	}
}

func measure(dir, reference string, calls int) error {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	cache, err := ocicache.Open(dir, ocicache.WithLogger(quiet))
	if err != nil {
		return err
	}
	defer cache.Close()

	ctx := context.Background()
	image, err := cache.Fetch(ctx, reference)
	if err != nil {
		return err
	}

	image.Release()

	times := make([]float64, calls)
	for i := range times {
		start := time.Now()
		if image, err = cache.Fetch(ctx, reference); err != nil {
			return err
		}
		times[i] = float64(time.Since(start).Nanoseconds()) / 1e3
		// Outside the measured time: a runner releases its image once the step has run.
		image.Release()
	}

	sort.Float64s(times)
	return json.NewEncoder(os.Stdout).Encode(map[string]any{
		"calls":     calls,
		"median_us": times[calls/2],
		"p90_us":    times[calls*9/10],
		"outcome":   image.Cache,
	})
}
