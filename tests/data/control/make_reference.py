"""Reference data for the control loop: pandapower's own `runpp(run_control=True)`.

For ieee34, ieee123 and ieee34_ieee13 (the pandapower JSONs in
tests/data/pandapower/) this puts a DiscreteTapControl on every trafo with a tap
changer and a DiscreteShuntController on every shunt; `features`
(tests/data/features/network.json) gets controllers in the directions the
feeders leave out (HV-side tap, negative step, HV side at the slack, a
controller with a later `order`). It writes the network with
its controllers to `<name>.json`, and solves a set of scenarios (load levels ×
starting taps/steps) to settlement, written to `<name>_reference.json` in the
`pf` scenario format:

    {"scenarios": [{"inputs": {"load_scaling", "trafo_tap_pos", "shunt_step"},
                    "converged", "control_iterations", "min_margin_pu",
                    "results": {"vm_pu", "va_degree", "trafo_tap_pos", "shunt_step"}}]}

`inputs.trafo_tap_pos`/`shunt_step` are the starting positions; the results hold
the settled ones (0 for trafos without a tap changer). `control_iterations` is
the number of power flows after the first (pandapower's `run_count`).
`min_margin_pu` is the smallest distance, over every power flow of the loop, of
a controlled voltage from a threshold the controllers compare it with: a
decision closer than the solvers' tolerance to a threshold could go either way.

Rerun (pandapower 3.5.6):
    /work/venv-pp/bin/python tests/data/control/make_reference.py
"""

import json
import os
import warnings

import numpy as np
import pandapower as pp
import sys
from pandapower.control import DiscreteShuntController, DiscreteTapControl

warnings.filterwarnings("ignore")
HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, "..", "pandapower")
TOL_MVA = 1e-10

# Load levels (uniform scaling of every load) and starting positions.
# Level × each load's own scaling in the file.
LEVELS = [0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85, 0.95, 1.05, 1.15, 1.25]


def add_features_controllers(net):
    """The small `features` network: the directions the IEEE feeders leave out."""
    # HV-side tap, LV measured: a higher tap lowers the voltage.
    DiscreteTapControl(net, 0, vm_lower_pu=1.0, vm_upper_pu=1.02)
    # HV measured at the slack bus: pandapower's controller does nothing.
    DiscreteTapControl(net, 0, vm_lower_pu=0.99, vm_upper_pu=1.01, side="hv")
    # LV-side tap with a negative step: the direction flips.
    net.trafo.at[1, "tap_step_percent"] = -2.5
    DiscreteTapControl(net, 1, vm_lower_pu=0.97, vm_upper_pu=1.0, order=1)
    # A capacitor with losses, rated at another voltage than its bus.
    DiscreteShuntController(net, 0, vm_set_pu=1.0, tol=0.01)


def add_controllers(name, net):
    """A tap controller on every tap-changing trafo, a shunt controller on every shunt."""
    if name == "features":
        add_features_controllers(net)
        return
    for t in net.trafo.index:
        if net.trafo.at[t, "tap_changer_type"] is None or np.isnan(net.trafo.at[t, "tap_step_percent"]):
            continue
        step = abs(net.trafo.at[t, "tap_step_percent"]) / 100.0
        if name == "ieee34_ieee13" and net.trafo.at[t, "name"].startswith("MG"):
            # Set-point mode: band vm_set ± (step/2 + tol).
            DiscreteTapControl.from_tap_step_percent(net, t, vm_set_pu=1.0, tol=0.002)
        else:
            # A band 1.6 tap steps wide around 1.0 (wider than one step: no hunting).
            DiscreteTapControl(net, t, vm_lower_pu=1.0 - 0.8 * step, vm_upper_pu=1.0 + 0.8 * step)
    for k, s in enumerate(net.shunt.index):
        # A dead band wider than a step's effect (no hunting); two steps at a time
        # on ieee123's second capacitor.
        DiscreteShuntController(net, s, vm_set_pu=1.0 if k % 2 == 0 else 0.995, tol=0.02,
                                increment=2 if (name == "ieee123" and k == 1) else 1)


def thresholds(net):
    """(bus, threshold) pairs every controller compares a voltage with."""
    out = []
    for _, row in net.controller.iterrows():
        c = row.object
        if isinstance(c, DiscreteTapControl):
            bus = net.trafo.at[c.element_index, c.side + "_bus"]
            out += [(bus, c.vm_lower_pu), (bus, c.vm_upper_pu)]
        else:
            out += [(c.controlled_bus, c.vm_set_pu - c.tol), (c.controlled_bus, c.vm_set_pu + c.tol),
                    (c.controlled_bus, c.vm_set_pu)]
    return out


