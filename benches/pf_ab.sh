#!/usr/bin/env bash
# Two builds of `powergrid` on `bench pf` (lane kernel, one thread, 1,024
# copies, 1.5 s per run) for the five shipped networks, run in turn; prints
# each build's best and median power flows per second and their ratio.
#
#   benches/pf_ab.sh OLD_BIN NEW_BIN          # R=5 rounds by default
#   R=8 benches/pf_ab.sh /tmp/pg_before target/release/powergrid
set -euo pipefail
if [ $# -ne 2 ]; then
  sed -n '2,7p' "$0"
  exit 2
fi
R=${R:-5}
OLD=$1
NEW=$2
for n in ieee13 ieee34 ieee123 cigre_lv ieee34_ieee13; do
  o=()
  w=()
  for _ in $(seq "$R"); do
    for b in "$OLD" "$NEW"; do
      x=$(RAYON_NUM_THREADS=1 "$b" bench pf --network "$n" --batch 1024 --seconds 1.5 --json 2>/dev/null |
        python3 -c "import json,sys; d=json.load(sys.stdin); print(int(d['power_flows_per_s']), round(d['mean_iterations'], 2))")
      if [ "$b" = "$OLD" ]; then o+=("$x"); else w+=("$x"); fi
    done
  done
  python3 - "$n" "${o[@]}" "::" "${w[@]}" <<'PY'
import sys, statistics as st
n = sys.argv[1]; a = sys.argv[2:]; i = a.index("::")
o = [x.split() for x in a[:i]]; w = [x.split() for x in a[i + 1:]]
ov = [int(x[0]) for x in o]; wv = [int(x[0]) for x in w]
print(f"{n}: old best {max(ov):,} median {int(st.median(ov)):,} | new best {max(wv):,} median {int(st.median(wv)):,}"
      f" | median ratio {st.median(wv) / st.median(ov):.2f} | mean iterations {o[0][1]} / {w[0][1]}")
PY
done
uptime
