#!/usr/bin/env bash
# The test command: installs what is needed, builds twice (release with
# -Werror, and AddressSanitizer + UndefinedBehaviorSanitizer) and runs every
# test in both builds through CTest. CTest runs $(nproc) test programs at once:
# each pytest file is isolated (its own registries, ports, temporary root and
# mount-state directory), and every test must pass on a busy machine anyway.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
jobs=$(nproc)

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DOCIFS_WERROR=ON >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure --timeout 900 -j"$jobs")

cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DOCIFS_WERROR=ON -DOCIFS_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --output-on-failure --timeout 900 -j"$jobs")
