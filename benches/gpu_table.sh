#!/usr/bin/env bash
# Issue 11's GPU table in one run, for a machine with a real GPU:
#   - `bench pf --backend gpu` on ieee13, ieee123 and ieee34_ieee13 at 1,024,
#     16,384, 65,536 and 262,144 copies (the largest also in 2 chunks, and
#     driven from $THREADS host threads);
#   - `bench pf --backend cpu` on every core at 65,536 copies beside it (the
#     GPU/CPU ratio of the same machine);
#   - `rollout` of ieee34_ieee13 at 16,384 and 65,536 copies (1 and 2 chunks,
#     and $THREADS host threads).
# A run's tag: what, backend, network, copies, chunks, host threads.
# Every run's JSON goes to $DIR/gpu_table.jsonl; a markdown table to stdout
# (host: our code's CPU time; wait: blocked on the device; kernel: the
# device's compute passes by timestamp queries; the rest of the wait is
# transfers and scheduling).
#
#   benches/gpu_table.sh [BIN]                 # BIN: target/release/powergrid
#   BATCHES="1024 4096" ENVS="1024" STEPS=4 benches/gpu_table.sh   # a small trial (lavapipe)
# DIR (default $OUT, else .), SECONDS_PER (bench pf seconds, default 1),
# STEPS (rollout steps, default 16), THREADS (--gpu-threads of the threaded
# runs, default 8).
set -uo pipefail
BIN=${1:-target/release/powergrid}
DIR=${DIR:-${OUT:-.}}
BATCHES=${BATCHES:-"1024 16384 65536 262144"}
ENVS=${ENVS:-"16384 65536"}
STEPS=${STEPS:-16}
SECONDS_PER=${SECONDS_PER:-1}
THREADS=${THREADS:-8}
cd "$(dirname "$0")/.."
log="$DIR/gpu_table.jsonl"
: >"$log"
largest=${BATCHES##* }
run() { # tag, command...
  local tag=$1
  shift
  local t0=$SECONDS
  if out=$(timeout 300 "$@" --json 2>"$DIR/stderr.txt"); then
    python3 -c 'import json,sys; d=json.loads(sys.argv[2]); d["tag"]=sys.argv[1]; print(json.dumps(d))' "$tag" "$out" >>"$log"
  else
    echo "{\"tag\": \"$tag\", \"error\": $(python3 -c 'import json,sys; print(json.dumps(open(sys.argv[1]).read()[-400:]))' "$DIR/stderr.txt")}" >>"$log"
  fi
  echo "$tag: $((SECONDS - t0)) s" >&2
}
for n in ieee13 ieee123 ieee34_ieee13; do
  for b in $BATCHES; do
    run "pf gpu $n $b 1 1" "$BIN" bench pf --backend gpu --network "networks/$n.yml" --batch "$b" --seconds "$SECONDS_PER"
  done
  for kt in "2 1" "1 $THREADS"; do
    set -- $kt
    run "pf gpu $n $largest $1 $2" "$BIN" bench pf --backend gpu --network "networks/$n.yml" --batch "$largest" --seconds "$SECONDS_PER" --gpu-chunks "$1" --gpu-threads "$2"
  done
  run "pf cpu $n 65536 - -" "$BIN" bench pf --backend cpu --network "networks/$n.yml" --batch 65536 --seconds "$SECONDS_PER"
done
for e in $ENVS; do
  for kt in "1 1" "2 1" "1 $THREADS"; do
    set -- $kt
    run "rollout gpu $e $1 $2" "$BIN" rollout --setup ieee34_ieee13 --envs "$e" --steps "$STEPS" --backend gpu --gpu-chunks "$1" --gpu-threads "$2"
  done
done
python3 - "$log" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(f"device: {next((r['backend'] for r in rows if 'backend' in r and r['backend'].startswith('gpu')), '?')}")
print("\n| run | power flows/s | mean iterations | host µs/copy | wait µs/copy | kernel µs/copy | read back B/copy |")
print("|---|---|---|---|---|---|---|")
cpu = {}
for r in rows:
    t = r["tag"]
    if "error" in r:
        print(f"| {t} | error: {r['error'][-120:].strip()!r} | | | | | |")
        continue
    if t.startswith("pf"):
        h = r.get("host_us_per_copy") or {}
        f = lambda x, p: "–" if x is None else f"{x:.{p}f}"
        print(f"| {t} | {r['power_flows_per_s']:,.0f} | {r['mean_iterations']:.2f} | "
              f"{f(h.get('host'), 3)} | {f(h.get('wait'), 3)} | {f(h.get('kernel'), 3)} | "
              f"{f(r.get('readback_bytes_per_copy'), 0)} |")
        if t.startswith("pf cpu"):
            cpu[t.split()[2]] = r["power_flows_per_s"]
print("\n| rollout | env-steps/s | host µs/copy/env-step (solves) | whole step host | kernel | read back B/copy/env-step | mean reward |")
print("|---|---|---|---|---|---|---|")
for r in rows:
    if r["tag"].startswith("rollout") and "error" not in r:
        h = r.get("power_flow_host_us_per_env_step") or {}
        print(f"| {r['tag']} | {r['env_steps_per_s']:,.0f} | {h.get('host', 0):.3f} | "
              f"{h.get('step_host', 0):.3f} | {h.get('kernel', 0):.3f} | {h.get('readback_bytes', 0):.0f} | {r['mean_reward']:.6f} |")
print("\nGPU/CPU (all cores, 65,536 copies):")
for r in rows:
    t = r["tag"].split()
    if r["tag"].startswith("pf gpu") and "error" not in r and t[2] in cpu:
        print(f"  {t[2]} at {t[3]} copies, {t[4]} chunk(s), {t[5]} host thread(s): {r['power_flows_per_s'] / cpu[t[2]]:.3g}x")
PY
