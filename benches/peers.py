"""Power flows per second per core: `powergrid bench pf` next to lightsim2grid
and pandapower, measured in one run on the same machine.

Workload, the same for all three: every step draws each load's and sgen's P
and Q as the base case times 1 + u, u uniform in ±3 %, and solves to 1e-8
MVA, warm-started from the previous step's solution.

- powergrid: `target/release/powergrid bench pf --network NET --batch 1024`
  with RAYON_NUM_THREADS=1 (one core; the whole batch of 1,024 copies), and
  its plan-build time.
- lightsim2grid: its C++ Newton-Raphson with KLU (`ac_pf`), one grid model,
  one power flow after another; only the `ac_pf` call is timed (the Python
  calls that change the loads are not). Bus-bus switches are fused first
  and the other switches dropped (lightsim2grid ignores switches: open line
  switches close, so its answer can differ from pandapower's; the row's
  `base_max_dvm_vs_pandapower` says by how much). Flat start, or
  pandapower's solution where lightsim2grid does not converge from flat.
- pandapower: `runpp` (Newton-Raphson, numba when installed), a few solves
  (it takes milliseconds each); `init="results"` warm starts.

Usage (a virtualenv with pandapower==3.5.6 and lightsim2grid; `cargo build
--release` first):

    python benches/peers.py                          # the shipped feeders
    python benches/peers.py --pandapower case118 case300   # pandapower.networks by name
    python benches/peers.py --json docs/peers.json
    python benches/peers.py --networks --batch 64 --pandapower case1354pegase case9241pegase \
        --json docs/peers_large.json                 # the large cases (docs/peers_large.json)

Rerun it on a quiet machine: the ratios are what it is for, and they are
only meaningful when the three run under the same load.
"""

import argparse
import copy
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

warnings.filterwarnings("ignore")
ROOT = pathlib.Path(__file__).resolve().parent.parent
BIN = ROOT / "target" / "release" / "powergrid"
SHIPPED = ["ieee13", "ieee34", "ieee123", "cigre_lv", "ieee34_ieee13"]


def load_net(name):
    import pandapower as pp
    import pandapower.networks as pn

    path = ROOT / "tests" / "data" / "pandapower" / f"{name}.json"
    if path.exists():
        return pp.from_json(str(path)), path
    net = getattr(pn, name)()
    tmp = pathlib.Path(tempfile.gettempdir()) / f"powergrid_peers_{name}.json"
    pp.to_json(net, str(tmp))
    return net, tmp


def perturbations(net, steps, seed=7):
    rng = np.random.default_rng(seed)
    n_l, n_s = len(net.load), len(net.sgen)
    return [
        (
            rng.uniform(0.97, 1.03, n_l),
            rng.uniform(0.97, 1.03, n_l),
            rng.uniform(0.97, 1.03, n_s),
            rng.uniform(0.97, 1.03, n_s),
        )
        for _ in range(steps)
    ]


def ours(path, seconds, batch=1024):
    env = dict(os.environ, RAYON_NUM_THREADS="1")
    out = subprocess.run(
        [str(BIN), "bench", "pf", "--network", str(path), "--batch", str(batch),
         "--seconds", str(seconds), "--json", "--backend", "cpu"],
        capture_output=True, text=True, env=env)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr else "failed"}
    r = json.loads(out.stdout)
    return {
        "pf_per_s_per_core": r["power_flows_per_s_per_thread"],
        "mean_iterations": r["mean_iterations"],
        "plan_build_s": r.get("plan_build_s"),
        "variant": r.get("variant"),
        "psi": r.get("psi"),
        "converged_fraction": r["converged_fraction"],
        "batch": batch,
    }


def fuse_switches(net):
    import pandapower as pp

    net = copy.deepcopy(net)
    bb = net.switch[(net.switch.et == "b")]
    for _, s in bb[bb.closed].iterrows():
        if s.bus in net.bus.index and s.element in net.bus.index:
            pp.toolbox.fuse_buses(net, s.bus, [s.element])
    net.switch = net.switch.iloc[0:0]
    return net


