"""PowerFlow from Python against committed pandapower 3.5.6 solutions."""

import json

import numpy as np
import pytest

import powergrid

KEYS = ["vm_pu", "va_degree", "line_loading_percent", "ext_grid_p_mw", "trafo_p_hv_mw", "trafo_q_lv_mvar"]
TOL = {"vm_pu": 1e-6, "va_degree": 1e-4, "line_loading_percent": 1e-3, "ext_grid_p_mw": 1e-5,
       "trafo_p_hv_mw": 1e-5, "trafo_q_lv_mvar": 1e-5}


def load_reference(root, name):
    ref = json.loads((root / "tests" / "data" / "reference" / f"{name}.json").read_text())
    return [s for s in ref["scenarios"] if s["converged"]]


def set_inputs(pf, scenarios):
    for c, s in enumerate(scenarios):
        for k, v in s["inputs"].items():
            if len(v):
                pf.inputs[k][c, :] = v


@pytest.mark.parametrize("name", ["ieee13", "ieee34", "cigre_lv"])
def test_batch_against_pandapower_solution(root, name):
    scen = load_reference(root, name)
    pf = powergrid.PowerFlow(root / "tests" / "data" / "pandapower" / f"{name}.json", len(scen))
    set_inputs(pf, scen)
    assert pf.solve().all()
    for k in KEYS:
        want = np.array([s["results"][k] for s in scen])
        np.testing.assert_allclose(pf.results[k], want, rtol=0, atol=TOL[k], err_msg=k)
    # results are views overwritten by the next solve, inputs are writable views
    assert not pf.results["vm_pu"].flags.writeable
    vm = pf.results["vm_pu"]
    before = vm.copy()
    pf.inputs["load_scaling"][:] *= 1.02
    assert pf.solve().all()
    assert np.shares_memory(pf.results["vm_pu"], vm)
    assert vm.mean() < before.mean()


def test_yaml_and_json_networks_agree(root):
    a = powergrid.PowerFlow(root / "networks" / "ieee34_ieee13.yml", 2)
    b = powergrid.PowerFlow(root / "tests" / "data" / "pandapower" / "ieee34_ieee13.json", 2)
    a.solve(), b.solve()
    np.testing.assert_allclose(a.results["vm_pu"], b.results["vm_pu"], atol=1e-12)


def test_pandapower_net_object(root):
    pp = pytest.importorskip("pandapower", reason="pandapower not installed (CI checks the JSON path)")
    net = pp.from_json(str(root / "tests" / "data" / "pandapower" / "ieee13.json"))
    pp.runpp(net, tolerance_mva=1e-10, trafo_model="t")
    pf = powergrid.PowerFlow(net, 3)
    assert pf.solve().all()
    for c in range(3):
        np.testing.assert_allclose(pf.results["vm_pu"][c], net.res_bus.vm_pu.values, atol=1e-7)
        np.testing.assert_allclose(pf.results["va_degree"][c], net.res_bus.va_degree.values, atol=1e-5)


def test_enforce_q_lims_against_pandapower(root):
    """``enforce_q_lims=True``: the gens' Q and the voltages of pandapower's
    ``runpp(enforce_q_lims=True)`` (tests/data/pandapower_qlims); off, the gens
    leave their limits."""
    d = root / "tests" / "data" / "pandapower_qlims"
    scen = json.loads((d / "qlims.reference.json").read_text())["scenarios"]
    for enforce in (True, False):
        pf = powergrid.PowerFlow(d / "qlims.json", len(scen), enforce_q_lims=enforce)
        set_inputs(pf, scen)
        assert pf.solve().all()
        q = np.array([s["results"]["gen_q_mvar"] for s in scen])
        vm = np.array([s["results"]["vm_pu"] for s in scen])
        if enforce:
            np.testing.assert_allclose(pf.results["gen_q_mvar"], q, rtol=0, atol=1e-5)
            np.testing.assert_allclose(pf.results["vm_pu"], vm, rtol=0, atol=1e-6)
        else:
            assert np.abs(pf.results["gen_q_mvar"] - q).max() > 1.0
