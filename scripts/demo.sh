#!/usr/bin/env bash
# The main job on its embedded default: installs what is needed, builds
# oci-fs, starts a local registry, pushes a sample VM disk the project makes
# itself, and mounts it lazily (scripts/demo.py says each step as it runs it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target oci-fs
exec /usr/bin/python3 scripts/demo.py --oci-fs build/src/cli/oci-fs
