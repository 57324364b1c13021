"""The library's baseline policies and rollout job, from Python."""

from __future__ import annotations

import json
from typing import Dict

import numpy as np

from . import _powergrid
from .env import VecEnv

#: Names of the library's baseline policies.
POLICIES = list(_powergrid.policies)


class Policy:
    """A baseline policy of the library (``"zero"``, ``"random"``, and
    ``"heuristic"`` where the library has it) for a :class:`VecEnv`.

    ``policy(env)`` returns the actions for the env's current state as a dict
    of ``float32 [num_envs, action_dim]`` arrays (views of the policy's own
    buffers, overwritten by the next call). The random policy draws from the
    same per-copy streams as ``powergrid rollout --policy random --seed
    SEED``, so stepping a ``VecEnv`` reset with ``SEED`` reproduces the
    rollout's rewards.
    """

    def __init__(self, name: str, env: VecEnv, seed: int = 0):
        self.name = name
        self._core = _powergrid.PolicyCore(name, env._core, int(seed))
        views = self._core.action_views()
        self._actions = dict(zip(env.agents, views))

    def __call__(self, env: VecEnv) -> Dict[str, np.ndarray]:
        self._core.fill(env._core)
        return self._actions


def rollout(
    setup: str = "ieee34_ieee13",
    envs: int = 1024,
    steps: int = 200,
    policy: str = "random",
    backend: str = "cpu",
    seed: int = 0,
) -> dict:
    """Run ``powergrid rollout`` in this process; returns its JSON summary
    (``env_steps_per_s``, ``mean_reward``, ``mean_reward_per_agent``, ...)."""
    return json.loads(_powergrid.rollout(setup, envs, steps, policy, backend, seed))
