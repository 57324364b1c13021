"""Bad actions raise ValueError naming agent and shape; state is unchanged."""

import numpy as np
import pytest

import powergrid


def actions(env, rng):
    return {a: rng.uniform(-1, 1, (env.num_envs, d)).astype(np.float32) for a, d in env.action_dims.items()}


def bad_cases(env):
    b = env.num_envs
    d = env.action_dims["MG2"]
    nan = np.zeros((b, d), np.float32)
    nan[1, 2] = np.nan
    inf = np.zeros((b, d), np.float64)
    inf[0, 0] = -np.inf
    return [
        ("MG2", nan, r"MG2.*NaN|NaN.*MG2"),
        ("MG2", inf, r"MG2.*inf|inf.*MG2"),
        ("MG2", np.zeros((b + 1, d), np.float32), r"MG2.*\(4, 5\).*\(3, 5\)"),
        ("MG2", np.zeros((b, d + 1), np.float32), r"MG2.*\(3, 6\)"),
        ("MG2", np.zeros(d, np.float32), r"MG2.*\(5,\)"),
        ("MG2", [["a"] * d] * b, r"MG2.*not numeric"),
    ]


@pytest.mark.parametrize("case", range(6))
def test_bad_actions_raise_and_change_nothing(case):
    rng = np.random.default_rng(1)
    env, twin = powergrid.VecEnv("ieee34_ieee13", 3), powergrid.VecEnv("ieee34_ieee13", 3)
    env.reset(seed=4)
    twin.reset(seed=4)
    for _ in range(2):
        a = actions(env, rng)
        env.step(a)
        twin.step(a)
    agent, bad, pattern = bad_cases(env)[case]
    obs_before = {k: v.copy() for k, v in env._obs.items()}
    a = actions(env, rng)
    with pytest.raises(ValueError, match=pattern):
        env.step({**a, agent: bad})
    # nothing moved: the outputs are those of the last good step ...
    for k in obs_before:
        np.testing.assert_array_equal(env._obs[k], obs_before[k])
    # ... and the next good step matches a twin that never saw the bad call
    o1, r1, *_ = env.step(a)
    o2, r2, *_ = twin.step(a)
    for k in env.agents:
        np.testing.assert_array_equal(o1[k], o2[k])
        np.testing.assert_array_equal(r1[k], r2[k])


def test_missing_and_unknown_agents():
    env = powergrid.VecEnv("ieee34_ieee13", 2)
    env.reset(seed=0)
    a = {k: np.zeros((2, d), np.float32) for k, d in env.action_dims.items()}
    with pytest.raises(ValueError, match="MG3"):
        env.step({k: v for k, v in a.items() if k != "MG3"})
    with pytest.raises(ValueError, match="nobody"):
        env.step({**a, "nobody": a["MG1"]})


def test_bad_construction():
    with pytest.raises((ValueError, OSError), match="no_such_setup"):
        powergrid.VecEnv("no_such_setup", 2)
    with pytest.raises(ValueError, match="num_envs"):
        powergrid.VecEnv("ieee34_ieee13", 0)
    with pytest.raises(ValueError, match="backend"):
        powergrid.VecEnv("ieee34_ieee13", 1, backend="tpu")
    with pytest.raises(ValueError, match="split"):
        powergrid.VecEnv("ieee34_ieee13", 1, split="validation")


def test_powerflow_bad_inputs(root):
    pf = powergrid.PowerFlow(root / "networks" / "ieee13.yml", 2)
    pf.inputs["load_p_mw"][1, 0] = np.nan
    with pytest.raises(ValueError, match="load"):
        pf.solve()
    with pytest.raises((ValueError, OSError), match="nothing.yml"):
        powergrid.PowerFlow(root / "networks" / "nothing.yml", 1)
