#!/usr/bin/env bash
# The test command: installs what is needed, builds twice and runs every test
# in both builds through CTest:
#   build/       release (-O2) with -Werror;
#   build-asan/  AddressSanitizer + UndefinedBehaviorSanitizer with -Werror,
#                assertions on (CMake's Debug type) but compiled with -Og, which
#                costs no more to compile than -O0 and runs the tests faster.
# Both builds keep -g1 (line tables: backtraces and sanitizer reports name
# files and lines) instead of full -g, which doubles compile and link time,
# link with mold when it is installed (install-deps.sh installs it), and are
# unity builds (OCIFS_UNITY: 8 files a translation unit, libraries and test
# programs), which parse the heavy headers (Catch2, spdlog, gRPC) once per
# batch (from scratch, no ccache, 2026-12-06: release 816 CPU s, ASan 961 CPU
# s; the test programs' objects 410 -> 307 CPU s in release; linking with mold
# ~5 s of either; Catch2's main alone 30 s). A plain cmake build stays file by file
# (OCIFS_UNITY's default), so a unity-only problem (two files of one target
# defining the same file-local name) fails here, not for a user.
# The release tests run while the ASan build compiles, twice as many at once
# as there are cores: most tests spend their time waiting (on registries,
# FUSE, timeouts), not on the CPU (the release suite: ~320 CPU seconds in
# ~600 s of wall time). The ASan tests, which use the CPU more, run $(nproc)
# at once. CTest starts the longest first (each test's COST in
# tests/CMakeLists.txt): each pytest file is isolated (its own registries,
# ports, temporary root and mount-state directory), and every test must pass
# on a busy machine anyway.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
jobs=$(nproc)
release_test_jobs=$((2 * jobs))

common=(-DOCIFS_WERROR=ON -DOCIFS_UNITY=ON)
if command -v mold >/dev/null 2>&1; then
  common+=(-DCMAKE_EXE_LINKER_FLAGS=-fuse-ld=mold -DCMAKE_SHARED_LINKER_FLAGS=-fuse-ld=mold)
fi

cmake -S . -B build "${common[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG" >/dev/null
cmake --build build -j"$jobs"

# The release tests in the background (their output goes to a log, printed
# when they end), the ASan build in the foreground; a failed ASan build still
# waits for the release tests, so no test is left running.
(cd build && exec ctest --output-on-failure --timeout 900 -j"$release_test_jobs") > build/ctest.log 2>&1 &
release_tests=$!
asan_build=0
{
  cmake -S . -B build-asan "${common[@]}" -DCMAKE_BUILD_TYPE=Debug -DOCIFS_SANITIZE=ON \
    -DCMAKE_CXX_FLAGS_DEBUG="-Og -g1" >/dev/null &&
  cmake --build build-asan -j"$jobs"
} || asan_build=$?
release_rc=0
wait "$release_tests" || release_rc=$?
echo "== release tests (build/ctest.log)"
cat build/ctest.log
if [ "$release_rc" -ne 0 ] || [ "$asan_build" -ne 0 ]; then
  echo "test.sh: release tests exit $release_rc, ASan build exit $asan_build" >&2
  exit 1
fi

echo "== ASan/UBSan tests"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --output-on-failure --timeout 900 -j"$jobs")
