"""Networks with pandapower's `gen` (PV buses), with pandapower's solutions
(`runpp` with its defaults, tolerance_mva=1e-10): the base case, load
scalings, and one scenario that moves every gen's P and (away from the
ext_grid buses) its voltage set-point (milder for case300). Writes `<name>.json` (pandapower) and
`<name>.reference.json` (`pf` reference format, with `gen_p_mw`/`gen_vm_pu`
inputs and `gen_p_mw`/`gen_q_mvar` results).

    python3 -m venv venv && venv/bin/pip install pandapower==3.5.6
    venv/bin/python tests/data/pandapower_gen/make_reference.py

- `multivoltage_gen`: pandapower's `example_multivoltage` as it is (its gen
  "Gas turbine", 100 MW at 1.03 p.u.) with each `xward` replaced by a `ward`
  with the same ps/qs/pz/qz.
- `gens`: handcrafted: a meshed 110 kV part, two gens at one bus with
  different Q ranges (Q split in proportion), a gen at the ext_grid's bus, a
  gen at a bus with a load, a shunt and an sgen, gens at different vm_pu, a
  gen behind a trafo on an MV feeder, an out-of-service gen (other vm_pu) at
  a PV bus, a gen at an out-of-service bus, a gen with scaling, and two gens at
  buses joined by a closed bus-bus switch.
- `case118`, `case300`: pandapower.networks' IEEE cases (gen, ext_grid, line,
  trafo with taps, load, shunt, sgen).
- `multivoltage_full`: `example_multivoltage` exactly as pandapower ships it
  (its gen and its two xwards).
- `xwards`: handcrafted: a meshed 20 kV net with xwards at a PQ bus, at the
  ext_grid's bus, at a PV bus (with a gen), out of service and at an
  out-of-service bus.
"""
import json
import pathlib
import sys

import numpy as np
import pandapower as pp
import pandapower.networks as pn

HERE = pathlib.Path(__file__).parent
sys.path.insert(0, str(HERE.parent))
import pp_reference  # noqa: E402  (tests/data/pp_reference.py)
SCALINGS = [1.0, 0.5, 0.8, 1.2]

# The shared tables (tests/data/pp_reference.py) and the gens' results.
TABLES = {
    **pp_reference.TABLES,
    "gen_p_mw": ("res_gen", "p_mw"),
    "gen_q_mvar": ("res_gen", "q_mvar"),
}


def multivoltage_gen():
    net = pn.example_multivoltage()
    for x in net.xward.index:
        pp.create_ward(net, net.xward.bus.at[x], ps_mw=net.xward.ps_mw.at[x], qs_mvar=net.xward.qs_mvar.at[x],
                       pz_mw=net.xward.pz_mw.at[x], qz_mvar=net.xward.qz_mvar.at[x],
                       name=f"{net.xward.name.at[x]} (was an xward)")
    net.xward.drop(net.xward.index, inplace=True)
    net.name = "multivoltage_gen"
    return net


