"""Networks with pandapower's `trafo3w`, `impedance` and `ward` elements, with
pandapower's solutions (`runpp` with its defaults, tolerance_mva=1e-10) for the
base case and a few load scalings. Writes `<name>.json` (pandapower) and
`<name>.reference.json` (`pf` reference format) for each network.

    python3 -m venv venv && venv/bin/pip install pandapower==3.5.6
    venv/bin/python tests/data/pandapower_elements/make_reference.py

- `multivoltage`: pandapower's `example_multivoltage` (trafo3w with an HV tap
  and 30° shifts, an impedance, 2 trafos, open switches) with the two elements
  powergrid does not model replaced:
  * the `gen` "Gas turbine" (bus 35, 100 MW at 1.03 p.u.) by an sgen of the same
    P and the Q the gen has in pandapower's solution of the original network;
  * each `xward` by a `ward` with the same ps/qs/pz/qz (its internal PV node
    behind r_ohm + j·x_ohm is dropped).
- `elements`: handcrafted: five trafo3w, with taps on the HV, MV and LV side,
  MV/LV shifts, iron losses, one open at its LV side and one open at its MV
  side by a switch (et "t3"), one at an out-of-service LV bus, one out of
  service; iron losses on the HV, MV or LV branch (`loss_side`); a symmetric
  impedance with shunts (gf/bf/gt/bt); wards (one at the slack bus).
- `elements_asym`: a non-reciprocal impedance (rft ≠ rtf, xft ≠ xtf,
  gf ≠ gt) in a small meshed net with a ward (the GPU backend refuses it).
"""
import pathlib
import sys

import pandapower as pp
import pandapower.networks as pn

HERE = pathlib.Path(__file__).parent
sys.path.insert(0, str(HERE.parent))
from pp_reference import write_references  # noqa: E402  (tests/data/pp_reference.py)
SCALINGS = [1.0, 0.5, 0.8, 1.2, 1.4]


def multivoltage():
    net = pn.example_multivoltage()
    pp.runpp(net, tolerance_mva=1e-10)
    for g in net.gen.index:
        pp.create_sgen(net, net.gen.bus.at[g], p_mw=net.gen.p_mw.at[g], q_mvar=net.res_gen.q_mvar.at[g],
                       name=f"{net.gen.name.at[g]} (was a gen)")
    net.gen.drop(net.gen.index, inplace=True)
    for x in net.xward.index:
        pp.create_ward(net, net.xward.bus.at[x], ps_mw=net.xward.ps_mw.at[x], qs_mvar=net.xward.qs_mvar.at[x],
                       pz_mw=net.xward.pz_mw.at[x], qz_mvar=net.xward.qz_mvar.at[x],
                       name=f"{net.xward.name.at[x]} (was an xward)")
    net.xward.drop(net.xward.index, inplace=True)
    return net


