#!/usr/bin/env bash
# Runs an experiment spec on a many-core machine as n shards (one bundle each under DIR/shards/i),
# with extra worker processes per shard that wait for its training and share its sampling runs
# (claiming is atomic, so no run is done twice). Every process stops after LIMIT seconds (the runs
# stay resumable); re-running the same command continues them.
#   bash scripts/gpu/shards.sh SPEC DIR N WORKERS LIMIT [fpdm-exp command...]
# The fpdm-exp command defaults to `npx fpdm-exp`; on the GPU machine: node $APP/src/cli/run.mjs
set -uo pipefail
spec=$1 dir=$2 n=$3 workers=$4 limit=$5
shift 5
cmd=("$@")
[ ${#cmd[@]} -eq 0 ] && cmd=(npx fpdm-exp)
for ((i = 0; i < n; i++)); do
  mkdir -p "$dir/shards/$i"
  for ((w = 0; w < workers; w++)); do
    (timeout -k 15 "$limit" "${cmd[@]}" --backend wasm run "$spec" --shard "$i/$n" --db "$dir/shards/$i/fpdm.sqlite" \
      --progress plain >> "$dir/shards/$i/worker-$w.log" 2>&1; echo "exit $?" >> "$dir/shards/$i/worker-$w.log") &
    sleep 1
  done
done
wait
