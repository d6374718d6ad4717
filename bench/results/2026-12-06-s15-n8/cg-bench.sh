#!/bin/bash
# usage: cg-bench.sh TAG N [perf]   (run from the worktree; OCIFS_BIN set by caller)
tag=$1; n=$2; prof=${3:-}
cg=/sys/fs/cgroup/unified/s15n8-$tag-$$
mkdir $cg
echo $$ > $cg/cgroup.procs
up0=$(uptime)
if [[ -n $prof ]]; then
  perf record -a -g -F 499 -o /tmp/s15-n8/perf-$tag.data -- bench/run.sh --only concurrent --concurrent $n --out /tmp/s15-n8/cg-$tag --scratch /tmp/s15-n8-scratch > /tmp/s15-n8/cg-$tag.log 2>&1
else
  bench/run.sh --only concurrent --concurrent $n --out /tmp/s15-n8/cg-$tag --scratch /tmp/s15-n8-scratch > /tmp/s15-n8/cg-$tag.log 2>&1
fi
echo "$tag n=$n $(grep -E 'usage_usec|user_usec|system_usec' $cg/cpu.stat | tr '\n' ' ') before: $up0 after: $(uptime)"
python3 -c "
import json;d=json.load(open('/tmp/s15-n8/cg-$tag/results.json'))
r=d['rows'] if isinstance(d,dict) and 'rows' in d else d
for x in r: print(x['scenario'], x['seconds'], x.get('trace_seconds'), x['fetched_bytes'], x.get('pss_mib'))"
echo $$ > /sys/fs/cgroup/unified/cgroup.procs
rmdir $cg
