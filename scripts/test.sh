#!/usr/bin/env bash
# The test command: installs what is needed, builds twice and runs every test
# in both builds through CTest:
#   build/       release (-O2) with -Werror;
#   build-asan/  AddressSanitizer + UndefinedBehaviorSanitizer with -Werror,
#                assertions on (CMake's Debug type) but compiled with -Og, which
#                costs no more to compile than -O0 and runs the tests faster.
# Both builds keep -g1 (line tables: backtraces and sanitizer reports name
# files and lines) instead of full -g, which doubles compile and link time, and
# link with mold when it is installed (install-deps.sh installs it).
# CTest runs $(nproc) test programs at once, the longest first (each test's
# COST in tests/CMakeLists.txt): each pytest file is isolated (its own
# registries, ports, temporary root and mount-state directory), and every test
# must pass on a busy machine anyway.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
jobs=$(nproc)

common=(-DOCIFS_WERROR=ON)
if command -v mold >/dev/null 2>&1; then
  common+=(-DCMAKE_EXE_LINKER_FLAGS=-fuse-ld=mold -DCMAKE_SHARED_LINKER_FLAGS=-fuse-ld=mold)
fi

cmake -S . -B build "${common[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG" >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure --timeout 900 -j"$jobs")

cmake -S . -B build-asan "${common[@]}" -DCMAKE_BUILD_TYPE=Debug -DOCIFS_SANITIZE=ON \
  -DCMAKE_CXX_FLAGS_DEBUG="-Og -g1" >/dev/null
cmake --build build-asan -j"$jobs"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --output-on-failure --timeout 900 -j"$jobs")
