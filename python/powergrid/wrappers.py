"""PettingZoo and Gymnasium faces of :class:`powergrid.VecEnv`."""

from __future__ import annotations

from typing import Optional

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.vector.utils import batch_space

from .env import VecEnv


def _central_dims(vec: VecEnv):
    """Observation columns of the centralised view: with ``centralized``
    observations every agent sees the same global vector (taken once);
    otherwise the agents' vectors are concatenated in agent order."""
    if vec.observation_mode == "centralized":
        return vec.obs_dims[vec.agents[0]], [vec.layouts[vec.agents[0]]]
    return sum(vec.obs_dims.values()), [
        [f"{a}/{c}" for c in vec.layouts[a]] for a in vec.agents
    ]


def _row(v):
    """Copy 0 of a ``[1, ...]`` info array: a Python scalar or a small array."""
    return v[0].item() if v.ndim == 1 else v[0].copy()


# --------------------------------------------------------------------------- #
# PettingZoo
# --------------------------------------------------------------------------- #
try:
    from pettingzoo import ParallelEnv as _ParallelBase
except ImportError:  # pettingzoo is optional
    _ParallelBase = object


class ParallelEnv(_ParallelBase):
    """PettingZoo ``ParallelEnv`` of one copy of a setup.

    Observations are fresh ``float32 [obs_dim]`` arrays (copies of the one
    row), rewards Python floats. After the last step of an episode every
    agent is truncated and ``agents`` is empty: call ``reset``.
    """

    metadata = {"name": "powergrid_v0", "render_modes": [], "is_parallelizable": True}

    def __init__(self, setup: str = "ieee34_ieee13", *, backend="cpu", split="train", seed=None):
        self._vec = VecEnv(setup, 1, backend=backend, split=split, seed=seed)
        self.possible_agents = list(self._vec.agents)
        self.agents = []
        self.render_mode = None
        self.observation_spaces = self._vec.observation_spaces
        self.action_spaces = self._vec.action_spaces
        self.layouts = self._vec.layouts
        #: ``agent -> parent``: a device agent's coordinator (``MG1/ESS1 -> MG1``), ``None`` at the top
        self.parents = self._vec.parents
        self._zero = {a: np.zeros((1, d), np.float32) for a, d in self._vec.action_dims.items()}

    def observation_space(self, agent):
        return self.observation_spaces[agent]

    def action_space(self, agent):
        return self.action_spaces[agent]

    def _infos(self, info):
        return {a: {k: _row(v) for k, v in info[a].items()} for a in self.agents}

    def reset(self, seed: Optional[int] = None, options: Optional[dict] = None):
        obs, info = self._vec.reset(seed)
        self.agents = list(self.possible_agents)
        return {a: obs[a][0].copy() for a in self.agents}, self._infos(info)

    def step(self, actions):
        if not self.agents:
            raise RuntimeError("the episode has ended: call reset()")
        full = {}
        for a in self.possible_agents:
            x = actions.get(a)
            full[a] = self._zero[a] if x is None else np.asarray(x, np.float32).reshape(1, -1)
        obs, rew, term, trunc, info = self._vec.step(full)
        agents = self.agents
        out = (
            {a: obs[a][0].copy() for a in agents},
            {a: float(rew[a][0]) for a in agents},
            {a: bool(term[a][0]) for a in agents},
            {a: bool(trunc[a][0]) for a in agents},
            self._infos(info),
        )
        if bool(term[agents[0]][0]) or bool(trunc[agents[0]][0]):
            self.agents = []
        return out

    def render(self):
        return None

    def close(self):
        pass

    def state(self):
        raise NotImplementedError("powergrid exposes per-agent observations; see vector_env for the global view")


def parallel_env(setup: str = "ieee34_ieee13", **kw) -> ParallelEnv:
    """PettingZoo ``ParallelEnv`` of one copy (``backend``, ``split``, ``seed``)."""
    if _ParallelBase is object:
        raise ImportError("parallel_env needs pettingzoo (pip install pettingzoo)")
    return ParallelEnv(setup, **kw)


