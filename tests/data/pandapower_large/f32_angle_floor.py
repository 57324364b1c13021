"""Why the f32 GPU solver cannot reach 1e-3 pp of line loading on meshed
transmission networks, whatever it does in its iterations: take pandapower's
own converged voltages, round only the angles (and |V| − 1) to f32, and
recompute the line currents from them in f64. The loading moves by

    case1354pegase s=1.0: 1.4e-03 pp   case1888rte s=1.0: 9.1e-03 pp
    case1354pegase s=1.05: 3.1e-03 pp  case1888rte s=1.05: 1.6e-02 pp

(pandapower 3.5.6): the angles span most of a radian, their f32 spacing is
6e-8 rad, and a stiff line (|y_s| ~ 1e3 p.u.) turns that into |y_s|·6e-8 of
current. Re-referencing the angles to the base case does not help: a 5 %
load change moves the angles by up to 0.4–1.1 rad relative to the slack.
Hence `GpuPrecision::F64` (the same shader in f64; `tests/pandapower_large.rs`
`gpu_f64_matches_pandapower_runpp`).

    venv/bin/python tests/data/pandapower_large/f32_angle_floor.py
"""
import warnings

import numpy as np
import pandapower as pp
import pandapower.networks as pn

warnings.filterwarnings("ignore")


def f32(x):
    return x.astype(np.float32).astype(np.float64)


def main():
    for name, scalings in [("case1354pegase", [1.0, 0.95, 1.05]), ("case1888rte", [1.0, 1.05])]:
        net = getattr(pn, name)()
        base = net.load.scaling.copy()
        for s in scalings:
            net.load.scaling = base * s
            pp.runpp(net, tolerance_mva=1e-10)
            ppc = net._ppc
            yf, yt, v = ppc["internal"]["Yf"], ppc["internal"]["Yt"], ppc["internal"]["V"]
            lo, hi = net._pd2ppc_lookups["branch"]["line"]
            fb = net.bus.index.get_indexer(net.line.from_bus.values)
            base_ka = ppc["baseMVA"] / (np.sqrt(3) * net.bus.vn_kv.values[fb])
            imax = net.line.max_i_ka.values * net.line.df.values * net.line.parallel.values

            def loading(vx):
                i = np.maximum(np.abs(yf @ vx), np.abs(yt @ vx))[lo:hi]
                return i * base_ka / imax * 100

            vm, va = np.abs(v), np.angle(v)
            rounded = (1 + f32(vm - 1)) * np.exp(1j * f32(va))
            d = np.abs(loading(rounded) - loading(v)).max()
            print(f"{name} s={s}: angles and |V|-1 rounded to f32 move line loading by {d:.1e} pp "
                  f"(angles span {np.ptp(va):.2f} rad)")


if __name__ == "__main__":
    main()
