"""PPO on powergrid's networked microgrids, single file, CleanRL style.

    python examples/train_ippo.py --setup ieee34_ieee13 --seed 1 --minutes 18

Multi-agent PPO with parameter sharing: one actor for every microgrid agent
(its own observation + a one-hot agent id), one centralised critic (all
agents' observations + the id), i.e. MAPPO; ``--critic local`` makes it
independent PPO (IPPO: the critic sees only the agent's own observation).
The environment is one batched ``powergrid.VecEnv`` of ``--num-envs`` copies
on the training split (random start days of 2023), read through its numpy
views without copies.

Every ``--eval-every`` seconds the deterministic policy (the Gaussian's mean)
is evaluated on validation episodes of the training year (362 start days of
2023 drawn with a fixed seed) and on the **test split**: one copy per start
day of 2024 (362 copies), one full episode each; the score is the mean reward
per agent and step. The policy reported is the one with the best validation
score (the test split never chooses anything); the test curve is drawn for
reading only. The library's baselines (zero, random and, where the library has it,
heuristic) are evaluated the same way once. At the end the learning curve
(test score vs env steps, baselines as lines) goes to ``--plot`` and the
figures to ``--out`` (JSON).

Handling of time limits: episodes end by truncation only; the value of the
final observation is bootstrapped (the next stored observation *is* that final
observation, since ``VecEnv`` autoresets on the following step: Gymnasium
``NEXT_STEP``), and the reset step itself (reward 0, actions ignored) is
masked out of the losses.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time

import numpy as np
import torch
import torch.nn as nn
from torch.distributions import Normal

import powergrid

#: Seed of the validation episodes (training split) the final policy is chosen on.
VALIDATION_SEED = 12345


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--setup", default="ieee34_ieee13")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--minutes", type=float, default=18.0, help="wall-clock budget for training (evaluation included)")
    p.add_argument("--total-steps", type=int, default=50_000_000, help="env steps (copies x steps) cap")
    p.add_argument("--num-envs", type=int, default=256)
    p.add_argument("--num-steps", type=int, default=32, help="rollout length per update")
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument(
        "--anneal-lr",
        type=int,
        default=1,
        help="1: decay the learning rate linearly to 0 over the wall-clock budget (CleanRL's anneal, by time)",
    )
    # gamma 0.9 (a horizon of about ten hours): the dispatch is decided hour by
    # hour and the storage cycles daily; 0.99 plateaued at -6.26 (zero: -6.98,
    # heuristic: -5.50), 0.95 and 0.8 learnt slower than 0.9 (7-minute runs).
    p.add_argument("--gamma", type=float, default=0.9)
    p.add_argument("--gae-lambda", type=float, default=0.9)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--minibatch", type=int, default=2048)
    p.add_argument("--clip", type=float, default=0.2)
    p.add_argument("--ent-coef", type=float, default=0.0)
    p.add_argument("--vf-coef", type=float, default=0.5)
    p.add_argument("--max-grad-norm", type=float, default=0.5)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--init-logstd", type=float, default=-0.5)
    p.add_argument("--critic", choices=["central", "local"], default="central")
    p.add_argument(
        "--price-input",
        choices=["tanh", "linear"],
        default="linear",
        help="linear: the networks see atanh of the observed tanh(price/scale), i.e. the price itself "
        "(the dispatch is linear in it); tanh: the observation as it is",
    )
    p.add_argument("--eval-every", type=float, default=60.0, help="seconds between test evaluations")
    p.add_argument("--test-copies", type=int, default=362, help="test episodes (362 = one per start day of 2024)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--out", default="docs/train_ippo.json")
    p.add_argument("--plot", default="docs/train_ippo.png")
    p.add_argument("--save", default="", help="write the chosen actor and its observation scaling here (torch.save)")
    return p.parse_args()


# --------------------------------------------------------------------------- #
# Observation plumbing: per-agent observations padded to one width + agent id.
# --------------------------------------------------------------------------- #
class Obs:
    def __init__(self, env: powergrid.VecEnv, price_input="tanh"):
        self.agents = env.agents
        self.n = len(self.agents)
        self.dims = [env.obs_dims[a] for a in self.agents]
        # Columns holding tanh(price/scale), per agent (decoded with --price-input linear).
        self.price_cols = [
            [o for name, o, n in env.layout_fields[a] if name.startswith("tanh(price") for o in range(o, o + n)]
            if price_input == "linear"
            else []
            for a in self.agents
        ]
        self.width = max(self.dims)
        self.actor_dim = self.width + self.n
        self.global_dim = sum(self.dims)

    def own(self, obs, i):
        """Agent ``i``'s observation, the price decoded where asked."""
        x = obs[self.agents[i]]
        if self.price_cols[i]:
            x = x.copy()
            c = self.price_cols[i]
            x[:, c] = np.arctanh(np.clip(x[:, c], -0.999999, 0.999999))
        return x

    def actor_input(self, obs, out):
        """``out[B, n, width + n]``: own observation (zero padded) and one-hot id."""
        for i in range(self.n):
            out[:, i, : self.dims[i]] = self.own(obs, i)
            out[:, i, self.width + i] = 1.0
        return out

    def global_input(self, obs, out):
        """``out[B, global_dim]``: every agent's observation side by side."""
        o = 0
        for i in range(self.n):
            out[:, o : o + self.dims[i]] = self.own(obs, i)
            o += self.dims[i]
        return out