# --------------------------------------------------------------------------- #
# Gymnasium, centralised control
# --------------------------------------------------------------------------- #
class CentralVectorEnv(gymnasium.vector.VectorEnv):
    """``gymnasium.vector.VectorEnv`` of ``num_envs`` copies under one
    controller: the action is every agent's action concatenated (agent order),
    the observation every agent's observation concatenated (or the one global
    vector with ``centralized`` observations), the reward the shared reward if
    the setup has ``share_reward`` and else the sum over agents.

    Autoreset is ``NEXT_STEP``. Observations are written into one buffer that
    the next call overwrites (``copy=True`` for fresh arrays); rewards and flags
    likewise.
    """

    metadata = {
        "autoreset_mode": gymnasium.vector.AutoresetMode.NEXT_STEP,
        "render_modes": [],
    }

    def __init__(
        self,
        setup="ieee34_ieee13",
        num_envs=1,
        *,
        backend="cpu",
        split="train",
        seed=None,
        copy=False,
        gpu_chunks=1,
        gpu_threads=1,
    ):
        self.vec = VecEnv(
            setup,
            num_envs,
            backend=backend,
            split=split,
            seed=seed,
            gpu_chunks=gpu_chunks,
            gpu_threads=gpu_threads,
        )
        self.num_envs = self.vec.num_envs
        self.copy = copy
        dim, cols = _central_dims(self.vec)
        self.layout = [c for group in cols for c in group]
        act = sum(self.vec.action_dims.values())
        self.single_observation_space = spaces.Box(-np.inf, np.inf, (dim,), np.float32)
        self.single_action_space = spaces.Box(-1.0, 1.0, (act,), np.float32)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.render_mode = None
        self._central = self.vec.observation_mode == "centralized"
        self._obs = np.empty((self.num_envs, dim), np.float32)
        self._rew = np.empty(self.num_envs, np.float32)
        bounds = np.cumsum([0] + list(self.vec.action_dims.values()))
        self._slices = [(a, bounds[i], bounds[i + 1]) for i, a in enumerate(self.vec.agents)]

    def _observe(self, obs):
        if self._central:
            o = obs[self.vec.agents[0]]
        else:
            o = np.concatenate([obs[a] for a in self.vec.agents], axis=1, out=self._obs)
        return o.copy() if self.copy else o

    def _info(self):
        return dict(self.vec.raw_info)

    def reset(self, *, seed=None, options=None):
        obs, _ = self.vec.reset(seed)
        return self._observe(obs), self._info()

    def step(self, actions):
        a = actions if isinstance(actions, np.ndarray) else np.asarray(actions, np.float32)
        if a.shape != self.action_space.shape:
            raise ValueError(f"actions have shape {a.shape}, expected {self.action_space.shape}")
        obs, _, term, trunc, _ = self.vec.step({n: a[:, s:e] for n, s, e in self._slices})
        m = self.vec.reward_matrix
        if self.vec.share_reward:
            r = m[:, 0]
        else:
            r = np.sum(m, axis=1, out=self._rew)
        t0, t1 = term[self.vec.agents[0]], trunc[self.vec.agents[0]]
        if self.copy:
            r, t0, t1 = r.copy(), t0.copy(), t1.copy()
        return self._observe(obs), r, t0, t1, self._info()

    def close_extras(self, **kwargs):
        pass


def vector_env(setup: str = "ieee34_ieee13", num_envs: int = 1, **kw) -> CentralVectorEnv:
    """``gymnasium.vector.VectorEnv`` for centralised control of ``num_envs``
    copies (``backend``, ``split``, ``seed``, ``copy``, and on the GPU
    ``gpu_chunks`` and ``gpu_threads`` as :class:`VecEnv` has them)."""
    return CentralVectorEnv(setup, num_envs, **kw)


class CentralEnv(gymnasium.Env):
    """Single-copy ``gymnasium.Env`` for centralised control (the view of
    :class:`CentralVectorEnv` with one copy; ``terminated``/``truncated`` by
    time, reset needed after the last step)."""

    metadata = {"render_modes": []}

    def __init__(self, setup="ieee34_ieee13", *, backend="cpu", split="train", seed=None):
        self._venv = CentralVectorEnv(setup, 1, backend=backend, split=split, seed=seed, copy=True)
        self.observation_space = self._venv.single_observation_space
        self.action_space = self._venv.single_action_space
        self.layout = self._venv.layout

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if seed is None:
            seed = int(self.np_random.integers(0, 2**63 - 1))
        obs, info = self._venv.reset(seed=seed)
        return obs[0], {k: _row(v) for k, v in info.items()}

    def step(self, action):
        a = np.asarray(action, np.float32).reshape(1, -1)
        obs, r, te, tr, info = self._venv.step(a)
        return (
            obs[0],
            float(r[0]),
            bool(te[0]),
            bool(tr[0]),
            {k: _row(v) for k, v in info.items()},
        )


def gym_env(setup: str = "ieee34_ieee13", **kw) -> CentralEnv:
    """Single-copy ``gymnasium.Env`` (centralised control)."""
    return CentralEnv(setup, **kw)
