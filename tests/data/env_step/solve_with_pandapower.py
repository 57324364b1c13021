"""Solve tests/data/env_step/{network.yml, scenario.json} with pandapower.

The environment test `tests/env_vs_pandapower.rs` writes the network exactly as
the environment solves it (setup devices included) and one step's set-points in
the `pf` scenario format (run it with POWERGRID_WRITE_ENV_STEP=1). This script
builds the same network in pandapower from the YAML, applies each scenario and
writes pandapower's solution to pandapower_solution.json, which is committed;
the test then compares the environment's voltages, and its trafo flows (a PCC
trafo's import), with it.

    pip install pandapower==3.5.6 pyyaml
    python3 tests/data/env_step/solve_with_pandapower.py
"""
import json
import pathlib

import pandapower as pp
import yaml

HERE = pathlib.Path(__file__).parent


def build(net_yaml):
    d = yaml.safe_load(net_yaml)
    net = pp.create_empty_network(name=d.get("name", ""), f_hz=d.get("f_hz", 50.0), sn_mva=d.get("sn_mva", 1.0))
    for b in d["buses"]:
        pp.create_bus(net, vn_kv=b["vn_kv"], name=b.get("name"), in_service=b.get("in_service", True), zone=b.get("zone"))
    for l in d.get("lines", []):
        pp.create_line_from_parameters(
            net, l["from_bus"], l["to_bus"], l["length_km"], l["r_ohm_per_km"], l["x_ohm_per_km"],
            l.get("c_nf_per_km", 0.0), l["max_i_ka"], name=l.get("name"), g_us_per_km=l.get("g_us_per_km", 0.0),
            parallel=l.get("parallel", 1), df=l.get("df", 1.0), in_service=l.get("in_service", True))
    for t in d.get("trafos", []):
        tap = t.get("tap")
        kw = {}
        if tap:
            kw = dict(tap_side=tap["side"], tap_neutral=tap.get("neutral", 0.0), tap_step_percent=tap["step_percent"],
                      tap_min=tap["min"], tap_max=tap["max"], tap_pos=tap.get("pos", 0.0), tap_changer_type="Ratio")
        pp.create_transformer_from_parameters(
            net, t["hv_bus"], t["lv_bus"], t["sn_mva"], t["vn_hv_kv"], t["vn_lv_kv"], t["vkr_percent"], t["vk_percent"],
            t.get("pfe_kw", 0.0), t.get("i0_percent", 0.0), shift_degree=t.get("shift_degree", 0.0), name=t.get("name"),
            parallel=t.get("parallel", 1), df=t.get("df", 1.0), in_service=t.get("in_service", True), **kw)
    for e in d.get("loads", []):
        pp.create_load(net, e["bus"], e["p_mw"], e.get("q_mvar", 0.0), scaling=e.get("scaling", 1.0), name=e.get("name"),
                       in_service=e.get("in_service", True))
    for e in d.get("sgens", []):
        pp.create_sgen(net, e["bus"], e["p_mw"], e.get("q_mvar", 0.0), scaling=e.get("scaling", 1.0), name=e.get("name"),
                       in_service=e.get("in_service", True))
    for e in d.get("storages", []):
        pp.create_storage(net, e["bus"], e.get("p_mw", 0.0), e.get("max_e_mwh", 0.0), q_mvar=e.get("q_mvar", 0.0),
                          scaling=e.get("scaling", 1.0), name=e.get("name"), in_service=e.get("in_service", True))
    for e in d.get("shunts", []):
        pp.create_shunt(net, e["bus"], e["q_mvar"], p_mw=e.get("p_mw", 0.0), vn_kv=e.get("vn_kv"), step=e.get("step", 1),
                        max_step=e.get("max_step", 1), name=e.get("name"), in_service=e.get("in_service", True))
    for e in d.get("ext_grids", []):
        pp.create_ext_grid(net, e["bus"], vm_pu=e.get("vm_pu", 1.0), va_degree=e.get("va_degree", 0.0), name=e.get("name"),
                           in_service=e.get("in_service", True))
    for s in d.get("switches", []):
        pp.create_switch(net, s["bus"], s["element"], s["et"], closed=s.get("closed", True), z_ohm=s.get("z_ohm", 0.0),
                         name=s.get("name"))
    return net


def main():
    net = build((HERE / "network.yml").read_text())
    scenarios = json.loads((HERE / "scenario.json").read_text())["scenarios"]
    out = []
    for sc in scenarios:
        i = sc["inputs"]
        for col, key, table in [("p_mw", "load_p_mw", "load"), ("q_mvar", "load_q_mvar", "load"),
                                ("scaling", "load_scaling", "load"), ("p_mw", "sgen_p_mw", "sgen"),
                                ("q_mvar", "sgen_q_mvar", "sgen"), ("p_mw", "storage_p_mw", "storage"),
                                ("tap_pos", "trafo_tap_pos", "trafo"), ("step", "shunt_step", "shunt")]:
            if i.get(key) is not None and len(net[table]):
                if table == "trafo":
                    has_tap = net.trafo.tap_step_percent.notna()
                    net.trafo.loc[has_tap, col] = [v for v, h in zip(i[key], has_tap) if h]
                else:
                    net[table][col] = i[key]
        pp.runpp(net, algorithm="nr", tolerance_mva=1e-10, trafo_model="t", calculate_voltage_angles=True, max_iteration=50)
        out.append({"converged": bool(net.converged), "vm_pu": net.res_bus.vm_pu.fillna(0.0).tolist(),
                    "va_degree": net.res_bus.va_degree.fillna(0.0).tolist(),
                    "trafo_p_hv_mw": net.res_trafo.p_hv_mw.fillna(0.0).tolist()})
    (HERE / "pandapower_solution.json").write_text(json.dumps(
        {"solver": f"pandapower {pp.__version__} runpp nr tolerance_mva=1e-10 trafo_model=t", "scenarios": out}))
    print(f"wrote {len(out)} solutions")


if __name__ == "__main__":
    main()
