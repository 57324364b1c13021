#!/usr/bin/env bash
# Two or more builds of `powergrid` on the same rollout, run in turn so that
# every build sees the same phases of a noisy machine; prints each build's
# median, best and every figure (env-steps/s) and its mean reward.
#
#   benches/rollout_ab.sh ROUNDS BIN_A BIN_B [BIN ...] [-- ROLLOUT ARGS]
#   benches/rollout_ab.sh 8 /tmp/pg_before target/release/powergrid
#   benches/rollout_ab.sh 5 /tmp/pg_before target/release/powergrid -- --setup ieee34_ieee13 --envs 1024 --backend cpu
#
# Without rollout arguments: `--backend cpu` (the default setup, 1,024 copies,
# 96 steps, random policy). Keep a copy of the old binary (cp
# target/release/powergrid /tmp/pg_before) before rebuilding.
set -euo pipefail
if [ $# -lt 3 ]; then
  sed -n '2,12p' "$0"
  exit 2
fi
rounds=$1
shift
bins=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
  bins+=("$1")
  shift
done
[ "${1:-}" = "--" ] && shift
args=("$@")
[ ${#args[@]} -eq 0 ] && args=(--backend cpu)
for _ in $(seq "$rounds"); do
  for b in "${bins[@]}"; do
    "$b" rollout "${args[@]}" --json 2>/dev/null |
      python3 -c "import json,sys; d=json.load(sys.stdin); print(sys.argv[1], int(d['env_steps_per_s']), repr(round(d['mean_reward'], 9)))" "$b"
  done
done | python3 -c "
import sys, statistics as st, collections
runs, reward = collections.defaultdict(list), {}
for line in sys.stdin:
    b, x, r = line.split()
    runs[b].append(int(x))
    reward[b] = r
for b, v in runs.items():
    print(f'{b}: median {int(st.median(v)):,} best {max(v):,} env-steps/s, mean reward {reward[b]}, all {v}')
"
uptime
