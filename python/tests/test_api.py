"""The Gymnasium / PettingZoo API checkers and the shape of every face."""

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from pettingzoo.test import parallel_api_test

import powergrid

SETUPS = powergrid.setup_names()


def test_every_shipped_setup_is_listed():
    assert {"ieee34_ieee13", "ieee34_ieee13_dso", "ieee34_voltvar"} <= set(SETUPS)


@pytest.mark.parametrize("setup", SETUPS)
def test_parallel_api(setup):
    # A full episode (96 steps) plus the checker's own cycles.
    parallel_api_test(powergrid.parallel_env(setup, seed=0), num_cycles=200)


@pytest.mark.parametrize("setup", SETUPS)
def test_gymnasium_check_env_single_copy(setup):
    env = powergrid.gym_env(setup)
    check_env(env, skip_render_check=True)


def test_parallel_env_episode_ends_by_truncation():
    env = powergrid.parallel_env("ieee34_ieee13", seed=1)
    obs, infos = env.reset(seed=3)
    assert set(obs) == set(env.possible_agents) == set(infos)
    steps = 0
    while env.agents:
        acts = {a: env.action_space(a).sample() for a in env.agents}
        obs, rew, term, trunc, infos = env.step(acts)
        steps += 1
        assert all(env.observation_space(a).contains(o) for a, o in obs.items())
    assert steps == powergrid.VecEnv("ieee34_ieee13").max_episode_steps
    assert all(trunc.values()) and not any(term.values())


def test_vecenv_spaces_and_layouts():
    env = powergrid.VecEnv("ieee34_ieee13", 3)
    assert env.agents == ["MG1", "MG2", "MG3"]
    for a in env.agents:
        assert isinstance(env.observation_spaces[a], gymnasium.spaces.Box)
        assert env.observation_spaces[a].shape == (env.obs_dims[a],)
        assert env.action_spaces[a].shape == (env.action_dims[a],)
        assert env.action_spaces[a].low.min() == -1 and env.action_spaces[a].high.max() == 1
        # one name per observation column, all distinct
        assert len(env.layouts[a]) == env.obs_dims[a]
        assert len(set(env.layouts[a])) == env.obs_dims[a]
    obs, infos = env.reset(seed=0)
    for a in env.agents:
        assert obs[a].dtype == np.float32 and obs[a].shape == (3, env.obs_dims[a])
    obs, rew, term, trunc, infos = env.step(
        {a: np.zeros((3, d), np.float32) for a, d in env.action_dims.items()}
    )
    for a in env.agents:
        assert rew[a].shape == term[a].shape == trunc[a].shape == (3,)
        assert rew[a].dtype == np.float32 and term[a].dtype == bool
        assert infos[a]["cost"].shape == (3,)
        assert np.isfinite(rew[a]).all()


def test_vector_env_is_a_gymnasium_vector_env():
    venv = powergrid.vector_env("ieee34_ieee13", 4, seed=0)
    assert isinstance(venv, gymnasium.vector.VectorEnv)
    assert venv.metadata["autoreset_mode"] == gymnasium.vector.AutoresetMode.NEXT_STEP
    vec = venv.vec
    dim = sum(vec.obs_dims.values())
    act = sum(vec.action_dims.values())
    assert venv.single_observation_space.shape == (dim,)
    assert venv.observation_space.shape == (4, dim)
    assert venv.single_action_space.shape == (act,)
    assert venv.action_space.shape == (4, act)
    assert len(venv.layout) == dim
    obs, info = venv.reset(seed=0)
    assert obs.shape == (4, dim) and venv.observation_space.contains(obs)
    # the centralised observation is the agents' observations side by side
    np.testing.assert_array_equal(obs[:, : vec.obs_dims["MG1"]], vec._obs["MG1"])
    done_seen = False
    for _ in range(vec.max_episode_steps + 1):
        obs, r, te, tr, info = venv.step(venv.action_space.sample())
        assert r.shape == te.shape == tr.shape == (4,)
        if tr.all():
            done_seen = True
            break
    assert done_seen
    # NEXT_STEP: the call after the last step resets and gives reward 0
    obs, r, te, tr, info = venv.step(venv.action_space.sample())
    assert info["reset"].all() and (r == 0).all() and not tr.any()


def test_vector_env_reward_follows_share_reward():
    venv = powergrid.vector_env("ieee34_ieee13", 2, seed=0)
    venv.reset(seed=0)
    _, r, *_ = venv.step(np.zeros(venv.action_space.shape, np.float32))
    m = venv.vec.reward_matrix
    expected = m[:, 0] if venv.vec.share_reward else m.sum(axis=1)
    np.testing.assert_allclose(r, expected, rtol=1e-6)