class RunningNorm:
    """Running mean / variance of observations (Welford over batches)."""

    def __init__(self, dim):
        self.mean = np.zeros(dim, np.float64)
        self.var = np.ones(dim, np.float64)
        self.count = 1e-4

    def update(self, x):
        x = x.reshape(-1, x.shape[-1]).astype(np.float64)
        bm, bv, bc = x.mean(0), x.var(0), x.shape[0]
        d = bm - self.mean
        tot = self.count + bc
        self.mean += d * bc / tot
        self.var = (self.var * self.count + bv * bc + d**2 * self.count * bc / tot) / tot
        self.count = tot

    def __call__(self, x):
        return np.clip((x - self.mean) / np.sqrt(self.var + 1e-8), -10, 10).astype(np.float32)


def layer(i, o, std=np.sqrt(2)):
    lin = nn.Linear(i, o)
    nn.init.orthogonal_(lin.weight, std)
    nn.init.constant_(lin.bias, 0.0)
    return lin


class Agent(nn.Module):
    def __init__(self, actor_dim, critic_dim, act_dim, hidden, init_logstd):
        super().__init__()
        self.actor = nn.Sequential(
            layer(actor_dim, hidden), nn.Tanh(), layer(hidden, hidden), nn.Tanh(), layer(hidden, act_dim, 0.01)
        )
        self.critic = nn.Sequential(
            layer(critic_dim, hidden), nn.Tanh(), layer(hidden, hidden), nn.Tanh(), layer(hidden, 1, 1.0)
        )
        self.logstd = nn.Parameter(torch.full((act_dim,), init_logstd))

    def value(self, c):
        return self.critic(c).squeeze(-1)

    def dist(self, x):
        mu = self.actor(x)
        return Normal(mu, self.logstd.expand_as(mu).exp())


# --------------------------------------------------------------------------- #
# Evaluation on the test split
# --------------------------------------------------------------------------- #
def evaluate(setup, act_fn, n_copies, steps, split="test", seed=0):
    """Mean reward per agent and step over one episode per copy: on the test
    split one per start day of 2024; on the train split (validation) the
    start days of 2023 that ``seed`` draws."""
    env = powergrid.VecEnv(setup, n_copies, split=split)
    obs, _ = env.reset(seed=seed)
    total, count = 0.0, 0
    for _ in range(steps):
        obs, rew, term, trunc, info = env.step(act_fn(env, obs))
        keep = ~info[env.agents[0]]["reset"]
        total += float(env.reward_matrix[keep].astype(np.float64).sum())
        count += int(keep.sum()) * len(env.agents)
    return total / count


