#!/usr/bin/env python3
"""The benchmark suite: oci-cache against the tools users would run instead, in one run.

Against a real registry on loopback (Debian's docker-registry, started by the test bed), with
a large image of files of many sizes pushed in a gzip and a zstd variant, it measures:

- cold fetch: oci-cache (release CLI), `skopeo copy` + `umoci unpack`, and a shell pipeline
  that downloads every layer at once with curl, hashes it, decompresses it and untars it into
  its own directory (an estimate of the machine's limit for this work);
- peak resident memory of the cold oci-cache fetch;
- warm fetch of an immutable reference: through the C ABI and through the Go binding in one
  process (per call), and through the CLI (per process), with the registry's request count;
- warm fetch of a mutable tag: the same three ways, with the request count.

Figures are medians over several runs; comparisons are ratios taken in the same run, because
the machine is shared and noisy. The table is printed and written as JSON.

    scripts/bench [--mib 300] [--runs 3] [--warm-runs 20] [--out target/bench/results.json]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RELEASE = ROOT / "target" / "release"
CLI = RELEASE / "oci-cache"
TESTBED = RELEASE / "examples" / "testbed"


def run(args, **kwargs):
    """Run a command, failing loudly with its output."""
    result = subprocess.run(args, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        sys.exit(f"bench: {' '.join(map(str, args))} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def build():
    run(["cargo", "build", "--release", "--bin", "oci-cache", "--example", "testbed", "--lib"],
        cwd=ROOT)
    run(["go", "build", "-tags", "ocicache_release", "-o", str(RELEASE / "warm_fetch_go"),
         "./cmd/warm-fetch"], cwd=ROOT / "bindings" / "go")
    program = RELEASE / "warm_fetch"
    run(["gcc", "-O2", "-std=c99", "-Wall", "-Wextra", "-Werror", "-I", str(ROOT / "include"),
         str(ROOT / "benches" / "warm_fetch.c"), str(RELEASE / "liboci_cache.a"),
         "-lgcc_s", "-lutil", "-lrt", "-lpthread", "-lm", "-ldl", "-o", str(program)])
    return program


class Registry:
    """A docker-registry on loopback for the length of the run."""

    def __init__(self):
        self.process = subprocess.Popen([TESTBED, "serve"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
        started = json.loads(self.process.stdout.readline())
        self.host, self.log = started["host"], Path(started["log"])

    def requests(self, repository):
        """Access-log lines of requests under /v2/<repository>/ so far."""
        time.sleep(0.1)
        lines = self.log.read_text(errors="replace").splitlines()
        return [line for line in lines if f" /v2/{repository}/" in line]

    def stop(self):
        self.process.stdin.close()
        self.process.wait(timeout=30)


def timed(args, cwd=None):
    """Wall seconds and peak resident memory (KiB) of one command, through GNU time."""
    with tempfile.NamedTemporaryFile("r") as report:
        run(["/usr/bin/time", "-f", "%e %M", "-o", report.name, *map(str, args)], cwd=cwd)
        seconds, kib = report.read().split()
    return float(seconds), int(kib)


def cold_oci_cache(reference, scratch):
    cache = scratch / "oci-cache"
    seconds, kib = timed([CLI, "fetch", "--cache-dir", cache, reference])
    shutil.rmtree(cache)
    return seconds, kib


def cold_skopeo_umoci(reference, scratch):
    layout, bundle = scratch / "layout", scratch / "bundle"
    start = time.monotonic()
    run(["skopeo", "copy", "--quiet", "--src-tls-verify=false", f"docker://{reference}",
         f"oci:{layout}:bench"])
    run(["umoci", "unpack", "--image", f"{layout}:bench", str(bundle)])
    seconds = time.monotonic() - start
    shutil.rmtree(layout)
    shutil.rmtree(bundle)
    return seconds


PIPELINE = r"""
set -euo pipefail
manifest=$(curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "http://$HOST/v2/$REPO/manifests/$TAG")
for digest in $(jq -r '.layers[].digest' <<<"$manifest"); do
    dir="$OUT/${digest#sha256:}"
    mkdir -p "$dir"
    (
        curl -sf "http://$HOST/v2/$REPO/blobs/$digest" \
            | tee >(sha256sum | cut -d' ' -f1 > "$dir.sum") \
            | $DECOMPRESS | tar -x -C "$dir"
        wait
        [ "sha256:$(cat "$dir.sum")" = "$digest" ] || { echo "bad digest $digest" >&2; exit 1; }
    ) &
