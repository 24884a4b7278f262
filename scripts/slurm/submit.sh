#!/bin/bash
# Submits an experiment as a Slurm job array of N shards plus the job that collects, reports and
# (with --baseline) checks the results once every task has succeeded:
#
#   scripts/slurm/submit.sh [--only LIST] [--baseline FILE] SPEC N [RESULTS]
#
#   RESULTS   results directory (default results/<spec name>): shard-<i>/ bundles, fpdm.sqlite,
#             report/, logs/ (the jobs' output: logs/fpdm-shard-<job>_<task>.out, logs/fpdm-collect-<job>.out)
#   --only    re-submit only these tasks (e.g. 1,3 or 2-5): they resume; the collect job is queued again
#   --baseline FILE   run `fpdm-exp check --baseline FILE` after the report
#
# Run it from the directory SPEC and RESULTS are relative to (the jobs start there). Resources, partition,
# account: edit the #SBATCH lines of run-shards.sbatch and collect.sbatch, or set SBATCH_PARTITION,
# SBATCH_ACCOUNT, SBATCH_TIMELIMIT, SBATCH_MEM_PER_NODE, SBATCH_GRES; FPDM_EXP and FPDM_BACKEND as
# described in run-shards.sbatch. If a task fails, the collect job is cancelled (its dependency can no
# longer be met); re-submit the failed tasks with --only.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
only=''
baseline=''
while (( $# > 0 )); do
  case $1 in
    --only) only=${2:?--only needs a list of task indices, e.g. 1,3}; shift 2 ;;
    --baseline) baseline=${2:?--baseline needs a file}; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    --*) echo "submit.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) break ;;
  esac
done
if (( $# < 2 || $# > 3 )); then
  echo "usage: scripts/slurm/submit.sh [--only LIST] [--baseline FILE] SPEC N [RESULTS]" >&2
  exit 2
fi
spec=$1
shards=$2
name=$(basename "$spec")
results=${3:-results/${name%%.*}}
if ! [[ $shards =~ ^[1-9][0-9]*$ ]]; then
  echo "submit.sh: N must be a positive number of shards, got '$shards'" >&2
  exit 2
fi
if [[ ! -f $spec ]]; then
  echo "submit.sh: spec '$spec' does not exist" >&2
  exit 2
fi
if [[ -n $baseline && ! -f $baseline ]]; then
  echo "submit.sh: baseline '$baseline' does not exist" >&2
  exit 2
fi
mkdir -p "$results/logs" # Slurm does not create the directories of --output

array=$(sbatch --parsable --array="${only:-0-$((shards - 1))}" --export=ALL,FPDM_SHARDS="$shards" \
  --output="$results/logs/%x-%A_%a.out" "$here/run-shards.sbatch" "$spec" "$results")
array=${array%%;*}
collect=$(sbatch --parsable --dependency=afterok:"$array" --kill-on-invalid-dep=yes \
  --output="$results/logs/%x-%j.out" "$here/collect.sbatch" "$results" ${baseline:+"$baseline"})
collect=${collect%%;*}
echo "array job $array (shards ${only:-0-$((shards - 1))} of $shards), collect job $collect; results in $results, logs in $results/logs"
echo "watch: squeue -j $array,$collect"
