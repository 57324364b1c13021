"""Multi-agent PPO with RLlib (new API stack) on powergrid, local or on a Ray cluster.

    python examples/rllib_ppo.py --num-env-runners 2 --copies 32 --iterations 5
    python examples/rllib_ppo.py --address auto --num-env-runners 16 --copies 256   # on a cluster

Each RLlib env runner holds **one whole batched** ``powergrid.VecEnv`` of
``--copies`` copies, wrapped as one RLlib ``MultiAgentEnv`` whose agents are
``"<microgrid>/<copy>"`` (e.g. ``"MG2/17"``): one Rust call steps every copy,
and RLlib sees ``copies x n_agents`` agents per env step. Modules:
``--modules shared`` (one policy for every microgrid, the default) or
``--modules per-agent`` (one per microgrid: MG1, MG2, MG3), chosen by the
policy mapping on the agent id's prefix.

Env steps below are counted as copies x steps (what ``powergrid rollout``
counts); the reward is the mean reward per agent and step of the training
episodes (comparable to the ``mean_reward`` of ``powergrid rollout``).

**On a Ray cluster.** Install the package on every node (``pip install
./python`` from a clone at the same path, or a wheel from ``maturin build
--release``), start Ray (``ray start --head`` on one node, ``ray start
--address=HEAD:6379`` on the others), then run this script on the head node
with ``--address auto`` (or from elsewhere with ``RAY_ADDRESS=ray://HEAD:10001``
and ``--address ray://HEAD:10001``) and as many ``--num-env-runners`` as there
are CPU (or GPU, with ``--backend gpu``) slots: each runner steps its own batch.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import ray
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.env.multi_agent_env import MultiAgentEnv
from ray.tune.registry import register_env


class BatchedMicrogrids(MultiAgentEnv):
    """A whole ``powergrid.VecEnv`` as one RLlib ``MultiAgentEnv``.

    Every copy's episode has the same length, so all agents end together;
    RLlib then calls ``reset``, which resets every copy (new start days).
    """

    def __init__(self, config=None):
        super().__init__()
        import powergrid  # imported in the env runner process

        config = config or {}
        self.copies = int(config.get("copies", 32))
        self.vec = powergrid.VecEnv(
            config.get("setup", "ieee34_ieee13"),
            self.copies,
            backend=config.get("backend", "cpu"),
            split="train",
        )
        self._rng = np.random.default_rng(config.get("seed", 0) + 7919 * config.get("worker_index", 0))
        self.names = self.vec.agents
        self.ids = [f"{a}/{c}" for a in self.names for c in range(self.copies)]
        self.possible_agents = list(self.ids)
        self.agents = list(self.ids)
        self.observation_spaces = {i: self.vec.observation_spaces[i.split("/")[0]] for i in self.ids}
        self.action_spaces = {i: self.vec.action_spaces[i.split("/")[0]] for i in self.ids}
        self._act = {a: np.zeros((self.copies, d), np.float32) for a, d in self.vec.action_dims.items()}

    def _split(self, per_agent):
        return {f"{a}/{c}": per_agent[a][c] for a in self.names for c in range(self.copies)}

    def reset(self, *, seed=None, options=None):
        if seed is None:
            seed = int(self._rng.integers(0, 2**62))
        obs, _ = self.vec.reset(seed=seed)
        self.agents = list(self.ids)
        return {k: v.copy() for k, v in self._split(obs).items()}, {}

    def step(self, action_dict):
        for key, a in action_dict.items():
            name, c = key.split("/")
            self._act[name][int(c)] = a
        obs, rew, term, trunc, info = self.vec.step(self._act)
        done = bool(trunc[self.names[0]][0] or term[self.names[0]][0])
        o = {k: v.copy() for k, v in self._split(obs).items()}
        r = {f"{a}/{c}": float(rew[a][c]) for a in self.names for c in range(self.copies)}
        t = {k: False for k in self.ids}
        tr = {k: done for k in self.ids}
        t["__all__"], tr["__all__"] = False, done
        return o, r, t, tr, {}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--setup", default="ieee34_ieee13")
    p.add_argument("--copies", type=int, default=32, help="copies in each env runner's VecEnv")
    p.add_argument("--num-env-runners", type=int, default=2)
    p.add_argument("--iterations", type=int, default=5)
    p.add_argument("--modules", choices=["shared", "per-agent"], default="shared")
    p.add_argument("--backend", default="cpu")
    p.add_argument("--address", default=None, help="Ray cluster address (e.g. auto); default: a local Ray")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="write the per-iteration figures here (JSON)")
    args = p.parse_args()

    if args.address:
        ray.init(address=args.address)
    else:
        ray.init(num_cpus=max(2, args.num_env_runners + 1), include_dashboard=False, log_to_driver=False)

    register_env("powergrid_batched", lambda cfg: BatchedMicrogrids(cfg))
    probe = BatchedMicrogrids({"setup": args.setup, "copies": 1})
    names, ep_len = probe.names, probe.vec.max_episode_steps
    if args.modules == "shared":
        modules = {"shared": RLModuleSpec()}
        mapping = lambda agent_id, episode, **kw: "shared"  # noqa: E731
    else:
        modules = {n: RLModuleSpec() for n in names}
        mapping = lambda agent_id, episode, **kw: agent_id.split("/")[0]  # noqa: E731

    # one train batch = one episode of every copy of every runner, counted in
    # agent steps (copies x agents per env step)
    agent_steps_per_iter = ep_len * args.copies * len(names) * max(1, args.num_env_runners)
    config = (
        PPOConfig()
        .environment(
            "powergrid_batched",
            env_config={"setup": args.setup, "copies": args.copies, "backend": args.backend, "seed": args.seed},
        )
        .env_runners(
            num_env_runners=args.num_env_runners,
            num_envs_per_env_runner=1,
            num_cpus_per_env_runner=1,
            rollout_fragment_length="auto",
        )
        .multi_agent(policies=set(modules), policy_mapping_fn=mapping, count_steps_by="agent_steps")
        .rl_module(rl_module_spec=MultiRLModuleSpec(rl_module_specs=modules))
        .training(
            train_batch_size_per_learner=agent_steps_per_iter,
            minibatch_size=2048,
            num_epochs=4,
            lr=3e-4,
            gamma=0.99,
        )
        .debugging(seed=args.seed)
    )
    algo = config.build_algo()
    rows = []
    n_agents = len(names)
    t_all = time.time()
    for it in range(1, args.iterations + 1):
        t0 = time.time()
        res = algo.train()
        dt = time.time() - t0
        er = res.get("env_runners", {})
        steps = int(er.get("num_env_steps_sampled", 0)) * args.copies
        ret = float(er.get("episode_return_mean", float("nan")))
        # RLlib's episode return sums every agent of the batched env over the episode
        per_step = ret / (args.copies * n_agents * ep_len) if ret == ret else float("nan")
        row = {
            "iteration": it,
            "seconds": dt,
            "episodes": int(er.get("num_episodes", 0)),
            "env_steps": steps,
            "env_steps_per_s": steps / dt,
            "mean_reward_per_agent_step": per_step,
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    summary = {
        "setup": args.setup,
        "num_env_runners": args.num_env_runners,
        "copies_per_runner": args.copies,
        "modules": args.modules,
        "iterations": args.iterations,
        "total_seconds": time.time() - t_all,
        # the first iteration includes building the runners' environments
        "env_steps_per_s_after_first": (
            sum(r["env_steps"] for r in rows[1:]) / sum(r["seconds"] for r in rows[1:]) if len(rows) > 1 else None
        ),
        "rows": rows,
    }
    print(json.dumps({k: v for k, v in summary.items() if k != "rows"}))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(summary, f, indent=1)
    algo.stop()
    ray.shutdown()


if __name__ == "__main__":
    main()
