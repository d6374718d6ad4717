#!/bin/bash
# The benchmark, one command:
#
#   bench/run.sh [--quick] [--record-trace] [bench/run.py options...]
#
# Builds (or reuses) the disk and layers in bench/work/ (make-disk.sh), builds the replay
# tool, records bench/boot-trace.csv if it is missing (or with --record-trace), then runs
# every scenario (run.py) and prints the table. Results: bench/work/results/<date>/
# (results.json, results.md, bytes-vs-time.png, proxy.log, console/).
# --quick: a 64 MiB disk, no debootstrap, no boots; under a minute; what the test suite runs.
# Needs root (loop device for extlinux, FUSE exports) and bench/install-deps.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
quick=0
record=0
args=()
for a in "$@"; do
  case $a in
    --quick) quick=1; args+=("$a") ;;
    --record-trace) record=1 ;;
    *) args+=("$a") ;;
  esac
done

for c in qemu-img nbdkit skopeo docker-registry zstd qemu-storage-daemon /usr/bin/time; do
  command -v "$c" >/dev/null || { echo "bench: $c missing: run bench/install-deps.sh" >&2; exit 77; }
done
if [[ $quick == 0 ]]; then
  for c in debootstrap qemu-system-x86_64 extlinux; do
    command -v "$c" >/dev/null || { echo "bench: $c missing: run bench/install-deps.sh" >&2; exit 77; }
  done
fi

mkdir -p "$here/work"
# The raw disk's layer (--layers ...raw-gzip...) is built only for a run that uses it.
if [[ " $* " == *raw-gzip* ]]; then export BENCH_RAW_LAYER=1; fi
# So is the KubeVirt VM export's disk (--layers ...kubevirt...): the raw disk as one zstd frame.
if [[ " $* " == *kubevirt* ]]; then export BENCH_KUBEVIRT_LAYER=1; fi
# And the zstd:chunked layer (--layers ...zstd-chunked...), which buildah builds and pushes.
if [[ " $* " == *zstd-chunked* ]]; then export BENCH_ZSTD_CHUNKED_LAYER=1; fi
if [[ $quick == 1 ]]; then "$here/make-disk.sh" --quick; else "$here/make-disk.sh"; fi
if [[ ! -x $here/work/replay || $here/replay.cc -nt $here/work/replay ]]; then
  g++ -O2 -std=c++20 -pthread -Wall "$here/replay.cc" -o "$here/work/replay"
fi
# The trace belongs to one disk (a new debootstrap lays files out elsewhere): re-record it
# when the disk's qcow2 is not the one boot-trace.json names.
disk_id() {
  /usr/bin/python3 -c 'import sys; sys.path.insert(0, sys.argv[1]); import benchlib as b
print(b.sha256_file(b.Path(sys.argv[2])))' "$here" "$here/work/full/disk.qcow2"
}
if [[ $quick == 0 && $record == 0 && -f $here/boot-trace.json ]] &&
   ! grep -q "\"$(disk_id)\"" "$here/boot-trace.json"; then
  echo "bench: bench/work/full/disk.qcow2 is not the disk boot-trace.csv was recorded on: re-recording" >&2
  record=1
fi
if [[ $quick == 0 && ( $record == 1 || ! -f $here/boot-trace.csv ) ]]; then
  echo "bench: recording the boot trace (qemu TCG through nbdkit's log filter)" >&2
  /usr/bin/python3 "$here/boot.py" "$here/work/full/disk.raw" --trace "$here/boot-trace.csv" \
    --console "$here/work/full/trace-console.log" >"$here/work/full/boot.json"
  /usr/bin/python3 - "$here" <<'PY'
import json, subprocess, sys
here = sys.argv[1]
boot = json.load(open(f"{here}/work/full/boot.json"))
stats = json.loads(subprocess.run(["/usr/bin/python3", f"{here}/trace_stats.py", f"{here}/boot-trace.csv",
                                   f"{here}/work/full/disk.qcow2"], check=True, capture_output=True).stdout)
loadavg = open("/proc/loadavg").read().split()[:3]
sys.path.insert(0, here)
import benchlib
disk = benchlib.sha256_file(benchlib.Path(f"{here}/work/full/disk.qcow2"))
json.dump({"disk_qcow2_sha256": disk, "boot": boot, "qcow2": stats, "loadavg_after": loadavg}, open(f"{here}/boot-trace.json", "w"), indent=1)
PY
  cat "$here/boot-trace.json"
fi
exec /usr/bin/python3 "$here/run.py" "${args[@]}"
