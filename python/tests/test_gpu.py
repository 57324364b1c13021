"""backend="gpu" from Python (any wgpu adapter, lavapipe included) against the CPU.

Without an adapter this is skipped, unless POWERGRID_REQUIRE_GPU=1 (set by
.ci/run, which installs lavapipe) makes it a failure, as in the Rust tests.
"""

import os

import numpy as np
import pytest

import powergrid


def gpu_env(n):
    try:
        return powergrid.VecEnv("ieee34_ieee13", n, backend="gpu")
    except ValueError as e:
        if "GPU" in str(e) and os.environ.get("POWERGRID_REQUIRE_GPU") != "1":
            pytest.skip(f"no GPU adapter: {e}")
        raise


def side_by_side(envs, seed, steps):
    """Each step's rewards of `envs`, reset with `seed` and stepped with their
    own random policies of that seed."""
    pols = []
    for e in envs:
        e.reset(seed=seed)
        pols.append(powergrid.Policy("random", e, seed=seed))
    for _ in range(steps):
        yield [e.step(p(e))[1] for e, p in zip(envs, pols)]


def test_gpu_backend_matches_cpu():
    gpu = gpu_env(32)
    assert gpu.backend.startswith("gpu")
    cpu = powergrid.VecEnv("ieee34_ieee13", 32, backend="cpu")
    for rg, rc in side_by_side((gpu, cpu), seed=2, steps=4):
        for a in gpu.agents:
            # f32 voltages on the GPU: rewards agree to well below a cent
            np.testing.assert_allclose(rg[a], rc[a], rtol=0, atol=1e-3)


def test_gpu_f64_powerflow_matches_cpu(root):
    """gpu_precision="f64": the GPU solver in f64 gives the CPU's answer to
    far below the f32 path's 1e-5 p.u. (lavapipe and NVIDIA have f64 shaders)."""
    net = os.path.join(root, "networks", "ieee123.yml")
    try:
        gpu = powergrid.PowerFlow(net, 8, backend="gpu", gpu_precision="f64")
    except ValueError as e:
        if "GPU" in str(e) and os.environ.get("POWERGRID_REQUIRE_GPU") != "1":
            pytest.skip(f"no GPU adapter or no f64 shaders: {e}")
        raise
    assert gpu.backend.startswith("gpu (f64")
    cpu = powergrid.PowerFlow(net, 8)
    rng = np.random.default_rng(0)
    f = rng.uniform(0.8, 1.2, cpu.inputs["load_p_mw"].shape)
    for pf in (gpu, cpu):
        pf.inputs["load_p_mw"][:] *= f
        assert pf.solve().all()
    np.testing.assert_allclose(gpu.results["vm_pu"], cpu.results["vm_pu"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(
        gpu.results["line_loading_percent"], cpu.results["line_loading_percent"], rtol=0, atol=1e-4
    )


def test_gpu_precision_is_checked():
    with pytest.raises(ValueError, match="f16"):
        powergrid.PowerFlow("networks/ieee13.yml", 1, gpu_precision="f16")


def test_gpu_chunks_give_one_chunks_rewards():
    """gpu_chunks=2: each half of the batch prepared, submitted and read back
    on its own gives one chunk's rewards exactly."""
    one = gpu_env(16)
    two = powergrid.VecEnv("ieee34_ieee13", 16, backend="gpu", gpu_chunks=2)
    assert "2 dispatches" in two.backend and "dispatches" not in one.backend
    for r1, r2 in side_by_side((one, two), seed=3, steps=3):
        for a in one.agents:
            np.testing.assert_array_equal(r1[a], r2[a])


def test_gpu_threads_give_one_threads_rewards():
    """gpu_threads=2: the batch in two parts, each driven by its own host
    thread (its own device buffers and control loop), gives one thread's
    rewards exactly; so do PowerFlow's results."""
    one = gpu_env(16)
    two = powergrid.VecEnv("ieee34_ieee13", 16, backend="gpu", gpu_threads=2)
    assert two.backend.endswith("2 host threads)") and "host threads" not in one.backend
    for r1, r2 in side_by_side((one, two), seed=3, steps=3):
        for a in one.agents:
            np.testing.assert_array_equal(r1[a], r2[a])
    pfs = [
        powergrid.PowerFlow("networks/ieee123.yml", 5, backend="gpu", gpu_threads=t) for t in (1, 2)
    ]
    for pf in pfs:
        pf.inputs["load_scaling"][:] = np.linspace(0.7, 1.1, 5)[:, None]
        assert pf.solve().all()
    for k in ("vm_pu", "line_loading_percent"):
        np.testing.assert_array_equal(pfs[0].results[k], pfs[1].results[k])


def test_vector_env_takes_the_gpu_options():
    """The Gymnasium vector env passes gpu_chunks and gpu_threads through:
    the same rewards as one thread and one chunk."""
    gpu_env(1)  # skips where there is no adapter
    envs = [
        powergrid.vector_env("ieee34_ieee13", 8, backend="gpu", seed=1, **kw)
        for kw in ({}, {"gpu_threads": 2, "gpu_chunks": 2})
    ]
    assert envs[1].vec.backend.endswith("2 dispatches, 2 host threads)"), envs[1].vec.backend
    rng = np.random.default_rng(0)
    for e in envs:
        e.reset(seed=1)
    for _ in range(3):
        a = rng.uniform(-1, 1, envs[0].action_space.shape).astype(np.float32)
        r = [e.step(a)[1] for e in envs]
        np.testing.assert_array_equal(r[0], r[1])


@pytest.mark.parametrize("name", ["gpu_chunks", "gpu_threads"])
def test_gpu_counts_are_checked(name):
    with pytest.raises(ValueError, match=name):
        powergrid.VecEnv("ieee34_ieee13", 2, **{name: 0})
    with pytest.raises(ValueError, match=name):
        powergrid.PowerFlow("networks/ieee13.yml", 1, **{name: 0})
