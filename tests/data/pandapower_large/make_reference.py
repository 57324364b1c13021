"""Large transmission cases of pandapower's `networks` module, exported as
they are, with pandapower's solutions (`runpp` with its defaults,
tolerance_mva=1e-10) for the base case and load scalings. Writes `<name>.json`
(pandapower) and `<name>.reference.json` (`pf` reference format).

    python3 -m venv venv && venv/bin/pip install pandapower==3.5.6
    venv/bin/python tests/data/pandapower_large/make_reference.py

- `case1354pegase`, `case2869pegase`, `case9241pegase`: the PEGASE cases
  (gen, sgen, ext_grid, line, trafo, load, shunt); case9241pegase has
  trafos with a negative vkr_percent and lines with negative r or x
  (equivalent branches of the reduced network).
- `case145`, `case1888rte`: trafos with a negative vk_percent (negative
  reactance; pandapower's `sign(z_sc)·√(z_sc² − r_sc²)`).

Scalings beyond about ±5 % of load make several of these diverge under
runpp's Newton-Raphson (10 iterations); such scenarios are kept with
`"converged": false` (the test then asks powergrid either to say not
converged or to give an answer that satisfies the power balance).

To keep the committed data small, the references carry only the tables the
tests compare (bus voltages and angles, line and trafo loading, ext_grid and
gen P/Q), printed with 12 significant digits; case9241pegase has fewer
scenarios.
"""
import json
import pathlib
import sys

import pandapower as pp
import pandapower.networks as pn

HERE = pathlib.Path(__file__).parent

TABLES = {
    "vm_pu": ("res_bus", "vm_pu"),
    "va_degree": ("res_bus", "va_degree"),
    "line_loading_percent": ("res_line", "loading_percent"),
    "trafo_loading_percent": ("res_trafo", "loading_percent"),
    "ext_grid_p_mw": ("res_ext_grid", "p_mw"),
    "ext_grid_q_mvar": ("res_ext_grid", "q_mvar"),
    "gen_p_mw": ("res_gen", "p_mw"),
    "gen_q_mvar": ("res_gen", "q_mvar"),
}

NETWORKS = {
    "case1354pegase": (pn.case1354pegase, [1.0, 0.9, 0.95, 1.05, 1.2]),
    "case2869pegase": (pn.case2869pegase, [1.0, 0.9, 0.95, 1.05, 1.2]),
    "case9241pegase": (pn.case9241pegase, [1.0, 0.95, 1.2]),
    "case145": (pn.case145, [1.0, 0.9, 1.05, 1.2]),
    "case1888rte": (pn.case1888rte, [1.0, 0.9, 1.05, 1.2]),
}


def short(values):
    return [float(f"{x:.12g}") for x in values]


def main(names):
    for name in names or NETWORKS:
        make, scalings = NETWORKS[name]
        net = make()
        pp.to_json(net, str(HERE / f"{name}.json"))
        base = net.load.scaling.copy()
        scenarios = []
        for k, f in enumerate(scalings):
            net.load.scaling = base * f
            try:
                pp.runpp(net, tolerance_mva=1e-10)
                converged = bool(net.converged)
            except pp.powerflow.LoadflowNotConverged:
                converged = False
            results = {key: short(net[t][c].fillna(0.0)) for key, (t, c) in TABLES.items()} if converged else {}
            scenarios.append({"id": k, "converged": converged, "inputs": {"load_scaling": net.load.scaling.tolist()},
                              "results": results})
        (HERE / f"{name}.reference.json").write_text(json.dumps({
            "network": f"{name}.json",
            "solver": f"pandapower {pp.__version__} runpp defaults, tolerance_mva=1e-10",
            "n_bus": len(net.bus),
            "scalings": scalings,
            "scenarios": scenarios,
        }, separators=(",", ":")))
        print(name, "converged:", [s["converged"] for s in scenarios], flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