def lightsim(net, seconds):
    import pandapower as pp
    from lightsim2grid.gridmodel import init_from_pandapower

    net = fuse_switches(net)
    pp.runpp(net)
    model = init_from_pandapower(net)
    v_start = "flat"
    v = np.asarray(model.ac_pf(np.ones(len(net.bus), dtype=complex) * 1.0, 30, 1e-8))
    if v.size == 0:
        # Flat start fails on some networks (several ext_grids, large meshed
        # cases): start from pandapower's solution instead.
        v_start = "pandapower's solution"
        vm = net.res_bus.vm_pu.fillna(1.0).values
        va = np.deg2rad(net.res_bus.va_degree.fillna(0.0).values)
        v = np.asarray(model.ac_pf((vm * np.exp(1j * va)).astype(complex), 30, 1e-8))
    if v.size == 0:
        return {"error": "lightsim2grid did not converge on the base case (flat start or from pandapower's solution)"}
    # How far its base case is from pandapower's (switches fused, open ones dropped).
    dvm = float(np.nanmax(np.abs(np.abs(v) - net.res_bus.vm_pu.values)))
    base = (net.load.p_mw.values * net.load.scaling.values, net.load.q_mvar.values * net.load.scaling.values,
            net.sgen.p_mw.values * net.sgen.scaling.values, net.sgen.q_mvar.values * net.sgen.scaling.values)
    sets = perturbations(net, 64)
    solved, spent, fails, k = 0, 0.0, 0, 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or solved < 10:
        fl_p, fl_q, fs_p, fs_q = sets[k % len(sets)]
        k += 1
        for i in range(len(base[0])):
            model.change_p_load(i, base[0][i] * fl_p[i])
            model.change_q_load(i, base[1][i] * fl_q[i])
        for i in range(len(base[2])):
            model.change_p_sgen(i, base[2][i] * fs_p[i])
            model.change_q_sgen(i, base[3][i] * fs_q[i])
        t = time.perf_counter()
        res = model.ac_pf(v, 30, 1e-8)
        spent += time.perf_counter() - t
        res = np.asarray(res)
        if res.size == 0:
            fails += 1
        else:
            v = res
        solved += 1
    return {"pf_per_s_per_core": solved / spent, "failed": fails, "solves": solved, "start": v_start,
            "base_max_dvm_vs_pandapower": dvm}


def pandapower_rate(net, seconds):
    import pandapower as pp

    net = copy.deepcopy(net)
    base = (net.load.p_mw.values.copy(), net.load.q_mvar.values.copy(),
            net.sgen.p_mw.values.copy(), net.sgen.q_mvar.values.copy())
    pp.runpp(net, tolerance_mva=1e-8)
    sets = perturbations(net, 16)
    solved, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or solved < 3:
        fl_p, fl_q, fs_p, fs_q = sets[solved % len(sets)]
        net.load.p_mw, net.load.q_mvar = base[0] * fl_p, base[1] * fl_q
        net.sgen.p_mw, net.sgen.q_mvar = base[2] * fs_p, base[3] * fs_q
        pp.runpp(net, tolerance_mva=1e-8, init="results")
        solved += 1
    return {"pf_per_s_per_core": solved / (time.perf_counter() - start), "solves": solved}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--networks", nargs="*", default=SHIPPED, help="shipped networks (networks/NAME.yml)")
    ap.add_argument("--pandapower", nargs="*", default=[], help="pandapower.networks functions, e.g. case118")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--batch", type=int, default=1024,
                    help="powergrid copies per batch (fewer for the large cases: 64 copies of case9241pegase take 0.4 GB)")
    ap.add_argument("--json", help="write the table as JSON here")
    a = ap.parse_args()
    if not BIN.exists():
        sys.exit(f"{BIN} not found: run `cargo build --release` first")
    rows = []
    for name in list(a.networks) + list(a.pandapower):
        net, pp_path = load_net(name)
        ours_path = ROOT / "networks" / f"{name}.yml"
        if not ours_path.exists():
            ours_path = pp_path
        row = {"network": name, "buses": len(net.bus)}
        row["powergrid"] = ours(ours_path, a.seconds, a.batch)
        try:
            row["lightsim2grid"] = lightsim(net, a.seconds)
        except Exception as e:  # a peer that cannot take the network is a row, not a crash
            row["lightsim2grid"] = {"error": f"{type(e).__name__}: {e}"[:200]}
        row["pandapower"] = pandapower_rate(net, min(a.seconds, 2.0))
        rows.append(row)
        print(json.dumps(row), flush=True)
    load = os.getloadavg()
    print("\n| network | buses | plan build (s) | powergrid pf/s per core | iterations | lightsim2grid pf/s | pandapower pf/s | vs lightsim2grid |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        o, l, p = r["powergrid"], r["lightsim2grid"], r["pandapower"]
        ratio = (o.get("pf_per_s_per_core", 0) / l["pf_per_s_per_core"]) if "pf_per_s_per_core" in l and "pf_per_s_per_core" in o else float("nan")
        print(f"| {r['network']} | {r['buses']} | {o.get('plan_build_s', float('nan')):.3f} | "
              f"{o.get('pf_per_s_per_core', float('nan')):,.0f} | {o.get('mean_iterations', float('nan')):.1f} | "
              f"{l.get('pf_per_s_per_core', float('nan')):,.0f} | {p['pf_per_s_per_core']:,.1f} | {ratio:.1f}× |")
    print(f"\nload average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if a.json:
        cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
        pathlib.Path(a.json).write_text(json.dumps({"rows": rows, "loadavg": load, "cpu": cpu, "cores": os.cpu_count(),
                                                    "args": sys.argv[1:]}, indent=1))


if __name__ == "__main__":
    main()