def starts(net, rng):
    """Starting (taps, steps): the network's own, then random ones."""
    has_tap = (net.trafo.tap_changer_type.notna() & net.trafo.tap_step_percent.notna()).to_numpy()
    taps0 = np.where(has_tap, net.trafo.tap_pos.fillna(0.0).to_numpy(dtype=float), 0.0)
    steps0 = net.shunt.step.to_numpy(dtype=float)
    out = [(taps0, steps0)]
    for _ in range(2):
        taps = taps0.copy()
        for t in net.trafo.index:
            if not np.isnan(net.trafo.at[t, "tap_step_percent"]) and net.trafo.at[t, "tap_changer_type"] is not None:
                lo, hi = int(net.trafo.at[t, "tap_min"]), int(net.trafo.at[t, "tap_max"])
                taps[t] = float(rng.integers(lo, hi + 1))
        steps = np.array([float(rng.integers(0, m + 1)) for m in net.shunt.max_step])
        out.append((taps, steps))
    return out


def solve(net, level, taps, steps, th):
    rc = sys.modules["pandapower.control.run_control"]
    net.load["scaling"] = net.load["scaling"] * level
    has_tap = net.trafo.tap_changer_type.notna() & net.trafo.tap_step_percent.notna()
    net.trafo["tap_pos"] = np.where(has_tap, taps, np.nan)
    net.shunt["step"] = steps.astype(np.int64)
    # pandapower 3.5.6's DiscreteShuntController.is_converged compares the step it
    # cached when it was made (or last moved) with its limits, not the shunt's
    # current step: sync the cache with the starting step, as a controller made
    # now would have it (powergrid always reads the current step).
    for c in net.controller.object:
        if isinstance(c, DiscreteShuntController):
            c.step = net.shunt.at[c.shunt_index, "step"]
    runs = [0]
    margin = [np.inf]
    orig = pp.runpp

    def counted(n, **kw):
        runs[0] += 1
        orig(n, **kw)
        if n.converged:
            vm = n.res_bus.vm_pu
            margin[0] = min(margin[0], min(abs(vm.at[b] - x) for b, x in th))

    rc.runpp = counted
    try:
        pp.runpp(net, run_control=True, tolerance_mva=TOL_MVA, max_iteration=100)
        converged, error = bool(net.converged), None
    except Exception as e:  # pandapower raises when the loop or a power flow fails
        converged, error = False, type(e).__name__
    finally:
        rc.runpp = orig
    res = {
        "vm_pu": net.res_bus.vm_pu.fillna(0.0).tolist(),
        "va_degree": net.res_bus.va_degree.fillna(0.0).tolist(),
        "trafo_tap_pos": net.trafo.tap_pos.fillna(0.0).astype(float).tolist(),
        "shunt_step": net.shunt.step.astype(float).tolist(),
    }
    return {
        "inputs": {
            "load_scaling": net.load.scaling.astype(float).tolist(),
            "trafo_tap_pos": [float(x) for x in taps],
            "shunt_step": [float(x) for x in steps],
        },
        "converged": converged,
        "error": error,
        "control_iterations": runs[0] - 1,
        "min_margin_pu": float(margin[0]),
        "results": res,
    }


def main():
    rng = np.random.default_rng(7)
    for name in ["ieee34", "ieee123", "ieee34_ieee13", "features"]:
        src = os.path.join(HERE, "..", "features", "network.json") if name == "features" \
            else os.path.join(SRC, name + ".json")
        net = pp.from_json(src)
        add_controllers(name, net)
        pp.to_json(net, os.path.join(HERE, name + ".json"))
        th = thresholds(net)
        scenarios = []
        dropped = 0
        for k, (taps, steps) in enumerate(starts(net, rng)):
            # The network's own start at every level, random starts at every other level.
            for i, level in enumerate(LEVELS):
                if k > 0 and (i + k) % 2:
                    continue
                # A decision closer to a threshold than the solvers could resolve
                # could go either way: nudge the level until every margin is > 1e-5.
                for nudge in [1.0, 1.01, 0.99, 1.02, 0.98]:
                    work = pp.from_json(os.path.join(HERE, name + ".json"))
                    s = solve(work, level * nudge, taps, steps, th)
                    if s["min_margin_pu"] > 1e-5:
                        break
                if s["error"] == "LoadflowNotConverged":
                    # A power flow pandapower cannot solve says nothing about control.
                    dropped += 1
                    continue
                scenarios.append(s)
        ok = [s for s in scenarios if s["converged"]]
        print(f"{name}: {len(scenarios)} scenarios ({dropped} dropped: power flow failed), {len(ok)} settled, "
              f"mean control iterations {np.mean([s['control_iterations'] for s in ok]):.2f}, "
              f"min margin {min(s['min_margin_pu'] for s in ok):.2e}, "
              f"taps moved {sum(s['results']['trafo_tap_pos'] != s['inputs']['trafo_tap_pos'] for s in ok)}, "
              f"steps moved {sum(s['results']['shunt_step'] != s['inputs']['shunt_step'] for s in ok)}")
        with open(os.path.join(HERE, name + "_reference.json"), "w") as f:
            json.dump({"network": name + ".json", "tolerance_mva": TOL_MVA, "scenarios": scenarios}, f)


if __name__ == "__main__":
    main()
