#!/usr/bin/env bash
# Install what is missing, build, and run the whole test suite (unit + integration against
# real PostgreSQL servers the tests start themselves). Works on a fresh Debian 12 as root or
# with sudo.
# Usage: scripts/test.sh [--asan] [--fuzz SECONDS] [--static] [ctest args...]
#   --asan          also build and run the suite under AddressSanitizer + UBSan
#   --fuzz SECONDS  also build the libFuzzer targets with clang and run each that long
#   --static        also build dist/pgentry (scripts/build-static.sh) and run it in an empty
#                   root (tests/static/empty_root.sh; needs root)
set -euo pipefail
cd "$(dirname "$0")/.."

asan=0
fuzz=0
static=0
args=()
while [ $# -gt 0 ]; do
    case "$1" in
    --asan) asan=1 ;;
    --fuzz) fuzz=$2; shift ;;
    --static) static=1 ;;
    *) args+=("$1") ;;
    esac
    shift
done

scripts/install-deps.sh build test
jobs=$(nproc)

echo "== format check (clang-format)"
files=$(git ls-files 'src/*.c' 'include/*.h' 'tests/*.c' 'tests/*.h' 'fuzz/*.c' 'bench/*.c' 2>/dev/null || true)
[ -n "$files" ] && clang-format --dry-run --Werror $files

echo "== build (warnings are errors)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"
echo "== tests"
ctest --test-dir build --output-on-failure "${args[@]}"

if [ "$asan" = 1 ]; then
    echo "== build and tests under ASan + UBSan"
    cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DPGENTRY_SANITIZE=ON >/dev/null
    cmake --build build-asan -j"$jobs"
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp \
        ctest --test-dir build-asan --output-on-failure "${args[@]}"
fi

if [ "$fuzz" != 0 ]; then
    echo "== fuzz targets, ${fuzz}s each"
    CC=clang cmake -S . -B build-fuzz -DPGENTRY_FUZZ=ON >/dev/null
    cmake --build build-fuzz -j"$jobs" >/dev/null
    for f in build-fuzz/fuzz/fuzz_*; do
        [ -x "$f" ] || continue
        echo "-- $f"
        "$f" -max_total_time="$fuzz" -print_final_stats=0 >/dev/null 2>build-fuzz/"$(basename "$f")".log ||
            { tail -40 build-fuzz/"$(basename "$f")".log; exit 1; }
    done
fi
if [ "$static" = 1 ]; then
    echo "== static build and the empty-root test"
    scripts/build-static.sh
    tests/static/empty_root.sh dist/pgentry
fi
echo "== all tests passed"
