"""A small network that exercises the element-model features the five reference
networks leave at their defaults (trafo iron losses and magnetising current with
the "t" model, HV- and LV-side tap changers, tap columns without a
tap_changer_type (ignored by pandapower 3), a phase shift, parallel lines, line
conductance, a derating factor, a shunt rated at another voltage with a real
part, scaling of sgens/storage/loads, an out-of-service line, an open line
switch, a bus-bus switch with impedance, a second slack). Writes network.json
(pandapower) and reference.json (pandapower's solutions, `pf` reference format).

    pip install pandapower==3.5.6
    python3 tests/data/features/make_reference.py
"""
import json
import pathlib

import pandapower as pp

HERE = pathlib.Path(__file__).parent

net = pp.create_empty_network(name="features", f_hz=60.0, sn_mva=10.0)
b0 = pp.create_bus(net, 110.0, name="HV")
b1 = pp.create_bus(net, 20.0, name="MV1")
b2 = pp.create_bus(net, 20.0, name="MV2")
b3 = pp.create_bus(net, 20.0, name="MV3")
b4 = pp.create_bus(net, 20.0, name="MV4")
b5 = pp.create_bus(net, 0.4, name="LV1")
b6 = pp.create_bus(net, 20.0, name="MV5 (behind an open switch)")
b7 = pp.create_bus(net, 20.0, name="MV6 (second feed)")
pp.create_ext_grid(net, b0, vm_pu=1.02, va_degree=0.0, name="grid")
pp.create_transformer_from_parameters(net, b0, b1, sn_mva=25, vn_hv_kv=110, vn_lv_kv=20.5, vkr_percent=0.4, vk_percent=12,
                                      pfe_kw=14, i0_percent=0.07, shift_degree=150, tap_side="hv", tap_neutral=0,
                                      tap_min=-9, tap_max=9, tap_step_percent=1.5, tap_pos=-2, tap_changer_type="Ratio",
                                      name="HV/MV")
pp.create_line_from_parameters(net, b1, b2, 2.5, 0.16, 0.12, 260, 0.36, g_us_per_km=2.0, parallel=2, df=0.8, name="double")
pp.create_line_from_parameters(net, b2, b3, 1.2, 0.32, 0.11, 210, 0.24, name="L23")
pp.create_line_from_parameters(net, b3, b4, 0.8, 0.32, 0.11, 210, 0.24, name="L34 (out of service)", in_service=False)
pp.create_line_from_parameters(net, b2, b4, 1.6, 0.32, 0.11, 0.0, 0.24, name="L24")
l6 = pp.create_line_from_parameters(net, b4, b6, 0.5, 0.32, 0.11, 0.0, 0.24, name="L46 (open at MV5)")
pp.create_switch(net, b6, l6, et="l", closed=False, name="open")
pp.create_transformer_from_parameters(net, b3, b5, sn_mva=0.63, vn_hv_kv=20, vn_lv_kv=0.4, vkr_percent=1.2, vk_percent=6,
                                      pfe_kw=1.1, i0_percent=0.3, shift_degree=0, tap_side="lv", tap_neutral=0,
                                      tap_min=-2, tap_max=2, tap_step_percent=2.5, tap_pos=1, tap_changer_type="Ratio",
                                      name="MV/LV")
b8 = pp.create_bus(net, 0.4, name="LV2")
# Tap columns but no tap_changer_type: pandapower 3 ignores the taps.
pp.create_transformer_from_parameters(net, b2, b8, sn_mva=0.4, vn_hv_kv=20, vn_lv_kv=0.42, vkr_percent=1.3, vk_percent=4,
                                      pfe_kw=0.6, i0_percent=0.2, tap_side="lv", tap_neutral=0, tap_min=-2, tap_max=2,
                                      tap_step_percent=2.5, tap_pos=2, name="MV/LV untyped taps")
pp.create_load(net, b8, 0.2, 0.05, name="lv2 load")
pp.create_switch(net, b4, b7, et="b", closed=True, z_ohm=0.4, name="tie with impedance")
pp.create_ext_grid(net, b7, vm_pu=1.0, va_degree=-150.5, name="second feed", in_service=False)
pp.create_load(net, b2, 3.0, 1.2, scaling=0.9, name="load2")
pp.create_load(net, b3, 2.0, 0.5, name="load3")
pp.create_load(net, b5, 0.35, 0.1, scaling=1.1, name="lv load")
pp.create_load(net, b7, 1.0, 0.4, name="load7")
pp.create_sgen(net, b4, 1.5, -0.3, scaling=0.8, name="pv4")
pp.create_storage(net, b3, 0.4, 2.0, q_mvar=0.05, scaling=0.5, name="ess3")
pp.create_shunt(net, b4, q_mvar=-0.6, p_mw=0.01, vn_kv=21.0, step=2, max_step=3, name="cap4")

pp.to_json(net, str(HERE / "network.json"))

scenarios = []
for k, (taps, steps, f) in enumerate([([-2, 1, 2], [2], 1.0), ([6, -2, 2], [0], 1.3), ([-9, 2, 2], [3], 0.6)]):
    net.trafo.tap_pos = taps
    net.shunt.step = steps
    net.load.p_mw *= f
    pp.runpp(net, algorithm="nr", tolerance_mva=1e-10, trafo_model="t", calculate_voltage_angles=True)
    nan0 = lambda s: s.fillna(0.0).tolist()
    scenarios.append({
        "id": k, "converged": bool(net.converged),
        "inputs": {"load_p_mw": net.load.p_mw.tolist(), "trafo_tap_pos": [float(t) for t in taps],
                   "shunt_step": [float(s) for s in steps]},
        "results": {"vm_pu": nan0(net.res_bus.vm_pu), "va_degree": nan0(net.res_bus.va_degree),
                    "line_p_from_mw": nan0(net.res_line.p_from_mw), "line_q_from_mvar": nan0(net.res_line.q_from_mvar),
                    "line_i_ka": nan0(net.res_line.i_ka), "line_loading_percent": nan0(net.res_line.loading_percent),
                    "trafo_loading_percent": nan0(net.res_trafo.loading_percent),
                    "ext_grid_p_mw": nan0(net.res_ext_grid.p_mw), "ext_grid_q_mvar": nan0(net.res_ext_grid.q_mvar),
                    "trafo_p_hv_mw": nan0(net.res_trafo.p_hv_mw), "trafo_q_hv_mvar": nan0(net.res_trafo.q_hv_mvar),
                    "trafo_p_lv_mw": nan0(net.res_trafo.p_lv_mw), "trafo_q_lv_mvar": nan0(net.res_trafo.q_lv_mvar)},
    })
    net.load.p_mw /= f
(HERE / "reference.json").write_text(json.dumps({"network": "network.json", "solver": f"pandapower {pp.__version__} runpp nr tolerance_mva=1e-10 trafo_model=t", "scenarios": scenarios}))
print("converged:", [s["converged"] for s in scenarios])