done
wait
"""


def cold_shell(reference, compression, scratch):
    host, rest = reference.split("/", 1)
    repository, tag = rest.rsplit(":", 1)
    out = scratch / "shell"
    out.mkdir()
    decompress = {"gzip": "gzip -dc", "zstd": "zstd -dc"}[compression]
    env = dict(os.environ, HOST=host, REPO=repository, TAG=tag, OUT=str(out),
               DECOMPRESS=decompress)
    start = time.monotonic()
    run(["bash", "-c", PIPELINE], env=env)
    seconds = time.monotonic() - start
    shutil.rmtree(out)
    return seconds


def warm_cli(reference, cache, registry, repository, runs):
    """Median ms per CLI process, and requests per fetch."""
    before = len(registry.requests(repository))
    times = []
    for _ in range(runs):
        start = time.monotonic()
        run([CLI, "fetch", "--cache-dir", cache, reference])
        times.append((time.monotonic() - start) * 1000)
    requests = (len(registry.requests(repository)) - before) / runs
    return statistics.median(times), requests


def warm_abi(program, reference, cache, registry, repository, calls):
    """Median and p90 µs per call in one process (the C or the Go program), and requests per
    call."""
    before = len(registry.requests(repository))
    report = json.loads(run([program, cache, reference, str(calls)]))
    requests = (len(registry.requests(repository)) - before) / (calls + 1)
    return report["median_us"], report["p90_us"], requests


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=300, help="size of the large image's files")
    parser.add_argument("--runs", type=int, default=3, help="runs of each cold fetch")
    parser.add_argument("--warm-runs", type=int, default=20, help="CLI runs of each warm fetch")
    parser.add_argument("--calls", type=int, default=1000, help="C ABI calls of each warm fetch")
    parser.add_argument("--out", type=Path, default=ROOT / "target" / "bench" / "results.json")
    args = parser.parse_args()

    program = build()
    registry = Registry()
    results = {"date": time.strftime("%Y-%m-%d"), "machine": machine(), "mib": args.mib}
    try:
        measure(args, program, registry, results)
    finally:
        registry.stop()

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)
    print(f"\nwritten to {args.out}")


def measure(args, program, registry, results):
    for compression in ("gzip", "zstd"):
        repository = f"bench/large-{compression}"
        pushed = json.loads(run([TESTBED, "push-large", "--registry", registry.host,
                                 "--repository", repository, "--tag", "1.0.0",
                                 "--mib", str(args.mib), "--compression", compression]))
        reference = pushed["reference"]
        cold = {"oci-cache": [], "skopeo+umoci": [], "shell": [], "rss_kib": []}
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory(dir=ROOT / "target") as scratch:
                scratch = Path(scratch)
                seconds, kib = cold_oci_cache(reference, scratch)
                cold["oci-cache"].append(seconds)
                cold["rss_kib"].append(kib)
                # Debian's umoci (0.4) cannot unpack zstd layers: no comparison there.
                if compression == "gzip":
                    cold["skopeo+umoci"].append(cold_skopeo_umoci(reference, scratch))
                cold["shell"].append(cold_shell(reference, compression, scratch))
        medians = {name: statistics.median(values) for name, values in cold.items() if values}
        results[f"cold_{compression}"] = {
            "blob_bytes": sum(layer["size"] for layer in pushed["layers"]),
            "tar_bytes": sum(layer["tar_size"] for layer in pushed["layers"]),
            "median_s": {k: v for k, v in medians.items() if k != "rss_kib"},
            "runs_s": {k: v for k, v in cold.items() if k != "rss_kib" and v},
            "peak_rss_mib": max(cold["rss_kib"]) / 1024,
            "ratio_to_shell": medians["oci-cache"] / medians["shell"],
            "ratio_to_skopeo_umoci": (
                medians["oci-cache"] / medians["skopeo+umoci"]
                if "skopeo+umoci" in medians
                else None
            ),
        }

    with tempfile.TemporaryDirectory(dir=ROOT / "target") as cache:
        for kind, tags in (("immutable", ["1.0.0"]), ("mutable", ["latest"])):
            repository = f"bench/warm-{kind}"
            run([TESTBED, "push-sample", "--registry", registry.host, "--repository", repository,
                 *[arg for tag in tags for arg in ("--tag", tag)]])
            reference = f"{registry.host}/{repository}:{tags[0]}"
            run([CLI, "fetch", "--cache-dir", cache, reference])
            cli_ms, cli_requests = warm_cli(reference, cache, registry, repository, args.warm_runs)
            abi_us, abi_p90, abi_requests = warm_abi(program, reference, cache, registry,
                                                     repository, args.calls)
            go_us, go_p90, go_requests = warm_abi(RELEASE / "warm_fetch_go", reference, cache,
                                                  registry, repository, args.calls)
            results[f"warm_{kind}"] = {
                "c_abi_median_ms": abi_us / 1000, "c_abi_p90_ms": abi_p90 / 1000,
                "c_abi_requests_per_call": abi_requests,
                "go_median_ms": go_us / 1000, "go_p90_ms": go_p90 / 1000,
                "go_requests_per_call": go_requests,
                "cli_median_ms": cli_ms, "cli_requests_per_run": cli_requests,
            }


def machine():
    cpus = os.cpu_count()
    memory = Path("/proc/meminfo").read_text().split()[1]
    return f"{cpus} cores, {int(memory) // (1024 * 1024)} GiB, {os.uname().release}"


def print_table(results):
    print(f"\noci-cache benchmarks, {results['date']}, {results['machine']}, "
          f"large image of {results['mib']} MiB of files")

    def row(label, value, digits):
        print(f"{label:<48} {value:>12.{digits}f}")

    for compression in ("gzip", "zstd"):
        cold = results[f"cold_{compression}"]
        for tool, seconds in cold["median_s"].items():
            row(f"cold {compression}, {tool} (median s)", seconds, 2)
        row(f"cold {compression}, oci-cache / shell", cold["ratio_to_shell"], 2)
        if cold["ratio_to_skopeo_umoci"] is not None:
            row(f"cold {compression}, oci-cache / skopeo+umoci", cold["ratio_to_skopeo_umoci"], 2)
        else:
            print(f"{'cold ' + compression + ', skopeo+umoci':<48} {'n/a':>12}  (umoci: no zstd)")
        row(f"cold {compression}, oci-cache peak RSS (MiB)", cold["peak_rss_mib"], 1)
    for kind in ("immutable", "mutable"):
        warm = results[f"warm_{kind}"]
        row(f"warm {kind}, C ABI per call (median ms)", warm["c_abi_median_ms"], 3)
        row(f"warm {kind}, C ABI requests per call", warm["c_abi_requests_per_call"], 2)
        row(f"warm {kind}, Go binding per call (median ms)", warm["go_median_ms"], 3)
        row(f"warm {kind}, Go binding requests per call", warm["go_requests_per_call"], 2)
        row(f"warm {kind}, CLI per process (median ms)", warm["cli_median_ms"], 1)
        row(f"warm {kind}, CLI requests per run", warm["cli_requests_per_run"], 2)


if __name__ == "__main__":
    main()
