"""Adds pandapower's trafo flows (`res_trafo` p_hv_mw, q_hv_mvar, p_lv_mw,
q_lv_mvar) to the reference solutions in this folder: each scenario is solved
again with `pandapower.runpp` (tolerance_mva=1e-10, as the file says) from its
inputs on `tests/data/pandapower/<name>.json`; its existing results are checked
(|Δvm| ≤ 1e-9 p.u.) and left as they are, only the four tables are added.

    /path/to/venv/bin/python tests/data/reference/add_trafo_flows.py
"""
import json
import pathlib

import numpy as np
import pandapower as pp

HERE = pathlib.Path(__file__).parent
NETS = ["ieee13", "ieee34", "ieee123", "cigre_lv", "ieee34_ieee13"]
TABLES = {
    "trafo_p_hv_mw": "p_hv_mw",
    "trafo_q_hv_mvar": "q_hv_mvar",
    "trafo_p_lv_mw": "p_lv_mw",
    "trafo_q_lv_mvar": "q_lv_mvar",
}
INPUTS = {
    "load_p_mw": ("load", "p_mw"),
    "load_q_mvar": ("load", "q_mvar"),
    "load_scaling": ("load", "scaling"),
    "sgen_p_mw": ("sgen", "p_mw"),
    "sgen_q_mvar": ("sgen", "q_mvar"),
    "storage_p_mw": ("storage", "p_mw"),
    "trafo_tap_pos": ("trafo", "tap_pos"),
    "shunt_step": ("shunt", "step"),
}

for name in NETS:
    path = HERE / f"{name}.json"
    ref = json.loads(path.read_text())
    net = pp.from_json(str(HERE.parent / "pandapower" / f"{name}.json"))
    worst = 0.0
    for s in ref["scenarios"]:
        for key, (table, col) in INPUTS.items():
            v = s["inputs"].get(key)
            if v is not None and len(v):
                net[table][col] = np.array(v, dtype=net[table][col].dtype)
        if not s["converged"]:
            continue
        pp.runpp(net, tolerance_mva=1e-10)
        assert net.converged
        d = np.max(np.abs(net.res_bus.vm_pu.fillna(0.0).values - np.array(s["results"]["vm_pu"])))
        assert d <= 1e-9, (name, s["id"], d)
        worst = max(worst, d)
        for key, col in TABLES.items():
            s["results"][key] = net.res_trafo[col].fillna(0.0).tolist()
    path.write_text(json.dumps(ref, separators=(",", ":")))
    print(name, "scenarios:", len(ref["scenarios"]), "worst |Δvm| against the file:", worst)