def gens():
    net = pp.create_empty_network(name="gens", sn_mva=10.0)
    b = [pp.create_bus(net, 110.0, name=f"HV{i}") for i in range(5)]
    m = [pp.create_bus(net, 20.0, name=f"MV{i}") for i in range(4)]
    pp.create_ext_grid(net, b[0], vm_pu=1.02, va_degree=2.0, name="grid")
    # Meshed 110 kV part: ring 0-1-2-3-0, chord 1-3, spur 3-4.
    for f, t, km in [(0, 1, 20), (1, 2, 15), (2, 3, 25), (3, 0, 30), (1, 3, 18), (3, 4, 12)]:
        pp.create_line_from_parameters(net, b[f], b[t], km, 0.06, 0.4, 10, 0.6, name=f"HV{f}-HV{t}")
    pp.create_transformer_from_parameters(
        net, b[1], m[0], sn_mva=40, vn_hv_kv=110, vn_lv_kv=20, vkr_percent=0.3, vk_percent=12, pfe_kw=20,
        i0_percent=0.05, tap_side="hv", tap_neutral=0, tap_min=-9, tap_max=9, tap_step_percent=1.5, tap_pos=2,
        tap_changer_type="Ratio", name="T HV1/MV0")
    for f, t, km in [(0, 1, 4), (1, 2, 3), (2, 3, 5)]:
        pp.create_line_from_parameters(net, m[f], m[t], km, 0.12, 0.35, 250, 0.4, name=f"MV{f}-MV{t}")
    # A gen at the ext_grid's bus (same vm_pu, as pandapower requires).
    pp.create_gen(net, b[0], p_mw=5.0, vm_pu=1.02, name="G at slack")
    # Two gens at one bus, Q split in proportion to their Q ranges.
    pp.create_gen(net, b[2], p_mw=20.0, vm_pu=1.01, min_q_mvar=-10, max_q_mvar=15, name="G2a")
    pp.create_gen(net, b[2], p_mw=10.0, vm_pu=1.01, min_q_mvar=-5, max_q_mvar=5, name="G2b")
    # A gen at a bus with a load, a shunt and an sgen; an out-of-service gen at another vm_pu.
    pp.create_gen(net, b[3], p_mw=15.0, vm_pu=1.03, name="G3", scaling=0.8)
    pp.create_gen(net, b[3], p_mw=7.0, vm_pu=0.95, name="G3 oos", in_service=False)
    pp.create_shunt(net, b[3], q_mvar=2.0, p_mw=0.05, name="C3")
    pp.create_sgen(net, b[3], p_mw=2.0, q_mvar=0.5)
    # A gen on the MV feeder behind the trafo, at a lower set-point.
    pp.create_gen(net, m[3], p_mw=3.0, vm_pu=0.995, name="G MV3")
    # A gen at an out-of-service bus.
    oos = pp.create_bus(net, 20.0, name="MV oos", in_service=False)
    pp.create_line_from_parameters(net, m[2], oos, 1.0, 0.12, 0.35, 250, 0.4, name="MV2-oos")
    pp.create_gen(net, oos, p_mw=1.0, vm_pu=1.0, name="G at oos bus")
    # Two gens at buses joined by a closed bus-bus switch (one node).
    m4 = pp.create_bus(net, 20.0, name="MV4")
    m5 = pp.create_bus(net, 20.0, name="MV5")
    pp.create_line_from_parameters(net, m[1], m4, 2.0, 0.12, 0.35, 250, 0.4, name="MV1-MV4")
    pp.create_switch(net, m4, m5, et="b", closed=True)
    pp.create_gen(net, m4, p_mw=1.0, vm_pu=1.0, name="G MV4")
    pp.create_gen(net, m5, p_mw=0.5, vm_pu=1.0, min_q_mvar=-1, max_q_mvar=2, name="G MV5")
    for bus, p in [(b[1], 30.0), (b[2], 12.0), (b[3], 25.0), (b[4], 18.0), (m[0], 4.0), (m[1], 3.0),
                   (m[2], 2.5), (m[3], 2.0), (m4, 1.2)]:
        pp.create_load(net, bus, p, 0.3 * p)
    return net


def multivoltage_full():
    net = pn.example_multivoltage()
    net.name = "multivoltage_full"
    return net