def baseline(setup, name, n_copies, steps, seed):
    env_for_policy = {}

    def act(env, obs):
        if "p" not in env_for_policy:
            env_for_policy["p"] = powergrid.Policy(name, env, seed=seed)
        return env_for_policy["p"](env)

    return evaluate(setup, act, n_copies, steps)


def main():
    args = parse_args()
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    t_start = time.time()

    env = powergrid.VecEnv(args.setup, args.num_envs, split="train")
    ob = Obs(env, args.price_input)
    A = env.agents
    act_dims = [env.action_dims[a] for a in A]
    act_dim = max(act_dims)
    B, T, N = args.num_envs, args.num_steps, ob.n
    critic_dim = (ob.global_dim if args.critic == "central" else ob.width) + N
    agent = Agent(ob.actor_dim, critic_dim, act_dim, args.hidden, args.init_logstd)
    opt = torch.optim.Adam(agent.parameters(), lr=args.lr, eps=1e-5)
    norm_actor = RunningNorm(ob.width)  # own observation (the id is not normalised)
    norm_global = RunningNorm(ob.global_dim)

    # the number of test start days (every copy starts on its own day)
    probe = powergrid.VecEnv(args.setup, 1, split="test")
    ep_len = probe.max_episode_steps
    n_test = args.test_copies
    del probe

    # baselines on the test split
    baselines = {}
    for name in powergrid.policies.POLICIES:
        baselines[name] = baseline(args.setup, name, n_test, ep_len + 1, args.seed)
        print(f"baseline {name:<10} test mean reward {baselines[name]:.3f}", flush=True)
    t_train0 = time.time()

    # buffers
    actor_in = np.zeros((B, N, ob.actor_dim), np.float32)
    global_in = np.zeros((B, ob.global_dim), np.float32)
    buf_x = torch.zeros((T, B, N, ob.actor_dim))
    buf_c = torch.zeros((T, B, N, critic_dim))
    buf_a = torch.zeros((T, B, N, act_dim))
    buf_logp = torch.zeros((T, B, N))
    buf_v = torch.zeros((T, B, N))
    buf_r = torch.zeros((T, B, N))
    buf_valid = torch.zeros((T, B))
    buf_cont = torch.zeros((T, B))
    eye = np.broadcast_to(np.eye(N, dtype=np.float32), (B, N, N))
    actions = {a: np.zeros((B, d), np.float32) for a, d in zip(A, act_dims)}

    def norm_own(v):
        return norm_actor(v)

    def inputs(obs, update_stats):
        x = ob.actor_input(obs, actor_in)
        if update_stats:
            norm_actor.update(x[:, :, : ob.width])
        xn = x.copy()
        xn[:, :, : ob.width] = norm_own(x[:, :, : ob.width])
        if args.critic == "central":
            g = ob.global_input(obs, global_in)
            if update_stats:
                norm_global.update(g)
            gn = norm_global(g)
            c = np.concatenate([np.broadcast_to(gn[:, None, :], (B, N, ob.global_dim)), eye], axis=2)
        else:
            c = xn
        return torch.from_numpy(xn), torch.from_numpy(np.ascontiguousarray(c, np.float32))

    # evaluation with the deterministic policy (stats frozen)
    def policy_act(eval_env, obs):
        nb = eval_env.num_envs
        x = np.zeros((nb, N, ob.actor_dim), np.float32)
        ob.actor_input(obs, x)
        x[:, :, : ob.width] = norm_own(x[:, :, : ob.width])
        with torch.no_grad():
            mu = agent.actor(torch.from_numpy(x)).clamp(-1, 1).numpy()
        return {a: np.ascontiguousarray(mu[:, i, : act_dims[i]]) for i, a in enumerate(A)}

    curve = []  # (env steps, seconds, test score, validation score)
    obs, _ = env.reset(seed=args.seed)
    x, c = inputs(obs, True)
    env_steps, update, last_eval = 0, 0, -1e9
    train_returns = []
    budget = args.minutes * 60.0

    best = {"val": -float("inf")}

    def do_eval():
        # Model selection on validation episodes drawn from the training year
        # (2023, fixed start days), never on the test split; the test score is
        # only recorded for the curve.
        v = evaluate(args.setup, policy_act, n_test, ep_len + 1, split="train", seed=VALIDATION_SEED)
        s = evaluate(args.setup, policy_act, n_test, ep_len + 1)
        curve.append((env_steps, time.time() - t_train0, s, v))
        if v > best["val"]:
            best.update(
                val=v,
                test=s,
                env_steps=env_steps,
                actor={k: t.clone() for k, t in agent.actor.state_dict().items()},
                obs_norm=(norm_actor.mean.copy(), norm_actor.var.copy()),
            )
        print(
            f"  eval @ {env_steps:>10,d} env steps, {time.time() - t_start:6.0f} s: "
            f"validation {v:.3f}, test mean reward {s:.3f}",
            flush=True,
        )
        return s

    while env_steps < args.total_steps and time.time() - t_start < budget:
        if time.time() - last_eval >= args.eval_every:
            do_eval()
            last_eval = time.time()
        if args.anneal_lr:
            frac = max(0.0, 1.0 - (time.time() - t_train0) / max(budget - (t_train0 - t_start), 1.0))
            for pg_ in opt.param_groups:
                pg_["lr"] = frac * args.lr
        # ---- rollout
        for t in range(T):
            with torch.no_grad():
                d = agent.dist(x)
                a = d.sample()
                buf_logp[t] = d.log_prob(a).sum(-1)
                buf_v[t] = agent.value(c)
            buf_x[t], buf_c[t], buf_a[t] = x, c, a
            an = a.clamp(-1, 1).numpy()
            for i, name in enumerate(A):
                actions[name][:] = an[:, i, : act_dims[i]]
            obs, rew, term, trunc, info = env.step(actions)
            reset = info[A[0]]["reset"]
            buf_r[t] = torch.from_numpy(env.reward_matrix.copy())
            buf_valid[t] = torch.from_numpy((~reset).astype(np.float32))
            # the episode continues after this step unless it was the last one
            buf_cont[t] = torch.from_numpy((~(term[A[0]] | trunc[A[0]])).astype(np.float32))
            train_returns.append(float(env.reward_matrix[~reset].mean()) if (~reset).any() else np.nan)
            x, c = inputs(obs, True)
            env_steps += B
        # ---- advantages (GAE), bootstrapping through truncations
        with torch.no_grad():
            next_v = agent.value(c)
            # reward scale: fixed from the first rollout (rewards are O(10-100))
            if update == 0:
                valid_r = buf_r[buf_valid.bool()]
                reward_scale = 1.0 / max(float(valid_r.std()), 1e-3)
            r = buf_r * reward_scale
            adv = torch.zeros_like(buf_v)
            last = torch.zeros((B, N))
            for t in reversed(range(T)):
                nv = next_v if t == T - 1 else buf_v[t + 1]
                cont = buf_cont[t][:, None]
                delta = r[t] + args.gamma * nv - buf_v[t]
                last = delta + args.gamma * args.gae_lambda * cont * last
                adv[t] = last
            ret = adv + buf_v
        # ---- PPO update over valid (non-reset) samples
        mask = buf_valid[:, :, None].expand(T, B, N).reshape(-1).bool()
        fx = buf_x.reshape(-1, ob.actor_dim)[mask]
        fc = buf_c.reshape(-1, critic_dim)[mask]
        fa = buf_a.reshape(-1, act_dim)[mask]
        flp, fadv, fret, fv = (z.reshape(-1)[mask] for z in (buf_logp, adv, ret, buf_v))
        n = fx.shape[0]
        for _ in range(args.epochs):
            perm = torch.randperm(n)
            for s in range(0, n, args.minibatch):
                idx = perm[s : s + args.minibatch]
                d = agent.dist(fx[idx])
                logp = d.log_prob(fa[idx]).sum(-1)
                ratio = (logp - flp[idx]).exp()
                ma = fadv[idx]
                ma = (ma - ma.mean()) / (ma.std() + 1e-8)
                pg = torch.max(-ma * ratio, -ma * ratio.clamp(1 - args.clip, 1 + args.clip)).mean()
                v = agent.value(fc[idx])
                vl = 0.5 * ((v - fret[idx]) ** 2).mean()
                ent = d.entropy().sum(-1).mean()
                loss = pg + args.vf_coef * vl - args.ent_coef * ent
                opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
                opt.step()
        update += 1
        if update % 20 == 0:
            recent = np.nanmean(train_returns[-20 * T :])
            print(
                f"update {update:5d}  env steps {env_steps:>10,d}  train reward {recent:8.3f}  "
                f"std {agent.logstd.exp().mean().item():.3f}  {env_steps / (time.time() - t_train0):,.0f} env-steps/s",
                flush=True,
            )
    last = do_eval()
    # The deterministic policy of the best validation score is the result.
    agent.actor.load_state_dict(best["actor"])
    norm_actor.mean, norm_actor.var = best["obs_norm"]
    final = best["test"]
    wall = time.time() - t_start
    result = {
        "command": "python examples/train_ippo.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
        ),
        "setup": args.setup,
        "seed": args.seed,
        "critic": args.critic,
        "env_steps": env_steps,
        "updates": update,
        "wall_seconds": wall,
        "test_mean_reward": {"trained": final, **baselines},
        "selected": {
            "rule": "best validation score (train split, 2023, seed %d)" % VALIDATION_SEED,
            "env_steps": best["env_steps"],
            "validation": best["val"],
            "test": best["test"],
        },
        "last_test_mean_reward": last,
        "best_test_mean_reward_during_training": max(c[2] for c in curve),
        "curve": curve,
    }
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result["test_mean_reward"], indent=1))
    print(f"wall time {wall:.0f} s, {env_steps:,d} env steps, {update} updates")
    if args.save:
        torch.save(
            {
                "actor": agent.actor.state_dict(),
                "obs_mean": norm_actor.mean,
                "obs_var": norm_actor.var,
                "agents": A,
                "args": vars(args),
            },
            args.save,
        )
        print(f"wrote {args.save}")
    plot(result, args.plot)


