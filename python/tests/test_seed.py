"""The same seed in Python and in `powergrid rollout` gives the same rewards."""

import json
import subprocess

import numpy as np
import pytest

import powergrid
from conftest import powergrid_binary


def python_rollout(setup, envs, steps, policy, seed):
    """Step a VecEnv from Python with the library's policy and average the
    rewards like `powergrid rollout` (per agent over non-reset steps, in f64)."""
    env = powergrid.VecEnv(setup, envs)
    env.reset(seed=seed)
    pol = powergrid.Policy(policy, env, seed=seed)
    total = np.zeros(len(env.agents))
    counted = 0
    for _ in range(steps):
        obs, rew, term, trunc, infos = env.step(pol(env))
        keep = ~infos[env.agents[0]]["reset"]
        counted += int(keep.sum())
        total += env.reward_matrix[keep].astype(np.float64).sum(axis=0)
    per_agent = total / counted
    return dict(zip(env.agents, per_agent)), float(per_agent.mean())


@pytest.mark.parametrize("policy", ["random", "zero"])
def test_same_seed_same_rewards_as_the_cli(policy):
    exe = powergrid_binary()
    if exe is None:
        pytest.skip("target/release/powergrid not built (run `cargo build --release`)")
    setup, envs, steps, seed = "ieee34_ieee13", 16, 110, 7  # 110 > 96: crosses an autoreset
    out = subprocess.run(
        [str(exe), "rollout", "--setup", setup, "--envs", str(envs), "--steps", str(steps),
         "--policy", policy, "--seed", str(seed), "--backend", "cpu", "--json"],
        check=True, capture_output=True, text=True,
    )
    cli = json.loads(out.stdout)
    per_agent, mean = python_rollout(setup, envs, steps, policy, seed)
    for a, r in per_agent.items():
        assert r == pytest.approx(cli["mean_reward_per_agent"][a], rel=1e-9, abs=1e-9)
    assert mean == pytest.approx(cli["mean_reward"], rel=1e-9)


def test_same_seed_same_rewards_in_process():
    per_agent, mean = python_rollout("ieee34_ieee13", 8, 20, "random", 3)
    lib = powergrid.rollout("ieee34_ieee13", envs=8, steps=20, policy="random", seed=3)
    assert mean == pytest.approx(lib["mean_reward"], rel=1e-9)
    # and another seed gives other rewards
    _, other = python_rollout("ieee34_ieee13", 8, 20, "random", 4)
    assert other != pytest.approx(mean, rel=1e-6)
