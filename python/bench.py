"""Env-steps/s of a Gymnasium VectorEnv stepped from Python vs `powergrid rollout`.

    python python/bench.py [--envs 1024] [--steps 200] [--backend cpu] [--repeats 3] [--gpu-threads 1]

Both sides step the `ieee34_ieee13` setup for the same number of steps on the
same backend with uniform random actions in [-1, 1] (`--policy zero`: all
zeros). Python draws them with numpy every step and goes through
`powergrid.vector_env` (concatenated actions split into per-agent views,
observations concatenated into one buffer, reward summed); the release binary
(`target/release/powergrid`, built by `cargo build --release`) draws them
from per-copy ChaCha8 streams and accumulates its per-copy statistics, both
inside its timing. Runs alternate, the best
of each is kept, and the ratio python / rollout is printed (goal: >= 0.8).
"""

import argparse
import json
import pathlib
import subprocess
import time

import sys

import numpy as np

# python/ holds the package's sources (without the compiled extension): import
# the installed package, not the folder beside this script.
sys.path = [x for x in sys.path if pathlib.Path(x or ".").resolve() != pathlib.Path(__file__).resolve().parent]
import powergrid  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]


def python_sps(setup, envs, steps, backend, policy, gpu_threads):
    venv = powergrid.vector_env(setup, envs, backend=backend, gpu_threads=gpu_threads)
    venv.reset(seed=0)
    rng = np.random.default_rng(0)
    shape = venv.action_space.shape
    zero = np.zeros(shape, np.float32)
    t0 = time.perf_counter()
    for _ in range(steps):
        venv.step(rng.uniform(-1.0, 1.0, shape).astype(np.float32) if policy == "random" else zero)
    return envs * steps / (time.perf_counter() - t0)


def rollout_sps(setup, envs, steps, backend, policy, gpu_threads):
    exe = ROOT / "target" / "release" / "powergrid"
    out = subprocess.run(
        [str(exe), "rollout", "--setup", setup, "--envs", str(envs), "--steps", str(steps),
         "--policy", policy, "--backend", backend, "--seed", "0", "--gpu-threads", str(gpu_threads), "--json"],
        check=True, capture_output=True, text=True, cwd=ROOT,
    )
    return json.loads(out.stdout)["env_steps_per_s"]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--setup", default="ieee34_ieee13")
    p.add_argument("--envs", type=int, default=1024)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--backend", default="cpu")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--policy", choices=["random", "zero"], default="random")
    p.add_argument("--gpu-threads", type=int, default=1, help="host threads driving the GPU backend")
    args = p.parse_args()
    py, rs = [], []
    for _ in range(args.repeats):
        how = (args.setup, args.envs, args.steps, args.backend, args.policy, args.gpu_threads)
        rs.append(rollout_sps(*how))
        py.append(python_sps(*how))
    res = {
        "setup": args.setup, "envs": args.envs, "steps": args.steps, "backend": args.backend, "policy": args.policy,
        "gpu_threads": args.gpu_threads,
        "python_vector_env_steps_per_s": max(py), "rollout_steps_per_s": max(rs),
        "ratio": max(py) / max(rs),
        "python_runs": py, "rollout_runs": rs,
    }
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
