"""Hierarchical and delayed setups from Python: PettingZoo names and parents,
the PettingZoo API checker, and the timing metadata."""

import numpy as np
from pettingzoo.test import parallel_api_test

import powergrid


def test_hierarchical_setup_passes_parallel_api_test():
    env = powergrid.parallel_env("ieee34_ieee13_hierarchical", seed=0)
    parallel_api_test(env, num_cycles=200)


def test_hierarchical_agents_are_named_coordinator_slash_device():
    env = powergrid.parallel_env("ieee34_ieee13_hierarchical", seed=0)
    assert env.possible_agents[:4] == ["MG1", "MG1/DG1", "MG1/ESS1", "MG1/PV1"]
    assert len(env.possible_agents) == 12
    for a in env.possible_agents:
        want = a.split("/")[0] if "/" in a else None
        assert env.parents[a] == want
    obs, infos = env.reset(seed=1)
    assert set(obs) == set(env.possible_agents)
    # a device agent sees its coordinator's set-points (ESS: one value)
    assert "MG1/ESS1 message[0]" in env.layouts["MG1/ESS1"]
    # the PCC import of a device agent is its coordinator's
    vec = powergrid.VecEnv("ieee34_ieee13_hierarchical", 2)
    _, info = vec.reset(seed=0)
    np.testing.assert_array_equal(info["MG2/ESS2"]["pcc_import_mw"], info["MG2"]["pcc_import_mw"])


def test_delayed_setup_keeps_the_plain_spaces_and_reports_ticks():
    plain = powergrid.VecEnv("ieee34_ieee13", 2)
    vec = powergrid.VecEnv("ieee34_ieee13_delayed", 2)
    assert vec.agents == plain.agents
    assert vec.obs_dims == plain.obs_dims and vec.action_dims == plain.action_dims
    assert vec.timing["MG3"] == (2, 1, 1)
    _, info = vec.reset(seed=0)
    zeros = {a: np.zeros((2, d), np.float32) for a, d in vec.action_dims.items()}
    ticks = []
    for _ in range(4):
        ticks.append(bool(info["MG3"]["acts_next"][0]))
        assert info["MG1"]["acts_next"].all()
        _, _, _, _, info = vec.step(zeros)
    assert ticks == [True, False, True, False]
