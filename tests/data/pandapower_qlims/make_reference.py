"""pandapower's `enforce_q_lims=True` (`runpp(net, enforce_q_lims=True,
tolerance_mva=1e-10)`, its other defaults): each gen whose Q leaves its
limits is held there and its bus becomes a PQ bus (all violators at once,
until none is left). Writes `<name>.json` (pandapower) and
`<name>.reference.json` (`pf` reference format with `gen_p_mw`/`gen_vm_pu`
inputs, `gen_p_mw`/`gen_q_mvar` results and `gen_held`: 1 for a gen that
pandapower holds at a limit — its Q equal to `min_q_mvar` or `max_q_mvar`
to 1e-9 Mvar — else 0).

    python3 -m venv venv && venv/bin/pip install pandapower==3.5.6
    venv/bin/python tests/data/pandapower_qlims/make_reference.py

- `case118`: pandapower.networks' case118 as it is (limits bind on both sides).
- `case300`: pandapower.networks' case300 with the limits of the gens that its
  own solution (enforce_q_lims=False) violates moved 90 % of the way towards
  that Q (they still bind): with its limits as they are runpp does not
  converge with enforce_q_lims=True (NR, 10 or 50 iterations), nor with them
  moved 10 %; moved 50 % it fails at 1.02 × load. Milder load changes.
- `qlims`: handcrafted: a meshed 110 kV net with two gens at one bus (different
  ranges), a gen at the ext_grid's bus with limits (pandapower holds it at its
  limit, the ext_grid takes the rest), a gen with only `max_q_mvar` (NaN
  min: pandapower's −1e9), a gen with both limits 0, a gen without limits, a
  gen behind a trafo, shunts; load scalings from 0.2 to 1.6 so that the
  copies hold different gens (min side at light load, max side at heavy load).
"""
import json
import logging
import pathlib
import sys

import numpy as np
import pandapower as pp
import pandapower.networks as pn

logging.disable(logging.WARNING)
HERE = pathlib.Path(__file__).parent
sys.path.insert(0, str(HERE.parent))
import pp_reference  # noqa: E402  (tests/data/pp_reference.py)

TABLES = {
    **pp_reference.TABLES,
    "gen_p_mw": ("res_gen", "p_mw"),
    "gen_q_mvar": ("res_gen", "q_mvar"),
}


def case118():
    return pn.case118()


def case300():
    # Q of the gens without limits on a copy (a net with results present
    # would start runpp from them below).
    free = pn.case300()
    pp.runpp(free, tolerance_mva=1e-10)
    q0 = free.res_gen.q_mvar.values
    net = pn.case300()
    hi = net.gen.max_q_mvar.values.copy()
    lo = net.gen.min_q_mvar.values.copy()
    above, below = q0 > hi, q0 < lo
    hi[above] += 0.9 * (q0[above] - hi[above])
    lo[below] += 0.9 * (q0[below] - lo[below])
    net.gen["max_q_mvar"] = hi
    net.gen["min_q_mvar"] = lo
    net.name = "case300 (limits eased)"
    return net