def plot(result, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [c[0] for c in result["curve"]]
    scores = [c[2] for c in result["curve"]]
    sel = result["selected"]
    styles = {"heuristic": ("C2", "--"), "zero": ("C1", ":"), "random": ("C3", "-.")}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for k, ax in enumerate(axes):
        ax.plot(steps, scores, "o-", color="C0", label="PPO (deterministic), test split")
        ax.plot(
            [sel["env_steps"]],
            [sel["test"]],
            "*",
            color="C0",
            markersize=14,
            label=f"chosen on validation ({sel['test']:.3f})",
        )
        for name, v in result["test_mean_reward"].items():
            if name == "trained":
                continue
            col, ls = styles.get(name, ("C4", "--"))
            ax.axhline(v, color=col, ls=ls, label=f"{name} ({v:.3f})")
        ax.set_xlabel("environment steps (copies x steps)")
        ax.grid(alpha=0.3)
        if k == 1:
            # Zoom on the band between the zero policy and the heuristic.
            b = result["test_mean_reward"]
            lo = min(b.get("zero", min(scores)), min(scores[1:] or scores)) - 0.05
            hi = max(b.get("heuristic", max(scores)), max(scores)) + 0.05
            ax.set_ylim(lo, hi)
            ax.set_title("zoom: zero policy to heuristic")
        else:
            ax.set_ylabel("mean reward per agent and step (test split)")
            ax.set_title(f"{result['setup']}: PPO, seed {result['seed']}, {result['wall_seconds'] / 60:.1f} min on 2 cores")
            ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
