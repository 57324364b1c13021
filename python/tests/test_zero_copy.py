"""Observations and rewards are numpy views of the Rust buffers."""

import numpy as np

import powergrid


def addr(a):
    return a.__array_interface__["data"][0]


def test_same_buffer_across_steps_and_resets():
    env = powergrid.VecEnv("ieee34_ieee13", 8, seed=0)
    obs, info = env.reset(seed=0)
    first_obs = {a: addr(o) for a, o in obs.items()}
    zero = {a: np.zeros((8, d), np.float32) for a, d in env.action_dims.items()}
    obs, rew, term, trunc, info = env.step(zero)
    first_rew = {a: addr(r) for a, r in rew.items()}
    before = obs["MG1"].copy()
    for t in range(120):  # across an episode boundary (autoreset) too
        obs2, rew2, term2, trunc2, info2 = env.step(zero)
        assert {a: addr(o) for a, o in obs2.items()} == first_obs
        assert {a: addr(r) for a, r in rew2.items()} == first_rew
        assert addr(term2["MG1"]) == addr(term["MG1"])
        assert obs2["MG1"] is obs["MG1"]
    env.reset(seed=1)
    assert {a: addr(o) for a, o in env.reset(seed=2)[0].items()} == first_obs
    # the arrays handed out earlier were overwritten in place
    assert not np.array_equal(before, obs["MG1"])
    # rewards of every agent are columns of one [B, n_agents] buffer
    m = env.reward_matrix
    assert addr(rew["MG2"]) == addr(m) + m.strides[1]


def test_views_are_read_only():
    env = powergrid.VecEnv("ieee34_ieee13", 2)
    obs, _ = env.reset(seed=0)
    assert not obs["MG1"].flags.writeable
    assert not obs["MG1"].flags.owndata


def test_copy_true_gives_fresh_arrays():
    env = powergrid.VecEnv("ieee34_ieee13", 2, copy=True)
    obs, _ = env.reset(seed=0)
    zero = {a: np.zeros((2, d), np.float32) for a, d in env.action_dims.items()}
    obs2, rew2, *_ = env.step(zero)
    obs3, rew3, *_ = env.step(zero)
    assert addr(obs2["MG1"]) != addr(obs3["MG1"])
    assert obs2["MG1"].flags.owndata and obs2["MG1"].flags.writeable
    assert not np.array_equal(obs2["MG1"], obs3["MG1"])


def test_float32_float64_and_strided_actions_agree():
    rng = np.random.default_rng(0)
    envs = [powergrid.VecEnv("ieee34_ieee13", 4) for _ in range(3)]
    for e in envs:
        e.reset(seed=5)
    for _ in range(3):
        acts = {a: rng.uniform(-1, 1, (4, d)).astype(np.float32) for a, d in envs[0].action_dims.items()}
        r32 = envs[0].step(acts)[1]["MG1"].copy()
        r64 = envs[1].step({a: x.astype(np.float64) for a, x in acts.items()})[1]["MG1"].copy()
        # a Fortran-ordered float32 array: read through its strides
        rf = envs[2].step({a: np.asfortranarray(x) for a, x in acts.items()})[1]["MG1"].copy()
        np.testing.assert_array_equal(r32, r64)
        np.testing.assert_array_equal(r32, rf)