def xwards():
    net = pp.create_empty_network(name="xwards")
    b = [pp.create_bus(net, 20.0, name=f"B{i}") for i in range(5)]
    pp.create_ext_grid(net, b[0], vm_pu=1.0, va_degree=0.0)
    for f, t, km in [(0, 1, 3), (1, 2, 2), (2, 3, 2.5), (1, 4, 1.5), (3, 0, 5)]:
        pp.create_line_from_parameters(net, b[f], b[t], km, 0.12, 0.35, 250, 0.4, name=f"B{f}-B{t}")
    pp.create_xward(net, b[2], ps_mw=1.0, qs_mvar=0.3, pz_mw=0.1, qz_mvar=-0.2, r_ohm=0.5, x_ohm=5.0,
                    vm_pu=1.01, name="X at PQ bus")
    pp.create_xward(net, b[0], ps_mw=0.5, qs_mvar=0.1, pz_mw=0.05, qz_mvar=0.1, r_ohm=0.1, x_ohm=2.0,
                    vm_pu=1.0, name="X at slack")
    pp.create_xward(net, b[4], ps_mw=2.0, qs_mvar=1.0, pz_mw=0.0, qz_mvar=0.0, r_ohm=0.2, x_ohm=3.0,
                    vm_pu=1.05, in_service=False, name="X oos")
    pp.create_gen(net, b[3], p_mw=1.5, vm_pu=1.005, name="G3")
    pp.create_xward(net, b[3], ps_mw=0.4, qs_mvar=0.2, pz_mw=0.02, qz_mvar=0.05, r_ohm=0.3, x_ohm=4.0,
                    vm_pu=0.99, name="X at PV bus")
    oos = pp.create_bus(net, 20.0, name="oos", in_service=False)
    pp.create_line_from_parameters(net, b[4], oos, 1.0, 0.12, 0.35, 250, 0.4, name="B4-oos")
    pp.create_xward(net, oos, ps_mw=1.0, qs_mvar=0.5, pz_mw=0.0, qz_mvar=0.0, r_ohm=0.2, x_ohm=3.0,
                    vm_pu=1.0, name="X at oos bus")
    for bus, p in [(b[1], 2.0), (b[2], 1.5), (b[3], 1.0), (b[4], 2.5)]:
        pp.create_load(net, bus, p, 0.3 * p)
    return net


def case118():
    return pn.case118()


def case300():
    return pn.case300()


NETWORKS = {"multivoltage_gen": multivoltage_gen, "gens": gens, "case118": case118, "case300": case300,
            "multivoltage_full": multivoltage_full, "xwards": xwards}
# case300 diverges under runpp's Newton-Raphson (10 iterations) beyond about ±4 % load: milder changes there.
SCALINGS_OF = {"case300": [1.0, 0.98, 1.02, 0.95]}
GEN_MOVE = {"case300": (0.98, 0.005)}


def nan0(s):
    return s.fillna(0.0).tolist()


def solve(net):
    try:
        pp.runpp(net, tolerance_mva=1e-10)
        return bool(net.converged)
    except pp.powerflow.LoadflowNotConverged:
        return False


for name, make in NETWORKS.items():
    net = make()
    pp.to_json(net, str(HERE / f"{name}.json"))
    base_scaling = net.load.scaling.copy()
    base_p = net.gen.p_mw.copy()
    base_vm = net.gen.vm_pu.copy()
    at_slack = net.gen.bus.isin(net.ext_grid.bus[net.ext_grid.in_service])
    # Load scalings, then the gens moved: P × 0.7 and +0.01 p.u. away from the ext_grid buses.
    cases = [(f, base_p, base_vm) for f in SCALINGS_OF.get(name, SCALINGS)]
    fp, dv = GEN_MOVE.get(name, (0.7, 0.01))
    cases.append((1.0, base_p * fp, base_vm.where(at_slack, base_vm + dv)))
    scenarios = []
    for k, (f, p, vm) in enumerate(cases):
        net.load.scaling = base_scaling * f
        net.gen.p_mw = p
        net.gen.vm_pu = vm
        converged = solve(net)
        results = {key: nan0(net[t][col]) for key, (t, col) in TABLES.items()} if converged else {}
        scenarios.append({
            "id": k, "converged": converged,
            "inputs": {"load_scaling": net.load.scaling.tolist(), "gen_p_mw": net.gen.p_mw.tolist(),
                       "gen_vm_pu": net.gen.vm_pu.tolist()},
            "results": results,
        })
    (HERE / f"{name}.reference.json").write_text(json.dumps({
        "network": f"{name}.json",
        "solver": f"pandapower {pp.__version__} runpp defaults, tolerance_mva=1e-10",
        "n_bus": len(net.bus),
        "scenarios": scenarios,
    }))
    print(name, "converged:", [s["converged"] for s in scenarios],
          "res_gen q:", np.round(net.res_gen.q_mvar.values[:8], 4).tolist(),
          "res_ext_grid:", np.round(net.res_ext_grid.values, 4).tolist())
