#!/usr/bin/env bash
# Two builds of `powergrid` on the GPU backend's host time (what our code
# spends per copy outside the wait on the device, by phase), run in turn:
# `bench pf --backend gpu` on ieee123 (1,024 copies, new set-points every
# solve) and the 16-step `rollout` of ieee34_ieee13 (1,024 copies, control
# re-solves included). Prints every run, then each build's medians.
#
#   benches/gpu_host_ab.sh OLD_BIN NEW_BIN    # R=4 rounds by default
#   WGPU_BACKEND=vulkan WGPU_ADAPTER_NAME=llvmpipe benches/gpu_host_ab.sh /tmp/pg_before target/release/powergrid
set -euo pipefail
if [ $# -ne 2 ]; then
  sed -n '2,9p' "$0"
  exit 2
fi
R=${R:-4}
cd "$(dirname "$0")/.."
out=$(mktemp)
for r in $(seq "$R"); do
  for b in "$1" "$2"; do
    "$b" bench pf --backend gpu --network networks/ieee123.yml --batch 1024 --seconds 3 --json 2>/dev/null |
      python3 -c "import json,sys; d=json.load(sys.stdin); print(json.dumps({'bin': '$b', 'what': 'bench_pf', 'host': d['host_us_per_copy'], 'per_s': d['power_flows_per_s']}))" | tee -a "$out"
    "$b" rollout --setup ieee34_ieee13 --envs 1024 --steps 16 --backend gpu --json 2>/dev/null |
      python3 -c "import json,sys; d=json.load(sys.stdin); print(json.dumps({'bin': '$b', 'what': 'rollout', 'host': d['power_flow_host_us_per_env_step'], 'per_s': d['env_steps_per_s'], 'reward': d['mean_reward']}))" | tee -a "$out"
  done
done
python3 - "$out" "$1" "$2" <<'PY'
import json, sys, statistics as st
rows = [json.loads(l) for l in open(sys.argv[1])]
for what in ('bench_pf', 'rollout'):
    print(f'{what}: medians, µs per copy{" and env-step" if what == "rollout" else ""}')
    for b in sys.argv[2:]:
        rs = [r for r in rows if r['bin'] == b and r['what'] == what]
        keys = ('host', 'prepare', 'upload', 'submit', 'unpack', 'check')
        line = ' '.join(f'{k} {st.median(r["host"][k] for r in rs):.2f}' for k in keys)
        print(f'  {b}: {line}; per s {st.median(r["per_s"] for r in rs):.0f}')
PY
rm -f "$out"
