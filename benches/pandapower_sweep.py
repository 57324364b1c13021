"""Every network of pandapower's `networks` module, imported as it is: does
`powergrid` take it, and does its base case match `pandapower.runpp`
(defaults, tolerance_mva=1e-10)? Writes one row per function (buses,
imported or the refusal's message, converged, iterations, worst |Δvm| p.u.,
|Δva| °, |Δline loading| pp, |Δtrafo loading| pp) and prints a Markdown table.

    cargo build --release
    venv/bin/python benches/pandapower_sweep.py --json docs/pandapower_networks.json

(a virtualenv with pandapower==3.5.6). Functions that need arguments are
listed as such. Where runpp's defaults do not converge, it is tried again with
`max_iteration=100` and `init="dc"`, and the row says so.
"""
import argparse
import inspect
import json
import pathlib
import subprocess
import tempfile
import time
import warnings

import numpy as np

warnings.filterwarnings("ignore")
ROOT = pathlib.Path(__file__).resolve().parent.parent
BIN = ROOT / "target" / "release" / "powergrid"
VARIANTS = {
    "create_cigre_network_mv(with_der='all')": lambda pn: pn.create_cigre_network_mv(with_der="all"),
    "create_cigre_network_mv(with_der='pv_wind')": lambda pn: pn.create_cigre_network_mv(with_der="pv_wind"),
    "mv_oberrhein(scenario='generation')": lambda pn: pn.mv_oberrhein(scenario="generation"),
}


def run_pp(pp, net):
    try:
        pp.runpp(net, tolerance_mva=1e-10)
        if net.converged:
            return "defaults"
    except Exception:
        pass
    try:
        pp.runpp(net, tolerance_mva=1e-10, max_iteration=100, init="dc")
        if net.converged:
            return "max_iteration=100, init=dc"
    except Exception:
        pass
    return None


def main():
    import pandapower as pp
    import pandapower.networks as pn

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json")
    ap.add_argument("names", nargs="*")
    a = ap.parse_args()
    fns = {n: (lambda f=f: f()) for n, f in inspect.getmembers(pn, inspect.isfunction)
           if f.__module__.startswith("pandapower.networks") and not n.startswith("_")}
    fns.update({k: (lambda v=v: v(pn)) for k, v in VARIANTS.items()})
    tmp = pathlib.Path(tempfile.mkdtemp())
    rows = []
    for name, make in fns.items():
        if a.names and name not in a.names:
            continue
        row = {"network": name}
        try:
            net = make()
        except TypeError as e:
            row["refused"] = f"needs arguments ({e})"[:160]
        if "refused" in row or not isinstance(net, pp.pandapowerNet):
            row.setdefault("refused", "not a network")
            rows.append(row)
            print(json.dumps(row), flush=True)
            continue
        row["buses"] = len(net.bus)
        path = tmp / "net.json"
        pp.to_json(net, str(path))
        out = tmp / "out.json"
        t = time.perf_counter()
        o = subprocess.run([str(BIN), "pf", "--network", str(path), "--output", str(out)],
                           capture_output=True, text=True)
        row["pf_s"] = round(time.perf_counter() - t, 2)
        if o.returncode != 0:
            row["refused"] = o.stderr.strip().splitlines()[-1].replace(str(path) + ": ", "")[:240]
            rows.append(row)
            print(json.dumps(row), flush=True)
            continue
        s = json.loads(out.read_text())["scenarios"][0]
        row.update(imported=True, converged=s["converged"], iterations=s["iterations"])
        how = run_pp(pp, net)
        row["pandapower"] = how or "not converged"
        if how and s["converged"]:
            r = s["results"]
            for key, tab, col in [("vm_pu", "res_bus", "vm_pu"), ("va_degree", "res_bus", "va_degree"),
                                  ("line_loading_percent", "res_line", "loading_percent"),
                                  ("trafo_loading_percent", "res_trafo", "loading_percent")]:
                x, y = np.array(r[key]), net[tab][col].fillna(0.0).values
                row["d_" + key] = float(np.max(np.abs(x - y))) if len(x) else 0.0
        rows.append(row)
        print(json.dumps(row), flush=True)
    print("\n| network | buses | powergrid | iterations | pandapower | max abs Δvm (p.u.) | Δva (°) | Δline loading (pp) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "refused" in r:
            print(f"| {r['network']} | {r.get('buses', '')} | refused: {r['refused']} | | | | | |")
            continue
        d = [f"{r[k]:.1e}" if k in r else "" for k in ("d_vm_pu", "d_va_degree", "d_line_loading_percent")]
        print(f"| {r['network']} | {r['buses']} | {'converged' if r['converged'] else 'not converged'} | "
              f"{r['iterations']} | {r['pandapower']} | {d[0]} | {d[1]} | {d[2]} |")
    if a.json:
        pathlib.Path(a.json).write_text(json.dumps({"rows": rows}, indent=1))


if __name__ == "__main__":
    main()
