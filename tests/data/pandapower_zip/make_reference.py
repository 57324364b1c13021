"""Voltage-dependent (ZIP) loads with pandapower's solutions (`runpp` with its
defaults, voltage_depend_loads=True, tolerance_mva=1e-10) for the base case and
a few load scalings. Writes `<name>.json` (pandapower) and
`<name>.reference.json` (`pf` reference format) for each network.

    python3 -m venv venv && venv/bin/pip install pandapower==3.5.6
    venv/bin/python tests/data/pandapower_zip/make_reference.py

- `kerber_zip`: `create_kerber_landnetz_kabel_1` with every load 30 % constant
  impedance and 20 % constant current in P and in Q (`const_z_p_percent` etc.).
- `zip_mixed`: handcrafted 20 kV / 0.4 kV net mixing ZIP and constant-power
  loads: different P and Q shares, two loads with different shares at one bus
  (pandapower applies their mean to the bus), an sgen and a ward at ZIP buses
  (pandapower's shares apply to the bus's whole injection), an out-of-service
  ZIP load, a ZIP load at the slack bus (vm 1.03: pandapower's ext_grid result
  keeps its nominal power), a tap-changing trafo and a shunt.
"""
import pathlib
import sys

import pandapower as pp
import pandapower.networks as pn

HERE = pathlib.Path(__file__).parent
sys.path.insert(0, str(HERE.parent))
from pp_reference import write_references  # noqa: E402  (tests/data/pp_reference.py)
SCALINGS = [1.0, 0.5, 0.8, 1.2, 1.5]


def kerber_zip():
    net = pn.create_kerber_landnetz_kabel_1()
    net.load["const_z_p_percent"] = 30.0
    net.load["const_z_q_percent"] = 30.0
    net.load["const_i_p_percent"] = 20.0
    net.load["const_i_q_percent"] = 20.0
    return net


def zip_mixed():
    net = pp.create_empty_network(name="zip_mixed")
    hv = pp.create_bus(net, 20.0, name="MV slack")
    mv = [pp.create_bus(net, 20.0, name=f"MV{i}") for i in range(3)]
    lv = [pp.create_bus(net, 0.4, name=f"LV{i}") for i in range(4)]
    pp.create_ext_grid(net, hv, vm_pu=1.03, va_degree=0.0)
    pp.create_line_from_parameters(net, hv, mv[0], 3.0, 0.16, 0.12, 260, 0.36, name="L0")
    pp.create_line_from_parameters(net, mv[0], mv[1], 2.5, 0.16, 0.12, 260, 0.36, name="L1")
    pp.create_line_from_parameters(net, mv[1], mv[2], 2.0, 0.16, 0.12, 260, 0.36, name="L2")
    pp.create_line_from_parameters(net, mv[2], mv[0], 4.0, 0.16, 0.12, 260, 0.36, name="L3 (mesh)")
    pp.create_transformer_from_parameters(
        net, mv[1], lv[0], sn_mva=0.63, vn_hv_kv=20, vn_lv_kv=0.4, vk_percent=6, vkr_percent=1.1,
        pfe_kw=1.2, i0_percent=0.3, tap_side="hv", tap_neutral=0, tap_min=-2, tap_max=2,
        tap_step_percent=2.5, tap_pos=-1, tap_changer_type="Ratio", name="T MV1/LV")
    for a, b, km in [(0, 1, 0.15), (1, 2, 0.12), (0, 3, 0.2)]:
        pp.create_line_from_parameters(net, lv[a], lv[b], km, 0.206, 0.08, 261, 0.27, name=f"LV{a}-LV{b}")
    # ZIP load at the slack bus.
    pp.create_load(net, hv, 0.8, 0.3, const_z_p_percent=40, const_z_q_percent=60, name="ZIP at slack")
    # MV: constant power, ZIP with different P/Q shares, two loads with different shares at one bus.
    pp.create_load(net, mv[0], 1.5, 0.5, name="PQ MV0")
    pp.create_load(net, mv[1], 1.2, 0.4, const_z_p_percent=30, const_i_p_percent=20,
                   const_z_q_percent=10, const_i_q_percent=50, name="ZIP MV1")
    pp.create_load(net, mv[2], 0.9, 0.3, const_z_p_percent=100, const_z_q_percent=100, name="Z MV2")
    pp.create_load(net, mv[2], 0.6, 0.25, const_i_p_percent=100, const_i_q_percent=80, name="I MV2")
    pp.create_load(net, mv[2], 0.5, 0.1, const_z_p_percent=50, in_service=False, name="ZIP oos")
    pp.create_sgen(net, mv[2], p_mw=0.7, q_mvar=0.1, name="PV MV2")
    pp.create_ward(net, mv[1], ps_mw=0.3, qs_mvar=0.1, pz_mw=0.05, qz_mvar=0.02, name="W MV1")
    pp.create_shunt(net, mv[0], q_mvar=-0.4, p_mw=0.0, name="C MV0")
    # LV: ZIP and constant-power loads.
    pp.create_load(net, lv[0], 0.05, 0.02, name="PQ LV0")
    pp.create_load(net, lv[1], 0.12, 0.04, const_z_p_percent=30, const_i_p_percent=20,
                   const_z_q_percent=30, const_i_q_percent=20, name="ZIP LV1")
    pp.create_load(net, lv[2], 0.10, 0.03, const_i_p_percent=60, const_z_q_percent=70, name="ZIP LV2")
    pp.create_load(net, lv[3], 0.15, 0.05, const_z_p_percent=20, const_i_p_percent=30,
                   const_z_q_percent=25, const_i_q_percent=25, name="ZIP LV3")
    pp.create_load(net, lv[3], 0.04, 0.01, name="PQ LV3")
    return net


NETWORKS = {"kerber_zip": kerber_zip, "zip_mixed": zip_mixed}


# pandapower's defaults: nr, voltage_depend_loads True, init "auto",
# calculate_voltage_angles True, trafo_model "t", trafo_loading "current".
write_references(HERE, NETWORKS, SCALINGS, solver="runpp defaults (voltage_depend_loads=True)",
                 describe=lambda net: ["buses", len(net.bus), "loads", len(net.load)])