def elements():
    net = pp.create_empty_network(name="elements")
    hv = pp.create_bus(net, 110.0, name="HV")
    hv2 = pp.create_bus(net, 110.0, name="HV2")
    mv = [pp.create_bus(net, 20.0, name=f"MV{i}") for i in range(4)]
    lv = [pp.create_bus(net, 10.0, name=f"LV{i}") for i in range(4)]
    pp.create_ext_grid(net, hv, vm_pu=1.02, va_degree=5.0)
    pp.create_line_from_parameters(net, hv, hv2, 12.0, 0.06, 0.4, 10, 0.6, name="HV line")
    # HV tap, MV/LV shifts, iron losses on the HV branch (trafo3w_losses="hv").
    pp.create_transformer3w_from_parameters(
        net, hv, mv[0], lv[0], vn_hv_kv=110, vn_mv_kv=20.5, vn_lv_kv=10.2, sn_hv_mva=40, sn_mv_mva=30,
        sn_lv_mva=15, vk_hv_percent=10.5, vk_mv_percent=6.5, vk_lv_percent=11.0, vkr_hv_percent=0.3,
        vkr_mv_percent=0.25, vkr_lv_percent=0.35, pfe_kw=35, i0_percent=0.6, shift_mv_degree=30,
        shift_lv_degree=150, tap_side="hv", tap_neutral=0, tap_min=-9, tap_max=9, tap_step_percent=1.5,
        tap_pos=-3, tap_changer_type="Ratio", name="T3w HV tap")
    # MV tap; open at its LV side (the LV branch stays at the star node).
    t_mv = pp.create_transformer3w_from_parameters(
        net, hv2, mv[1], lv[1], vn_hv_kv=110, vn_mv_kv=20, vn_lv_kv=10, sn_hv_mva=25, sn_mv_mva=25,
        sn_lv_mva=10, vk_hv_percent=11, vk_mv_percent=7, vk_lv_percent=12, vkr_hv_percent=0.4,
        vkr_mv_percent=0.3, vkr_lv_percent=0.45, pfe_kw=20, i0_percent=0.9, shift_mv_degree=0,
        shift_lv_degree=-30, tap_side="mv", tap_neutral=0, tap_min=-5, tap_max=5, tap_step_percent=2.0,
        tap_pos=2, tap_changer_type="Ratio", name="T3w MV tap, LV open")
    pp.create_switch(net, lv[1], t_mv, et="t3", closed=False)
    # LV tap; open at its MV side.
    t_lv = pp.create_transformer3w_from_parameters(
        net, hv2, mv[2], lv[2], vn_hv_kv=115, vn_mv_kv=21, vn_lv_kv=10.5, sn_hv_mva=20, sn_mv_mva=12,
        sn_lv_mva=12, vk_hv_percent=9, vk_mv_percent=8, vk_lv_percent=10, vkr_hv_percent=0.35,
        vkr_mv_percent=0.3, vkr_lv_percent=0.4, pfe_kw=15, i0_percent=0.5, shift_mv_degree=-30,
        shift_lv_degree=30, tap_side="lv", tap_neutral=0, tap_min=-4, tap_max=4, tap_step_percent=1.25,
        tap_pos=-2, tap_changer_type="Ratio", name="T3w LV tap, MV open")
    pp.create_switch(net, mv[2], t_lv, et="t3", closed=False)
    # Out of service.
    pp.create_transformer3w_from_parameters(
        net, hv, mv[3], lv[3], vn_hv_kv=110, vn_mv_kv=20, vn_lv_kv=10, sn_hv_mva=10, sn_mv_mva=10,
        sn_lv_mva=10, vk_hv_percent=10, vk_mv_percent=10, vk_lv_percent=10, vkr_hv_percent=0.3,
        vkr_mv_percent=0.3, vkr_lv_percent=0.3, pfe_kw=0, i0_percent=0, in_service=False, name="T3w oos")
    # Its LV bus is out of service: the LV winding's branch is dropped, HV and MV stay.
    lv_oos = pp.create_bus(net, 10.0, name="LV out of service", in_service=False)
    pp.create_transformer3w_from_parameters(
        net, hv2, mv[3], lv_oos, vn_hv_kv=110, vn_mv_kv=20, vn_lv_kv=10, sn_hv_mva=16, sn_mv_mva=16,
        sn_lv_mva=8, vk_hv_percent=10, vk_mv_percent=7, vk_lv_percent=9, vkr_hv_percent=0.3,
        vkr_mv_percent=0.3, vkr_lv_percent=0.3, pfe_kw=10, i0_percent=0.4, shift_mv_degree=30,
        name="T3w at an oos LV bus")
    # Iron losses on the MV and the LV winding's branch (pandapower's per-row loss_side).
    net.trafo3w["loss_side"] = ["hv", "mv", "lv", "hv", "mv"]
    # MV network: lines, a symmetric impedance with shunts, wards.
    pp.create_line_from_parameters(net, mv[0], mv[3], 4.0, 0.12, 0.35, 250, 0.4, name="MV0-MV3")
    pp.create_line_from_parameters(net, mv[2], mv[3], 3.0, 0.12, 0.35, 250, 0.4, name="MV2-MV3")
    pp.create_line_from_parameters(net, lv[0], lv[3], 2.0, 0.2, 0.1, 300, 0.3, name="LV0-LV3")
    pp.create_impedance(net, mv[0], mv[1], rft_pu=0.02, xft_pu=0.06, sn_mva=10.0, gf_pu=0.001, bf_pu=0.004,
                        gt_pu=0.0005, bt_pu=0.003, name="Z sym")
    pp.create_ward(net, mv[1], ps_mw=3.0, qs_mvar=1.0, pz_mw=0.4, qz_mvar=-1.5, name="W MV1")
    pp.create_ward(net, lv[2], ps_mw=1.5, qs_mvar=0.5, pz_mw=0.2, qz_mvar=0.3, name="W LV2")
    pp.create_ward(net, hv, ps_mw=5.0, qs_mvar=2.0, pz_mw=1.0, qz_mvar=-3.0, name="W at the slack")
    pp.create_ward(net, mv[3], ps_mw=9.0, qs_mvar=9.0, pz_mw=1.0, qz_mvar=1.0, in_service=False, name="W oos")
    for b, p in [(mv[0], 8.0), (mv[1], 5.0), (mv[2], 4.0), (mv[3], 3.0), (lv[0], 3.0), (lv[2], 2.0),
                 (lv[3], 1.0), (hv2, 10.0)]:
        pp.create_load(net, b, p, 0.35 * p)
    pp.create_sgen(net, lv[3], p_mw=1.5, q_mvar=0.2)
    return net


def elements_asym():
    net = pp.create_empty_network(name="elements_asym")
    b = [pp.create_bus(net, 20.0, name=f"B{i}") for i in range(4)]
    pp.create_ext_grid(net, b[0], vm_pu=1.01)
    pp.create_line_from_parameters(net, b[0], b[1], 3.0, 0.12, 0.35, 250, 0.4)
    pp.create_line_from_parameters(net, b[1], b[2], 2.0, 0.12, 0.35, 250, 0.4)
    pp.create_line_from_parameters(net, b[0], b[3], 4.0, 0.12, 0.35, 250, 0.4)
    pp.create_impedance(net, b[3], b[2], rft_pu=0.03, xft_pu=0.08, rtf_pu=0.04, xtf_pu=0.07, sn_mva=10.0,
                        gf_pu=0.001, bf_pu=0.002, gt_pu=0.0, bt_pu=0.004, name="Z asym")
    pp.create_impedance(net, b[1], b[3], rft_pu=0.05, xft_pu=0.1, sn_mva=5.0, name="Z sym")
    pp.create_ward(net, b[2], ps_mw=1.0, qs_mvar=0.4, pz_mw=0.1, qz_mvar=-0.5)
    for bus, p in [(b[1], 2.0), (b[2], 3.0), (b[3], 1.5)]:
        pp.create_load(net, bus, p, 0.3 * p)
    return net


NETWORKS = {"multivoltage": multivoltage, "elements": elements, "elements_asym": elements_asym}


# pandapower's defaults: nr, init "auto", calculate_voltage_angles True,
# trafo_model "t", trafo3w_losses "hv", trafo_loading "current",
# neglect_open_switch_branches False.
write_references(HERE, NETWORKS, SCALINGS,
                 extra_tables={"trafo3w_loading_percent": ("res_trafo3w", "loading_percent")})
