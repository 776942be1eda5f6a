#!/usr/bin/env bash
# The C harness of the oci-cache C ABI.
#
# Builds the library and the testbed (cargo, debug), checks that the header
# compiles alone as C99 and as C++11, builds every test program twice (as
# is, and with AddressSanitizer + LeakSanitizer + UBSan), starts a registry
# with the testbed, pushes the sample images, runs the SIGPIPE controls and
# every program, and prints one final line "N passed, N failed". The exit
# status is 0 only when nothing failed. Works from any directory.
#
#   tests/c/run.sh [-v]      -v: print every program's whole output
#
# Build products and logs go to tests/c/build (ignored by git); caches and
# the registry's storage go to a temporary directory removed at exit.
#
# To run one program by hand, give it what this script exports:
# OCI_CACHE_TEST_REGISTRY (host:port), OCI_CACHE_TEST_SAMPLE and
# OCI_CACHE_TEST_LARGE (the JSON lines of testbed push-sample), and
# optionally OCI_CACHE_TEST_TMP (where caches are made).

set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
build=$here/build
verbose=0
[[ ${1:-} == -v ]] && verbose=1

programs=(test_api test_fetch test_lifetimes test_cancel test_sigpipe)
cflags=(-std=c99 -Wall -Wextra -Wpedantic -Werror -g -I"$repo/include")
sanitize=(-fsanitize=address,undefined -fno-sanitize-recover=all
          -fno-omit-frame-pointer)
system_libs=(-lgcc_s -lutil -lrt -lpthread -lm -ldl)

passed=0
failed=0

pass() {
    passed=$((passed + 1))
    printf 'ok   %s\n' "$1"
}

fail() {
    failed=$((failed + 1))
    printf 'FAIL %s\n' "$1"
}

# Start a section of the output, with the time spent so far.
section() {
    printf '== %s (at %d s)\n' "$1" "$SECONDS"
}

# Print a file indented, for a failure's context.
show() {
    sed 's/^/     | /' "$1"
}

# ---- the library and the testbed --------------------------------------------

cd "$repo" || exit 1
target=$(realpath -m "${CARGO_TARGET_DIR:-target}")
library=$target/debug/liboci_cache.a
testbed=$target/debug/examples/testbed

section "cargo build, cargo build --examples"
if ! cargo build --quiet || ! cargo build --quiet --examples; then
    echo "FAIL cargo build"
    echo "0 passed, 1 failed"
    exit 1
fi

mkdir -p "$build/logs"
work=$(mktemp -d "${TMPDIR:-/tmp}/oci-cache-c-tests.XXXXXX")
export OCI_CACHE_TEST_TMP=$work

