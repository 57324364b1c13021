"""The batched multi-agent environment, :class:`VecEnv`."""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import numpy as np
from gymnasium import spaces

from . import _powergrid

_FLOAT = (np.dtype(np.float32), np.dtype(np.float64))


class VecEnv:
    """``num_envs`` copies of a setup stepped in lockstep.

    ``reset(seed)`` returns ``(obs, infos)`` and ``step(actions)`` returns
    ``(obs, rewards, terminations, truncations, infos)``, each a dict keyed by
    agent name: observations ``float32 [num_envs, obs_dim]``, rewards
    ``float32 [num_envs]``, flags ``bool [num_envs]``; ``infos[agent]`` is a
    dict of ``[num_envs]`` arrays (``cost``, ``safety``, ``converged``,
    ``reset``, ``price``, ``voltage_violation``, ``hour``,
    ``control_iterations``, ``controller_wear_cost``, ``pcc_import_mw`` for
    grid agents) and ``terms`` ``[num_envs, n_terms]`` (the reward's terms,
    named by ``reward_terms``), and ``acts_next`` (whether the next ``step``
    reads the agent's action for the copy; otherwise its last action is held,
    see ``timing``).

    **Agents** are ``agents`` in action order; a device agent under a
    coordinator is named ``<coordinator>/<device agent>`` (``MG1/ESS1``) and
    ``parents`` maps every agent to its coordinator (``None`` at the top).
    ``timing`` gives each agent's ``(tick_every, obs_delay, act_delay)``.
    A policy trained on one setup is evaluated under another's timing by
    building the env of that setup (``VecEnv("ieee34_ieee13_delayed")``:
    same agents and spaces as ``ieee34_ieee13``) and stepping it as before.

    **No copies.** Observations, rewards, flags and infos are read-only numpy
    views of the Rust buffers. The same arrays (same memory) come back from
    every call and **are overwritten by the next ``step``/``reset``**: keep a
    value with ``.copy()``, or build the env with ``copy=True`` to get fresh
    arrays every call.

    **Actions** are a dict ``agent -> [num_envs, action_dim]`` in ``[-1, 1]``
    (clipped; all zeros holds the grid as it is). float32 or float64 arrays of
    any layout are read in place (a call mixing the two converts its float64
    arrays); anything else (lists, ints) is converted once with
    ``np.asarray(x, np.float32)``. A missing agent, a wrong shape, NaN or an
    infinite value raises ``ValueError`` naming the agent and the shape, and
    leaves every copy's state unchanged.

    **Episodes** end by time (``truncations``; ``terminations`` is always
    false). Autoreset is Gymnasium's ``NEXT_STEP``: the step after a copy's
    last one ignores that copy's actions, resets it and returns its first
    observation with reward 0 and ``infos[agent]["reset"]`` true.

    ``split="train"`` starts episodes on random days of the training year
    (seeded per copy); ``split="test"`` walks the test year's days in order.
    ``seed`` is used by ``reset()`` when it gets none (then the next seeds
    follow from it). ``gpu_chunks=N`` (GPU backend) splits the batch into N
    chunks solved one after another, so the host's work on one overlaps the
    device's on another; ``gpu_threads=N`` drives the GPU from N host
    threads, each with its part of the batch (its own device buffers and
    control loop), so the host's work runs on N cores and overlaps the
    device's work on the other parts. The results are the same either way.
    """

    def __init__(
        self,
        setup: str,
        num_envs: int = 1,
        backend: str = "cpu",
        split: str = "train",
        seed: Optional[int] = None,
        copy: bool = False,
        gpu_chunks: int = 1,
        gpu_threads: int = 1,
    ):
        if int(num_envs) < 1:
            raise ValueError(f"num_envs must be at least 1, got {num_envs}")
        self._core = _powergrid.Env(
            str(setup), int(num_envs), backend, split, int(gpu_chunks), int(gpu_threads)
        )
        self.setup = self._core.setup_name
        self.num_envs = self._core.num_envs
        self.split = split
        self.copy = bool(copy)
        self.backend = self._core.backend
        self.share_reward = self._core.share_reward
        self.max_episode_steps = self._core.max_episode_steps
        self.observation_mode = self._core.observation_mode
        self.agents = list(self._core.agent_names)
        self.possible_agents = list(self.agents)
        #: ``agent -> parent`` (a device agent's coordinator, ``None`` at the top)
        self.parents = dict(zip(self.agents, self._core.agent_parents))
        #: ``agent -> (tick_every, obs_delay, act_delay)`` in steps
        self.timing = dict(zip(self.agents, self._core.agent_timing))
        self._grid = dict(zip(self.agents, self._core.agent_grid))
        self.action_dims = dict(zip(self.agents, self._core.action_dims))
        self.obs_dims = dict(zip(self.agents, self._core.obs_dims))
        self.observation_spaces = {
            a: spaces.Box(-np.inf, np.inf, (d,), np.float32) for a, d in self.obs_dims.items()
        }
        self.action_spaces = {
            a: spaces.Box(-1.0, 1.0, (d,), np.float32) for a, d in self.action_dims.items()
        }
        layouts = [self._core.layout(i) for i in range(len(self.agents))]
        #: ``agent -> [(field, offset, length)]``
        self.layout_fields = {a: l[0] for a, l in zip(self.agents, layouts)}
        #: ``agent -> [name of every observation column]``
        self.layouts = {a: list(l[1]) for a, l in zip(self.agents, layouts)}
        #: names of the reward terms (last axis of ``infos[agent]["terms"]``)
        self.reward_terms = list(self._core.reward_terms)
        #: names of the automatic controllers (columns of ``raw_info["controller_moves"]``)
        self.controller_names = list(self._core.controller_names)
        self._seeds = np.random.default_rng(seed)
        self._take_views()

    # -- views ---------------------------------------------------------------
    def _take_views(self):
        core = self._core
        obs = core.observation_views()
        rew = core.reward_view()
        term, trunc = core.flag_views()
        info = core.info_views()
        for x in [*obs, rew, term, trunc, *info.values()]:
            x.flags.writeable = False
        self._obs = dict(zip(self.agents, obs))
        self._reward_matrix = rew
        self._rew = {a: rew[:, i] for i, a in enumerate(self.agents)}
        self._term = {a: term for a in self.agents}
        self._trunc = {a: trunc for a in self.agents}
        shared = {
            k: info[k]
            for k in ("converged", "reset", "price", "voltage_violation", "hour",
                      "control_iterations", "controller_wear_cost")
        }
        self._info = {}
        for i, a in enumerate(self.agents):
            d = {
                "cost": info["cost"][:, i],
                "safety": info["safety"][:, i],
                "terms": info["terms"][:, i, :],
                "acts_next": info["acts_next"][:, i],
                **shared,
            }
            g = self._grid[a]
            if g is not None:
                d["pcc_import_mw"] = info["pcc_import_mw"][:, g]
            self._info[a] = d
        self._raw_info = info

    def _out(self, d):
        if not self.copy:
            return d
        return {k: (v.copy() if isinstance(v, np.ndarray) else self._out(v)) for k, v in d.items()}

    # -- API -------------------------------------------------------------------
    def reset(
        self, seed: Optional[int] = None, options: Optional[dict] = None
    ) -> Tuple[Dict[str, np.ndarray], Dict[str, Dict[str, np.ndarray]]]:
        """Reset every copy; copy ``c`` is seeded from ``(seed, c)``."""
        if seed is None:
            seed = int(self._seeds.integers(0, 2**63 - 1))
        else:
            seed = int(seed)
            if seed < 0:
                raise ValueError(f"seed must be non-negative, got {seed}")
            self._seeds = np.random.default_rng(seed + 1)
        if self._core.reset(seed):
            self._take_views()
        return self._out(self._obs), self._out(self._info)

    def _action(self, agent: str, x: Any) -> np.ndarray:
        if not (isinstance(x, np.ndarray) and x.dtype in _FLOAT):
            try:
                x = np.asarray(x, dtype=np.float32)
            except (TypeError, ValueError) as e:
                raise ValueError(f"actions of agent {agent!r} are not numeric: {e}") from None
        want = (self.num_envs, self.action_dims[agent])
        if x.shape != want:
            raise ValueError(f"actions of agent {agent!r} have shape {x.shape}, expected {want}")
        return x

    def step(self, actions: Dict[str, Any]):
        """Step every copy with ``actions[agent]`` of shape ``[num_envs, action_dim]``."""
        try:
            arrays = [self._action(a, actions[a]) for a in self.agents]
        except KeyError as e:
            raise ValueError(
                f"no actions for agent {e.args[0]!r} (agents: {self.agents})"
            ) from None
        extra = set(actions) - set(self.agents)
        if extra:
            raise ValueError(f"actions for unknown agents {sorted(extra)} (agents: {self.agents})")
        try:
            moved = self._core.step(arrays)
        except ValueError as e:
            shapes = ", ".join(f"{a}: {x.shape}" for a, x in zip(self.agents, arrays))
            raise ValueError(f"{e} (action shapes {shapes})") from None
        if moved:
            self._take_views()
        return (
            self._out(self._obs),
            self._out(self._rew),
            self._out(self._term),
            self._out(self._trunc),
            self._out(self._info),
        )

    # -- extras ----------------------------------------------------------------
    @property
    def reward_matrix(self) -> np.ndarray:
        """Rewards of the last call as one ``[num_envs, n_agents]`` view."""
        return self._reward_matrix

    @property
    def raw_info(self) -> Dict[str, np.ndarray]:
        """The step info as the library holds it (``[B]`` / ``[B, n]`` views)."""
        return self._raw_info

    def observation_space(self, agent: str) -> spaces.Box:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Box:
        return self.action_spaces[agent]

    def __repr__(self):
        return (
            f"powergrid.VecEnv({self.setup!r}, num_envs={self.num_envs}, split={self.split!r}, "
            f"agents={self.agents}, backend={self.backend!r})"
        )
