"""Independent checks of `powergrid optimize`; writes check_output.json next to it.

1. pandapower: every hour of each plan is solved with pandapower 3.5.6 (Newton-Raphson,
   tolerance 1e-10 MVA) on the setup's network as the plan file writes it
   (`plan.network.yml`), and the voltages are compared with the OPF's `vm_pu`.
2. cvxpy: the plan's conic program with the integers fixed at the branch and
   bound's answer (`--export-conic`, Clarabel's standard form
   `min ½xᵀPx + qᵀx + c, A·x + s = b, s ∈ K`) is rebuilt in cvxpy and solved
   with ECOS and with cvxpy's Clarabel; the objective must match the Rust
   solve within 1e-5 relative.

Cases: the small case (one microgrid, tests/data/opf/small, 6 hours, day 0) and one
24-hour day of ieee34_ieee13 (test split, day 0); plus pandapower on
ieee34_ieee13_dso and ieee34_voltvar (test day 0, 24 hours, 60 s limit).

    cargo build --release
    /work/venv-pp/bin/python tests/data/opf/check_opf.py     # pandapower==3.5.6 cvxpy ecos clarabel pyyaml
"""
import json
import pathlib
import subprocess
import sys
import tempfile
import time

import cvxpy as cp
import numpy as np
import pandapower as pp
import scipy.sparse as sp

HERE = pathlib.Path(__file__).parent
ROOT = HERE.parents[2]
sys.path.insert(0, str(ROOT / "tests/data/env_step"))
from solve_with_pandapower import build  # noqa: E402

EXE = ROOT / "target/release/powergrid"

CASES = [
    dict(name="small", setup="tests/data/opf/small", split="train", day=0, hours=6, cvxpy=True),
    dict(name="ieee34_ieee13", setup="ieee34_ieee13", split="test", day=0, hours=24, cvxpy=True),
    dict(name="ieee34_ieee13_dso", setup="ieee34_ieee13_dso", split="test", day=0, hours=24, cvxpy=False),
    dict(name="ieee34_voltvar", setup="ieee34_voltvar", split="test", day=0, hours=24, cvxpy=False),
]


def optimize(case, tmp):
    plan = tmp / f"{case['name']}.json"
    conic = tmp / f"{case['name']}.conic.json"
    cmd = [str(EXE), "optimize", "--setup", case["setup"], "--split", case["split"], "--day", str(case["day"]),
           "--hours", str(case["hours"]), "--time-limit", "60", "--output", str(plan)]
    if case["cvxpy"]:
        cmd += ["--export-conic", str(conic)]
    subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True)
    return json.loads(plan.read_text()), plan.with_suffix(".network.yml"), conic


def pandapower_check(plan, net_yml):
    worst = (0.0, None, None)
    for h in plan["hours"]:
        net = build(net_yml.read_text())
        i = h["inputs"]
        net.load["p_mw"] = i["load_p_mw"]
        net.load["q_mvar"] = i["load_q_mvar"]
        net.load["scaling"] = i["load_scaling"]
        net.sgen["p_mw"] = i["sgen_p_mw"]
        net.sgen["q_mvar"] = i["sgen_q_mvar"]
        net.storage["p_mw"] = i["storage_p_mw"]
        if len(net.trafo):
            net.trafo["tap_pos"] = i["trafo_tap_pos"]
        if len(net.shunt):
            net.shunt["step"] = [int(round(s)) for s in i["shunt_step"]]
        pp.runpp(net, algorithm="nr", tolerance_mva=1e-10, max_iteration=50, calculate_voltage_angles=True)
        vm = net.res_bus.vm_pu.fillna(0.0).to_numpy()
        d = np.abs(vm - np.array(h["vm_pu"]))
        k = int(np.argmax(d))
        if d[k] > worst[0]:
            worst = (float(d[k]), h["hour"], k)
    return dict(max_vm_diff_pu=worst[0], worst_hour=worst[1], worst_bus=worst[2], hours=len(plan["hours"]))


def cvxpy_check(conic):
    d = json.loads(conic.read_text())
    n, m = d["n"], d["m"]
    A = sp.csr_matrix(([v for _, _, v in d["A"]], ([r for r, _, _ in d["A"]], [c for _, c, _ in d["A"]])), shape=(m, n))
    b = np.array(d["b"])
    q = np.array(d["q"])
    pdiag = np.zeros(n)
    for r, c, v in d["P"]:
        assert r == c, "the model's P is diagonal"
        pdiag[r] += v
    x = cp.Variable(n)
    s = b - A @ x
    cons = []
    row = 0
    for kind, dim in d["cones"]:
        if kind == "zero":
            cons.append(s[row:row + dim] == 0)
        elif kind == "nonneg":
            cons.append(s[row:row + dim] >= 0)
        elif kind == "soc":
            cons.append(cp.SOC(s[row], s[row + 1:row + dim]))
        else:
            raise ValueError(kind)
        row += dim
    assert row == m
    nz = np.nonzero(pdiag)[0]
    obj = 0.5 * cp.sum(cp.multiply(pdiag[nz], cp.square(x[nz]))) + q @ x + d["c"]
    prob = cp.Problem(cp.Minimize(obj), cons)
    out = dict(n=n, m=m, rust_clarabel=d["objective"], rust_status=d["status"])
    for solver in ["ECOS", "CLARABEL"]:
        t = time.time()
        kw = dict(abstol=1e-9, reltol=1e-9, feastol=1e-9, max_iters=500) if solver == "ECOS" else {}
        try:
            v = prob.solve(solver=solver, **kw)
            out[solver.lower()] = dict(objective=v, status=prob.status, seconds=time.time() - t,
                                       rel_diff=abs(v - d["objective"]) / max(abs(d["objective"]), 1.0))
        except Exception as e:  # report, don't hide
            out[solver.lower()] = dict(error=str(e))
    return out


def main():
    results = {}
    with tempfile.TemporaryDirectory() as t:
        tmp = pathlib.Path(t)
        for case in CASES:
            plan, net_yml, conic = optimize(case, tmp)
            r = dict(status=plan["status"], objective=plan["objective"], gap=plan["gap"], nodes=plan["nodes"],
                     solve_seconds=plan["solve_seconds"])
            r["pandapower"] = pandapower_check(plan, net_yml)
            if case["cvxpy"]:
                r["cvxpy"] = cvxpy_check(conic)
            results[case["name"]] = r
            print(case["name"], json.dumps(r), flush=True)
    results["versions"] = dict(pandapower=pp.__version__, cvxpy=cp.__version__)
    (HERE / "check_output.json").write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
