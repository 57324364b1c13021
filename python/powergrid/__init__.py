"""powergrid: thousands of copies of a power distribution grid for RL.

- :class:`VecEnv` — the batched multi-agent core (numpy views, no copies).
- :func:`parallel_env` — a PettingZoo ``ParallelEnv`` of one copy.
- :func:`vector_env` — a ``gymnasium.vector.VectorEnv`` for centralised control.
- :func:`gym_env` — a single-copy ``gymnasium.Env`` for centralised control.
- :class:`PowerFlow` — batched power flow on a network file or a pandapower net.
- :class:`Policy` / :func:`rollout` — the library's baseline policies (zero,
  random, heuristic) and a rollout loop over them.
"""

from __future__ import annotations

from . import _powergrid
from ._powergrid import setup_names
from .env import VecEnv
from .wrappers import gym_env, parallel_env, vector_env
from .powerflow import PowerFlow
from .policies import Policy, rollout

__all__ = [
    "VecEnv",
    "parallel_env",
    "vector_env",
    "gym_env",
    "PowerFlow",
    "Policy",
    "rollout",
    "setup_names",
]
