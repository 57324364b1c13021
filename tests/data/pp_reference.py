"""Shared by the `make_reference.py` scripts beside the pandapower test data:
solve each network with `pandapower.runpp` (its defaults, tolerance_mva=1e-10)
for the base case and load scalings, and write `<name>.json` (pandapower) and
`<name>.reference.json` (the `pf` reference format) into the script's folder.
"""
import json

import pandapower as pp

# Result tables every reference carries (`pf` output keys → pandapower columns).
TABLES = {
    "vm_pu": ("res_bus", "vm_pu"),
    "va_degree": ("res_bus", "va_degree"),
    "line_p_from_mw": ("res_line", "p_from_mw"),
    "line_q_from_mvar": ("res_line", "q_from_mvar"),
    "line_i_ka": ("res_line", "i_ka"),
    "line_loading_percent": ("res_line", "loading_percent"),
    "trafo_loading_percent": ("res_trafo", "loading_percent"),
    "ext_grid_p_mw": ("res_ext_grid", "p_mw"),
    "ext_grid_q_mvar": ("res_ext_grid", "q_mvar"),
    "trafo_p_hv_mw": ("res_trafo", "p_hv_mw"),
    "trafo_q_hv_mvar": ("res_trafo", "q_hv_mvar"),
    "trafo_p_lv_mw": ("res_trafo", "p_lv_mw"),
    "trafo_q_lv_mvar": ("res_trafo", "q_lv_mvar"),
}


def nan0(s):
    return s.fillna(0.0).tolist()


def write_references(here, networks, scalings, solver="runpp defaults", extra_tables=None, describe=None):
    """For each `name, make` of `networks`: `make()` the net, write it and its
    solutions at `scalings` of its load scaling. `extra_tables` adds result
    tables (key → (pandapower table, column)); `describe(net)` adds to the
    printed line."""
    tables = dict(TABLES, **(extra_tables or {}))
    for name, make in networks.items():
        net = make()
        pp.to_json(net, str(here / f"{name}.json"))
        base_scaling = net.load.scaling.copy()
        scenarios = []
        for k, f in enumerate(scalings):
            net.load.scaling = base_scaling * f
            try:
                pp.runpp(net, tolerance_mva=1e-10)
                converged = bool(net.converged)
            except pp.powerflow.LoadflowNotConverged:
                converged = False
            results = {key: nan0(net[t][col]) for key, (t, col) in tables.items()} if converged else {}
            scenarios.append({
                "id": k, "converged": converged,
                "inputs": {"load_scaling": net.load.scaling.tolist()},
                "results": results,
            })
        net.load.scaling = base_scaling
        (here / f"{name}.reference.json").write_text(json.dumps({
            "network": f"{name}.json",
            "solver": f"pandapower {pp.__version__} {solver}, tolerance_mva=1e-10",
            "n_bus": len(net.bus),
            "scenarios": scenarios,
        }))
        print(name, "converged:", [s["converged"] for s in scenarios], *(describe(net) if describe else []))
