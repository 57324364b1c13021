"""Networks of pandapower's own `networks` module, exported as they are, with
pandapower's solutions (`runpp` with its defaults, tolerance_mva=1e-10) for the
base case and a few load scalings. Writes `<name>.json` (pandapower) and
`<name>.reference.json` (`pf` reference format) for each network.

    python3 -m venv venv && venv/bin/pip install pandapower==3.5.6
    venv/bin/python tests/data/pandapower_nets/make_reference.py

Networks that need an element powergrid does not model yet (gen, trafo3w,
impedance, ward, ZIP loads) are left out here; see issue 10.
"""
import pathlib
import sys

import pandapower as pp
import pandapower.networks as pn

HERE = pathlib.Path(__file__).parent
sys.path.insert(0, str(HERE.parent))
from pp_reference import write_references  # noqa: E402  (tests/data/pp_reference.py)
SCALINGS = [1.0, 0.5, 1.3, 1.8]

NETWORKS = {
    # Loads carry `type: "MV/LV Station"`; six line switches are open.
    "mv_oberrhein": pn.mv_oberrhein,
    # CIGRE MV with PV, wind, batteries, fuel cells and CHP (sgen + storage);
    # three open line switches (S1..S3) keep their lines' charging at the closed end.
    "cigre_mv_der": lambda: pn.create_cigre_network_mv(with_der="all"),
    # Branches cut at one end, small and built here: trafos open at the LV and
    # at the HV side (magnetising branch and half the leakage stay), a line at
    # an out-of-service bus, a line open at both ends (dropped).
    "open_ends": lambda: open_ends(),
}


def open_ends():
    net = pp.create_empty_network(name="open_ends")
    hv = pp.create_bus(net, 110.0, name="HV")
    mv = [pp.create_bus(net, 20.0, name=f"MV{i}") for i in range(5)]
    lv = pp.create_bus(net, 0.4, name="LV")
    oos = pp.create_bus(net, 20.0, name="out of service", in_service=False)
    pp.create_ext_grid(net, hv, vm_pu=1.01)
    pp.create_transformer_from_parameters(net, hv, mv[0], sn_mva=40, vn_hv_kv=110, vn_lv_kv=20, vkr_percent=0.3,
                                          vk_percent=12, pfe_kw=30, i0_percent=0.8, shift_degree=150, name="T1")
    t_lv_open = pp.create_transformer_from_parameters(net, hv, mv[1], sn_mva=25, vn_hv_kv=110, vn_lv_kv=20.5,
                                                      vkr_percent=0.4, vk_percent=11, pfe_kw=20, i0_percent=1.2,
                                                      tap_side="hv", tap_neutral=0, tap_min=-9, tap_max=9,
                                                      tap_step_percent=1.5, tap_pos=3, tap_changer_type="Ratio",
                                                      name="T2 open at LV")
    pp.create_switch(net, mv[1], t_lv_open, et="t", closed=False)
    t_hv_open = pp.create_transformer_from_parameters(net, mv[2], lv, sn_mva=0.63, vn_hv_kv=20, vn_lv_kv=0.4,
                                                      vkr_percent=1.2, vk_percent=6, pfe_kw=1.5, i0_percent=2.0,
                                                      name="T3 open at HV")
    pp.create_switch(net, mv[2], t_hv_open, et="t", closed=False)
    pp.create_transformer_from_parameters(net, mv[3], lv, sn_mva=0.63, vn_hv_kv=20, vn_lv_kv=0.4,
                                          vkr_percent=1.2, vk_percent=6, pfe_kw=1.5, i0_percent=2.0, name="T4")
    pp.create_line_from_parameters(net, mv[0], mv[1], 3.0, 0.12, 0.35, 300, 0.4, name="L01")
    pp.create_line_from_parameters(net, mv[1], mv[2], 2.0, 0.12, 0.35, 300, 0.4, name="L12")
    pp.create_line_from_parameters(net, mv[2], mv[3], 2.0, 0.12, 0.35, 300, 0.4, name="L23")
    pp.create_line_from_parameters(net, mv[3], oos, 8.0, 0.12, 0.35, 400, 0.4, name="L3x at an oos bus")
    both = pp.create_line_from_parameters(net, mv[0], mv[4], 5.0, 0.12, 0.35, 400, 0.4, name="L04 open at both ends")
    pp.create_switch(net, mv[0], both, et="l", closed=False)
    pp.create_switch(net, mv[4], both, et="l", closed=False)
    pp.create_line_from_parameters(net, mv[3], mv[4], 1.0, 0.12, 0.35, 300, 0.4, name="L34")
    for b, p in [(mv[1], 4.0), (mv[2], 2.5), (mv[3], 3.0), (mv[4], 1.0), (lv, 0.3)]:
        pp.create_load(net, b, p, 0.3 * p)
    return net


# pandapower's defaults: nr, init "auto", calculate_voltage_angles True,
# trafo_model "t", trafo_loading "current", voltage_depend_loads True,
# enforce_q_lims False, neglect_open_switch_branches False.
write_references(HERE, NETWORKS, SCALINGS)
