"""The library's baseline policies, from Python."""

from __future__ import annotations

import time
from typing import Dict

import numpy as np

from . import _powergrid
from .env import VecEnv

#: Names of the library's baseline policies.
POLICIES = list(_powergrid.policies)


class Policy:
    """A baseline policy of the library for a :class:`VecEnv`: ``"zero"``
    (hold the grid as it is), ``"random"`` (uniform in [-1, 1] from per-copy
    ChaCha8 streams) or ``"heuristic"`` (price-driven dispatch and reactive
    support; see the library's ``env::policy``).

    ``policy(env)`` returns the actions for the env's current state as a dict
    of ``float32 [num_envs, action_dim]`` arrays (views of the policy's own
    buffers, overwritten by the next call). With the same seed as the env's
    ``reset``, it draws exactly what ``powergrid rollout --policy NAME --seed
    SEED`` draws, so the rewards are the rollout's.
    """

    def __init__(self, name: str, env: VecEnv, seed: int = 0):
        self.name = name
        self._core = _powergrid.PolicyCore(name, env._core, int(seed))
        self._actions = dict(zip(env.agents, self._core.action_views()))

    def __call__(self, env: VecEnv) -> Dict[str, np.ndarray]:
        self._core.fill(env._core)
        return self._actions


def rollout(
    setup: str = "ieee34_ieee13",
    envs: int = 1024,
    steps: int = 200,
    policy: str = "random",
    split: str = "train",
    backend: str = "cpu",
    seed: int = 0,
) -> dict:
    """Step a :class:`VecEnv` with a library policy from Python, the way
    ``powergrid rollout`` does: rewards averaged per agent over non-reset
    steps (in float64), then over agents."""
    env = VecEnv(setup, envs, backend=backend, split=split)
    env.reset(seed=seed)
    pol = Policy(policy, env, seed=seed)
    total = np.zeros(len(env.agents))
    counted = 0
    t0 = time.perf_counter()
    for _ in range(steps):
        env.step(pol(env))
        keep = ~env.raw_info["reset"]
        counted += int(keep.sum())
        total += env.reward_matrix[keep].astype(np.float64).sum(axis=0)
    secs = time.perf_counter() - t0
    per_agent = total / max(counted, 1)
    return {
        "setup": env.setup,
        "envs": envs,
        "steps": steps,
        "policy": policy,
        "split": split,
        "seed": seed,
        "env_steps_per_s": envs * steps / secs,
        "mean_reward": float(per_agent.mean()),
        "mean_reward_per_agent": dict(zip(env.agents, per_agent.tolist())),
    }