testbed_pid=
testbed_stdin=
stop_registry() {
    [[ -n $testbed_stdin ]] && exec {testbed_stdin}>&-
    testbed_stdin=
    if [[ -n $testbed_pid ]]; then
        # The testbed stops its registry when its standard input closes.
        for _ in $(seq 100); do
            kill -0 "$testbed_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill "$testbed_pid" 2>/dev/null
        wait "$testbed_pid" 2>/dev/null
        testbed_pid=
    fi
}
cleanup() {
    stop_registry
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- compiling --------------------------------------------------------------

section "compiling (logs in ${build#"$repo"/}/logs)"
rm -f "$build"/test_* "$build"/sigpipe_*

# Compilations run in the background, one per core; each leaves its exit
# status next to its log, and they are reported in order once all ended.
compilations=()
compile() { # name log command...
    local name=$1 log=$2
    shift 2
    while (($(jobs -rp | wc -l) >= $(nproc))); do
        wait -n
    done
    rm -f "$log.status"
    ("$@" >"$log" 2>&1; echo $? >"$log.status") &
    compilations+=("$name"$'\t'"$log")
}

compiled() { # log
    [[ $(cat "$1.status" 2>/dev/null) == 0 ]]
}

compile "the header alone as C99" "$build/logs/header_c99.log" \
    gcc "${cflags[@]}" -Wstrict-prototypes -fsyntax-only "$here/header_c99.c"
compile "the header alone as C++11" "$build/logs/header_cxx.log" \
    g++ -std=c++11 -Wall -Wextra -Wpedantic -Werror -I"$repo/include" \
    -fsyntax-only "$here/header_cxx.cpp"
for program in "${programs[@]}"; do
    sources=("$here/$program.c" "$here/harness.c" "$here/fixture.c")
    compile "build $program" "$build/logs/$program.build.log" \
        gcc "${cflags[@]}" -o "$build/$program" "${sources[@]}" \
        "$library" "${system_libs[@]}"
    compile "build $program (sanitizers)" \
        "$build/logs/$program-asan.build.log" \
        gcc "${cflags[@]}" "${sanitize[@]}" -o "$build/$program-asan" \
        "${sources[@]}" "$library" "${system_libs[@]}"
done
compile "build sigpipe_control" "$build/logs/sigpipe_control.build.log" \
    gcc "${cflags[@]}" -o "$build/sigpipe_control" "$here/sigpipe_control.c"
compile "build sigpipe_unblock.so" "$build/logs/sigpipe_unblock.build.log" \
    gcc "${cflags[@]}" -shared -fPIC -o "$build/sigpipe_unblock.so" \
    "$here/sigpipe_unblock.c" -ldl
wait

for compilation in "${compilations[@]}"; do
    name=${compilation%%$'\t'*}
    log=${compilation#*$'\t'}
    if compiled "$log"; then
        pass "$name"
    else
        fail "$name"
        show "$log"
    fi
done

built=()
for program in "${programs[@]}"; do
    compiled "$build/logs/$program.build.log" && built+=("$program")
    compiled "$build/logs/$program-asan.build.log" && built+=("$program-asan")
done

# ---- the registry and the sample images -------------------------------------

section "registry and sample images"
mkfifo "$work/testbed.stdin"
"$testbed" serve <"$work/testbed.stdin" >"$work/testbed.out" \
    2>"$build/logs/testbed.log" &
testbed_pid=$!
exec {testbed_stdin}>"$work/testbed.stdin"

host=
for _ in $(seq 300); do
    host=$(sed -n 's/.*"host":"\([^"]*\)".*/\1/p' "$work/testbed.out")
    [[ -n $host ]] && break
    kill -0 "$testbed_pid" 2>/dev/null || break
    sleep 0.1
done
if [[ -z $host ]]; then
    fail "start the registry (testbed serve)"
    show "$build/logs/testbed.log"
    echo "$passed passed, $failed failed"
    exit 1
fi
export OCI_CACHE_TEST_REGISTRY=$host
echo "     registry on $host"

push() { # variable repository args...
    local variable=$1 repository=$2 line
    shift 2
    if line=$("$testbed" push-sample --registry "$host" \
        --repository "$repository" "$@" 2>"$build/logs/push-$variable.log"); then
        export "$variable=$line"
        pass "push $repository $*"
    else
        fail "push $repository $*"
        show "$build/logs/push-$variable.log"
    fi
}
started=$SECONDS
push OCI_CACHE_TEST_SAMPLE c/sample --tag 1.0.0 --tag latest
push OCI_CACHE_TEST_LARGE c/large --tag 1.0.0 --large-mib 200
echo "     pushed in $((SECONDS - started)) s"

# ---- the SIGPIPE controls ---------------------------------------------------
#
# test_sigpipe passes when the process survives. These show that it could
# fail: the scenario raises SIGPIPE on this machine, and test_sigpipe dies of
# it once the library's protection (SIGPIPE blocked in its threads) is undone.
# env --default-signal gives SIGPIPE its default disposition even when this
# script was started with SIGPIPE ignored (an ignored signal is inherited).

expect_sigpipe() { # name log command...
    local name=$1 log=$2 status
    shift 2
    env --default-signal=PIPE "$@" >"$log" 2>&1
    status=$?
    if [[ $status -eq 141 ]]; then
        pass "$name died of SIGPIPE (status 141)"
    else
        fail "$name should die of SIGPIPE, exited with status $status"
        show "$log"
    fi
}

section "SIGPIPE controls"
if compiled "$build/logs/sigpipe_control.build.log"; then
    expect_sigpipe "control: a write to a reset socket, without the library" \
        "$build/logs/sigpipe_control.log" "$build/sigpipe_control"
fi
if compiled "$build/logs/test_sigpipe.build.log" &&
    compiled "$build/logs/sigpipe_unblock.build.log"; then
    # Only the build without sanitizers: ASan must be the first library.
    expect_sigpipe "control: test_sigpipe with SIGPIPE unblocked (LD_PRELOAD)" \
        "$build/logs/sigpipe_unblocked.log" \
        env LD_PRELOAD="$build/sigpipe_unblock.so" "$build/test_sigpipe"
fi

# ---- the programs -----------------------------------------------------------

# LeakSanitizer needs no suppressions: the library's never-freed runtime
# stays reachable from its globals, so any leak it reports is a real one.
export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

section "programs"
summary_pattern='^([0-9]+) passed, ([0-9]+) failed$'
for program in "${built[@]}"; do
    out=$build/logs/$program.out
    err=$build/logs/$program.err
    started=$(date +%s.%N)
    env --default-signal=PIPE "$build/$program" >"$out" 2>"$err"
    status=$?
    elapsed=$(awk -v a="$started" -v b="$(date +%s.%N)" \
        'BEGIN { printf "%.1f", b - a }')
    last=$(tail -n 1 "$out")

    if [[ $verbose -eq 1 ]]; then
        sed 's/^/     | /' "$out"
    else
        grep '^FAIL' "$out" | sed 's/^/     | /'
    fi

    if [[ $last =~ $summary_pattern ]]; then
        passed=$((passed + BASH_REMATCH[1]))
        failed=$((failed + BASH_REMATCH[2]))
        printf '     %-22s %s (%s s)\n' "$program" "$last" "$elapsed"
        if [[ $status -ne 0 && ${BASH_REMATCH[2]} -eq 0 ]]; then
            # A leak, a sanitizer report at exit, or a crash after the summary.
            fail "$program exited with status $status after its summary"
            show "$err"
        elif [[ -s $err && $status -ne 0 ]]; then
            show "$err"
        fi
    else
        fail "$program ended with status $status before its summary line"
        tail -n 5 "$out" | sed 's/^/     | /'
        show "$err"
    fi
done

stop_registry
echo "== done in $SECONDS s"
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
