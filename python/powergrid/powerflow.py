"""Batched power flow from Python: :class:`PowerFlow`."""

from __future__ import annotations

import os
from typing import Dict, Optional

import numpy as np

from . import _powergrid


class PowerFlow:
    """``num_copies`` copies of one network, solved as a batch.

    ``network`` is a path (the project's ``.yml`` or a pandapower ``.json``)
    or a pandapower ``net`` object (read through ``pandapower.to_json``; the
    element order of its tables is kept). ``backend`` is ``"cpu"``, ``"gpu"``
    or ``"auto"``; ``gpu_precision="f64"`` runs the GPU solver in f64 (meshed
    transmission networks, where f32 angles cost about 1e-2 pp of line
    loading; needs an adapter with f64 shaders); ``gpu_chunks=N`` splits
    the batch into N chunks solved one after another on the GPU, so the
    host's work on one overlaps the device's on another, and
    ``gpu_threads=N`` drives the GPU from N host threads, each with its part
    of the batch (the same results either way).

    ``inputs`` is a dict of writable ``float64 [num_copies, n]`` numpy views
    of the solver's set-points (``load_p_mw``, ``load_q_mvar``,
    ``load_scaling``, ``sgen_p_mw``, ``sgen_q_mvar``, ``storage_p_mw``,
    ``trafo_tap_pos``, ``shunt_step``, ``gen_p_mw``, ``gen_vm_pu``),
    initialised from the network: write
    into them in place (``pf.inputs["load_p_mw"][:] *= 1.1``) and call
    :meth:`solve`. ``results`` is a dict of read-only views (``vm_pu``,
    ``va_degree``, ``line_p_from_mw``, ``line_q_from_mvar``, ``line_i_ka``,
    ``line_loading_percent``, ``trafo_loading_percent``, ``trafo_p_hv_mw``,
    ``trafo_q_hv_mvar``, ``trafo_p_lv_mw``, ``trafo_q_lv_mvar`` (power into
    the trafo at its HV / LV bus), ``ext_grid_p_mw``,
    ``ext_grid_q_mvar``, ``gen_p_mw``, ``gen_q_mvar``), overwritten by the
    next solve. Arrays follow the
    element order of the network's tables; buses cut off from every slack
    read 0. Loads consume ``p_mw * scaling``; storage ``p_mw`` > 0 charges.

    ``enforce_q_lims=True`` is pandapower's ``runpp(enforce_q_lims=True)``
    per copy: gens whose Q leaves ``[min_q_mvar, max_q_mvar]`` are held at
    that limit (their ``gen_q_mvar``) and their buses turned PQ (CPU or GPU;
    off by default, as in ``runpp``).
    """

    def __init__(
        self,
        network,
        num_copies: int = 1,
        backend: str = "cpu",
        tolerance_pu: Optional[float] = None,
        gpu_precision: str = "f32",
        enforce_q_lims: bool = False,
        gpu_chunks: int = 1,
        gpu_threads: int = 1,
    ):
        if isinstance(network, (str, os.PathLike)):
            self._core = _powergrid.PowerFlowCore(
                os.fspath(network),
                int(num_copies),
                backend,
                False,
                tolerance_pu,
                gpu_precision,
                bool(enforce_q_lims),
                int(gpu_chunks),
                int(gpu_threads),
            )
        else:
            try:
                import pandapower
            except ImportError:
                raise TypeError(
                    "network must be a path or a pandapower net (pandapower is not installed)"
                ) from None
            text = pandapower.to_json(network)
            self._core = _powergrid.PowerFlowCore(
                text,
                int(num_copies),
                backend,
                True,
                tolerance_pu,
                gpu_precision,
                bool(enforce_q_lims),
                int(gpu_chunks),
                int(gpu_threads),
            )
        self.backend = self._core.description
        self.num_copies = self._core.num_copies
        self.bus_names = list(self._core.bus_names)
        self.inputs: Dict[str, np.ndarray] = self._core.input_views()
        self.results: Dict[str, np.ndarray] = self._core.result_views()
        self.converged = np.zeros(self.num_copies, bool)
        self.iterations = np.zeros(self.num_copies, np.uint32)
        self.max_mismatch_pu = np.full(self.num_copies, np.inf)

    def solve(self) -> np.ndarray:
        """Solve every copy (warm-started from its last converged state);
        returns ``converged [num_copies]``. Inputs are validated first (NaN,
        taps out of range → ``ValueError``, nothing solved)."""
        self.converged, self.iterations, self.max_mismatch_pu = self._core.solve()
        return self.converged

    def __repr__(self):
        return f"powergrid.PowerFlow({len(self.bus_names)} buses x {self.num_copies} copies on {self.backend})"
