"""The same seed in Python and in `powergrid rollout` gives the same rewards."""

import json
import subprocess

import pytest

import powergrid
from conftest import powergrid_binary


@pytest.mark.parametrize(
    "policy,split", [("random", "train"), ("zero", "train"), ("heuristic", "test")]
)
def test_same_seed_same_rewards_as_the_cli(policy, split):
    exe = powergrid_binary()
    if exe is None:
        pytest.fail("target/release/powergrid not built: run `cargo build --release` first")
    setup, envs, steps, seed = "ieee34_ieee13", 16, 110, 7  # 110 > 96: crosses an autoreset
    out = subprocess.run(
        [str(exe), "rollout", "--setup", setup, "--envs", str(envs), "--steps", str(steps),
         "--policy", policy, "--split", split, "--seed", str(seed), "--backend", "cpu", "--json"],
        check=True, capture_output=True, text=True,
    )
    cli = json.loads(out.stdout)
    py = powergrid.rollout(setup, envs, steps, policy, split=split, seed=seed)
    for a, r in py["mean_reward_per_agent"].items():
        assert r == pytest.approx(cli["mean_reward_per_agent"][a], rel=1e-9, abs=1e-9)
    assert py["mean_reward"] == pytest.approx(cli["mean_reward"], rel=1e-9)


def test_seeds_matter():
    a = powergrid.rollout("ieee34_ieee13", 8, 20, "random", seed=3)["mean_reward"]
    b = powergrid.rollout("ieee34_ieee13", 8, 20, "random", seed=3)["mean_reward"]
    c = powergrid.rollout("ieee34_ieee13", 8, 20, "random", seed=4)["mean_reward"]
    assert a == b
    assert c != pytest.approx(a, rel=1e-6)