def qlims():
    net = pp.create_empty_network(name="qlims", sn_mva=10.0)
    b = [pp.create_bus(net, 110.0, name=f"HV{i}") for i in range(6)]
    m = [pp.create_bus(net, 20.0, name=f"MV{i}") for i in range(3)]
    pp.create_ext_grid(net, b[0], vm_pu=1.02, va_degree=0.0, name="grid")
    for f, t, km in [(0, 1, 20), (1, 2, 15), (2, 3, 25), (3, 0, 30), (1, 3, 18), (3, 4, 12), (4, 5, 10),
                     (5, 2, 22)]:
        pp.create_line_from_parameters(net, b[f], b[t], km, 0.06, 0.4, 10, 0.6, name=f"HV{f}-HV{t}")
    pp.create_transformer_from_parameters(
        net, b[1], m[0], sn_mva=40, vn_hv_kv=110, vn_lv_kv=20, vkr_percent=0.3, vk_percent=12, pfe_kw=20,
        i0_percent=0.05, tap_side="hv", tap_neutral=0, tap_min=-9, tap_max=9, tap_step_percent=1.5, tap_pos=1,
        tap_changer_type="Ratio", name="T HV1/MV0")
    for f, t, km in [(0, 1, 4), (1, 2, 3)]:
        pp.create_line_from_parameters(net, m[f], m[t], km, 0.12, 0.35, 250, 0.4, name=f"MV{f}-MV{t}")
    # A gen at the ext_grid's bus with limits.
    pp.create_gen(net, b[0], p_mw=5.0, vm_pu=1.02, min_q_mvar=-15, max_q_mvar=4, name="G at slack")
    # Two gens at one bus, different Q ranges.
    pp.create_gen(net, b[2], p_mw=20.0, vm_pu=1.03, min_q_mvar=-5, max_q_mvar=40, name="G2a")
    pp.create_gen(net, b[2], p_mw=10.0, vm_pu=1.03, min_q_mvar=-5, max_q_mvar=20, name="G2b")
    # Only an upper limit.
    pp.create_gen(net, b[3], p_mw=15.0, vm_pu=1.025, max_q_mvar=35, name="G3 max only")
    # Both limits 0 (held at Q = 0 whenever its Q is not 0).
    pp.create_gen(net, b[5], p_mw=4.0, vm_pu=1.01, min_q_mvar=0, max_q_mvar=0, name="G5 zero range")
    # No limits.
    pp.create_gen(net, b[4], p_mw=6.0, vm_pu=1.015, name="G4 free")
    # Behind the trafo.
    pp.create_gen(net, m[2], p_mw=3.0, vm_pu=1.0, min_q_mvar=-1.0, max_q_mvar=2.5, name="G MV2")
    pp.create_shunt(net, b[4], q_mvar=3.0, p_mw=0.02, name="C4")
    pp.create_shunt(net, b[5], q_mvar=-4.0, p_mw=0.0, name="L5")
    for bus, p in [(b[1], 30.0), (b[2], 14.0), (b[3], 25.0), (b[4], 18.0), (b[5], 8.0), (m[0], 4.0),
                   (m[1], 3.0), (m[2], 2.5)]:
        pp.create_load(net, bus, p, 0.35 * p)
    return net


NETWORKS = {"case118": case118, "case300": case300, "qlims": qlims}
SCALINGS = {"case118": [1.0, 0.9, 1.1, 0.8], "case300": [1.0, 0.98, 1.02, 0.99],
            "qlims": [1.0, 0.2, 0.5, 0.8, 1.2, 1.4, 1.6]}


def held(net):
    q = net.res_gen.q_mvar.values
    hi = net.gen.max_q_mvar.fillna(1e9).values
    lo = net.gen.min_q_mvar.fillna(-1e9).values
    return ((np.abs(q - hi) <= 1e-9) | (np.abs(q - lo) <= 1e-9)).astype(float).tolist()


for name, make in NETWORKS.items():
    net = make()
    pp.to_json(net, str(HERE / f"{name}.json"))
    base_scaling = net.load.scaling.copy()
    base_p = net.gen.p_mw.copy()
    scenarios = []
    for k, f in enumerate(SCALINGS[name]):
        net.load.scaling = base_scaling * f
        try:
            pp.runpp(net, enforce_q_lims=True, tolerance_mva=1e-10)
            converged = bool(net.converged)
        except pp.powerflow.LoadflowNotConverged:
            converged = False
        results = {key: pp_reference.nan0(net[t][col]) for key, (t, col) in TABLES.items()} if converged else {}
        if converged:
            results["gen_held"] = held(net)
        scenarios.append({
            "id": k, "converged": converged,
            "inputs": {"load_scaling": net.load.scaling.tolist(), "gen_p_mw": net.gen.p_mw.tolist(),
                       "gen_vm_pu": net.gen.vm_pu.tolist()},
            "results": results,
        })
        print(name, f, "converged" if converged else "FAILED",
              "held:", [i for i, x in enumerate(results.get("gen_held", [])) if x])
        if name == "qlims" and converged:
            print("   q:", np.round(net.res_gen.q_mvar.values, 3).tolist())
    (HERE / f"{name}.reference.json").write_text(json.dumps({
        "network": f"{name}.json",
        "solver": f"pandapower {pp.__version__} runpp enforce_q_lims=True, tolerance_mva=1e-10",
        "n_bus": len(net.bus),
        "scenarios": scenarios,
    }))
