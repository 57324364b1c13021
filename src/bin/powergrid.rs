//! `powergrid`: power flow, import, benchmarks and rollouts from the command line.

use clap::{Parser, Subcommand};
use powergrid::env::Split;
use powergrid::network;
use powergrid::powerflow::scenarios::{OutputFile, ScenarioFile};
use powergrid::powerflow::{
    new_backend, BackendKind, CpuKernel, GpuPrecision, Plan, SolverOptions,
};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// `--batch`, `--envs`, `--steps`: a whole number of at least 1.
fn count(s: &str) -> Result<usize, String> {
    match s.trim().parse::<i128>() {
        Ok(v) if v >= 1 && v <= usize::MAX as i128 => Ok(v as usize),
        Ok(v) => Err(format!("must be at least 1, got {v}")),
        Err(_) => Err(format!("must be a whole number of at least 1, got {s:?}")),
    }
}

/// `--seconds`: a finite number above 0.
fn seconds(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        Ok(v) => Err(format!(
            "must be a finite number of seconds above 0, got {v}"
        )),
        Err(_) => Err(format!("must be a number of seconds above 0, got {s:?}")),
    }
}

/// `--seed`: a whole number in 0..=2^64-1.
fn seed(s: &str) -> Result<u64, String> {
    s.trim()
        .parse::<u64>()
        .map_err(|_| format!("must be a whole number from 0 to {}, got {s:?}", u64::MAX))
}

/// Write to stdout. A closed pipe (`powergrid pf … | head`) ends the program
/// quietly with success, as Unix tools do, instead of panicking.
fn emit(text: &str) -> powergrid::Result<()> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        r => r.map_err(|e| powergrid::Error::io("<stdout>", e)),
    }
}

#[derive(Parser)]
#[command(
    name = "powergrid",
    version,
    about = "Batched power flow and multi-agent grid environments"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Solve a network (once, or once per scenario of a scenario file, as one batch).
    Pf {
        /// Network file: project YAML (.yml) or pandapower JSON (.json).
        #[arg(long)]
        network: PathBuf,
        /// Scenario file (`{"scenarios":[{"inputs":{…}}]}`); without it the network as given is solved once.
        #[arg(long)]
        scenarios: Option<PathBuf>,
        /// Power-flow backend.
        #[arg(long, default_value = "cpu")]
        backend: BackendKind,
        /// Write the results here instead of stdout.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Print the memory estimate of the batch on stderr.
        #[arg(long)]
        verbose: bool,
        /// Run the network's controllers to settlement (as pandapower's
        /// `runpp(run_control=True)`); adds `trafo_tap_pos`, `shunt_step`,
        /// `control_iterations` and `control_settled` per scenario.
        #[arg(long)]
        control: bool,
        /// GPU arithmetic: f32 (fast; feeders) or f64 (pandapower's precision on
        /// meshed transmission networks; adapters with f64 shaders).
        #[arg(long, default_value = "f32")]
        gpu_precision: GpuPrecision,
        /// Hold gens at their Q limits (`min_q_mvar`/`max_q_mvar`), their buses
        /// turned PQ, per scenario (pandapower's `runpp(enforce_q_lims=True)`).
        #[arg(long)]
        enforce_q_lims: bool,
    },
    /// Convert a pandapower JSON network to the project's YAML format (element order kept).
    Import {
        /// pandapower JSON file.
        input: PathBuf,
        /// Output YAML file (`-` for stdout).
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        what: BenchCmd,
    },
    /// Step a setup's vector environment with a simple policy and summarise.
    Rollout {
        /// Setup name (folder under setups/) or path.
        #[arg(long, default_value = "ieee34_ieee13")]
        setup: String,
        /// Number of copies.
        #[arg(long, default_value_t = 1024, value_parser = count, allow_negative_numbers = true)]
        envs: usize,
        /// Steps per copy.
        #[arg(long, default_value_t = 96, value_parser = count, allow_negative_numbers = true)]
        steps: usize,
        /// Policy: random, zero, heuristic, or opf (replay the optimal schedule of each copy's episode, one whole episode per copy on the CPU, and compare; --steps and --backend do not apply).
        #[arg(long, default_value = "random")]
        policy: String,
        /// Data split: train (random days of 2023) or test (the 2024 days in order).
        #[arg(long, default_value = "train")]
        split: Split,
        /// Power-flow backend: cpu, gpu or auto.
        #[arg(long, default_value = "auto")]
        backend: BackendKind,
        /// Seed.
        #[arg(long, default_value_t = 0, value_parser = seed, allow_negative_numbers = true)]
        seed: u64,
        /// Print the summary as one JSON object.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        gpu: GpuArgs,
    },
    /// Optimal schedule of a setup with perfect foresight (multi-period SOCP OPF, branch and bound).
    Optimize {
        /// Setup name (folder under setups/) or path.
        #[arg(long, default_value = "ieee34_ieee13")]
        setup: String,
        /// Data split: train or test.
        #[arg(long, default_value = "train")]
        split: String,
        /// First start day (the episode resets at row 24·day).
        #[arg(long, default_value_t = 0)]
        day: usize,
        /// Number of consecutive start days, solved in parallel.
        #[arg(long, default_value_t = 1)]
        days: usize,
        /// Hours per horizon (default: the setup's max_episode_steps).
        #[arg(long)]
        hours: Option<usize>,
        /// Voltage band: soft (the env's penalty) or hard.
        #[arg(long, value_enum, default_value = "soft")]
        band: powergrid::opf::Band,
        /// Branch-and-bound time limit per horizon in seconds.
        #[arg(long, default_value_t = 60.0)]
        time_limit: f64,
        /// Relative gap at which the branch and bound stops.
        #[arg(long, default_value_t = 1e-6)]
        gap: f64,
        /// Solve only the continuous relaxation.
        #[arg(long)]
        relax: bool,
        /// Re-solve every planned hour with the AC power flow and report the worst voltage difference.
        #[arg(long)]
        check: bool,
        /// Print a JSON summary.
        #[arg(long)]
        json: bool,
        /// Write the plan(s) here.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Write the first day's conic program (integers fixed at the plan's) in standard form here (for tests/data/opf/cvxpy_check.py).
        #[arg(long)]
        export_conic: Option<PathBuf>,
    },
    /// List the setups under setups/, one line each.
    Setups,
}

#[derive(Subcommand)]
enum BenchCmd {
    /// Power flows per second on a warm batch (every injection perturbed a few percent per step).
    Pf {
        /// Network file.
        #[arg(long)]
        network: PathBuf,
        /// Copies per batch.
        #[arg(long, default_value_t = 1024, value_parser = count, allow_negative_numbers = true)]
        batch: usize,
        /// Backend.
        #[arg(long, default_value = "cpu")]
        backend: BackendKind,
        /// Minimum measuring time in seconds.
        #[arg(long, default_value_t = 3.0, value_parser = seconds, allow_negative_numbers = true)]
        seconds: f64,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        /// Print the memory estimate of the batch on stderr.
        #[arg(long)]
        verbose: bool,
        /// CPU kernel: `lanes` (8 copies per SIMD group, the default) or `scalar`
        /// (one copy at a time); same results, for comparing speed.
        #[arg(long, value_parser = cpu_kernel)]
        cpu_kernel: Option<CpuKernel>,
        /// GPU arithmetic: f32 (fast; feeders) or f64 (pandapower's precision on
        /// meshed transmission networks; adapters with f64 shaders).
        #[arg(long, default_value = "f32")]
        gpu_precision: GpuPrecision,
        #[command(flatten)]
        gpu: GpuArgs,
    },
}

/// How the GPU backend splits its batch (`bench pf` and `rollout`).
#[derive(clap::Args, Debug, Clone, Copy)]
struct GpuArgs {
    /// GPU: split the batch into this many chunks, each prepared, uploaded,
    /// submitted and unpacked on its own, so that the host's work on one
    /// overlaps the device's work on another.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    gpu_chunks: u32,
    /// GPU: drive the batch from this many host threads, each with its own
    /// part of the copies and its own device buffers (preparing, submitting,
    /// waiting and unpacking, and the control loop, side by side).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    gpu_threads: u32,
}

impl GpuArgs {
    /// Refuse a split asked of the CPU backend (where it would do nothing);
    /// `auto` may choose the GPU, which takes it.
    fn check(&self, backend: BackendKind) -> powergrid::Result<()> {
        if backend == BackendKind::Cpu && (self.gpu_chunks > 1 || self.gpu_threads > 1) {
            return Err(powergrid::Error::InvalidInput(
                "--gpu-chunks and --gpu-threads apply to --backend gpu or auto".into(),
            ));
        }
        Ok(())
    }
}

fn cpu_kernel(s: &str) -> Result<CpuKernel, String> {
    match s {
        "lanes" => Ok(CpuKernel::Lanes),
        "scalar" => Ok(CpuKernel::Scalar),
        _ => Err(format!("unknown CPU kernel {s:?}: lanes or scalar")),
    }
}

fn main() -> ExitCode {
    // Mesa's Vulkan drivers probe Wayland and print an "error:" line when
    // XDG_RUNTIME_DIR is unset (headless servers, CI); point it somewhere
    // harmless before any thread exists.
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir());
    }
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> powergrid::Result<()> {
    match cli.cmd {
        Cmd::Pf {
            network,
            scenarios,
            backend,
            output,
            verbose,
            control,
            gpu_precision,
            enforce_q_lims,
        } => {
            let net = network::load(&network)?;
            if control && net.controllers.is_empty() {
                return Err(powergrid::Error::InvalidInput(format!(
                    "--control: {} has no controllers",
                    network.display()
                )));
            }
            let options = SolverOptions {
                gpu_precision,
                enforce_q_lims,
                ..SolverOptions::default()
            };
            let plan = Arc::new(Plan::new(&net, options)?);
            let inputs = match &scenarios {
                Some(p) => ScenarioFile::read(p)?.to_inputs(&net)?,
                None => powergrid::powerflow::BatchInputs::from_network(&net, 1),
            };
            if verbose {
                let e = powergrid::powerflow::memory::estimate(&plan, inputs.batch(), backend);
                eprintln!("memory: {e}");
            }
            let (mut pf, desc) = new_backend(backend, plan.clone(), inputs.batch())?;
            eprintln!("backend: {desc}");
            if !plan.isolated_buses.is_empty() {
                eprintln!(
                    "warning: {} bus(es) are cut off from every slack bus and are not solved (reported as 0): {:?}",
                    plan.isolated_buses.len(),
                    plan.isolated_buses
                );
            }
            *pf.inputs_mut() = inputs;
            let mut ctl = None;
            if control {
                let mut c = powergrid::control::ControlLoop::new(
                    &net,
                    &net.controllers,
                    pf.batch(),
                    Default::default(),
                )?;
                let s = c.run(pf.as_mut())?;
                eprintln!(
                    "control: {} of {} settled, {} failed, mean {:.2} control iterations (max {})",
                    s.settled, s.batch, s.failed, s.mean_iterations, s.max_iterations
                );
                ctl = Some(c);
            } else {
                pf.solve()?;
            }
            let s = powergrid::powerflow::cpu::summary(pf.results());
            eprintln!(
                "{} of {} converged, mean {:.1} iterations",
                s.converged, s.batch, s.mean_iterations
            );
            let mut out = OutputFile::from_results(desc, plan.isolated_buses.clone(), pf.results());
            if let Some(c) = &ctl {
                out.add_control(pf.inputs(), c.iterations(), c.settled());
            }
            let text = serde_json::to_string(&out).expect("results serialise");
            match output {
                Some(p) => std::fs::write(&p, text).map_err(|e| powergrid::Error::io(&p, e))?,
                None => emit(&text)?,
            }
            Ok(())
        }
        Cmd::Import { input, output } => {
            let net = network::pandapower::read(&input)?;
            net.validate()
                .map_err(|e| powergrid::Error::parse(&input, e))?;
            let to_stdout = output.as_os_str() == "-";
            if to_stdout {
                emit(network::yaml::to_string(&net)?.trim_end())?;
            } else {
                network::yaml::write(&net, &output)?;
            }
            eprintln!(
                "wrote {} ({} buses, {} lines, {} trafos, {} loads, {} sgens, {} storages, {} shunts, {} ext_grids, {} switches{})",
                if to_stdout {
                    "<stdout>".to_string()
                } else {
                    output.display().to_string()
                },
                net.buses.len(),
                net.lines.len(),
                net.trafos.len(),
                net.loads.len(),
                net.sgens.len(),
                net.storages.len(),
                net.shunts.len(),
                net.ext_grids.len(),
                net.switches.len(),
                [
                    ("trafo3ws", net.trafo3ws.len()),
                    ("impedances", net.impedances.len()),
                    ("wards", net.wards.len())
                ]
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(what, n)| format!(", {n} {what}"))
                .collect::<String>()
            );
            Ok(())
        }
        Cmd::Bench {
            what:
                BenchCmd::Pf {
                    network,
                    batch,
                    backend,
                    seconds,
                    json,
                    verbose,
                    cpu_kernel,
                    gpu_precision,
                    gpu,
                },
        } => {
            if cpu_kernel.is_some() && backend != BackendKind::Cpu {
                return Err(powergrid::Error::InvalidInput(
                    "--cpu-kernel applies to --backend cpu only".into(),
                ));
            }
            gpu.check(backend)?;
            let net = network::load(&network)?;
            let t0 = std::time::Instant::now();
            let options = SolverOptions {
                gpu_precision,
                gpu_chunks: gpu.gpu_chunks as usize,
                gpu_threads: gpu.gpu_threads as usize,
                ..SolverOptions::default()
            };
            let plan = Arc::new(Plan::new(&net, options)?);
            let plan_build_s = t0.elapsed().as_secs_f64();
            let (variant, psi) = (format!("{:?}", plan.variant), plan.psi);
            if verbose {
                let e = powergrid::powerflow::memory::estimate(&plan, batch, backend);
                eprintln!("memory: {e}");
            }
            let r = powergrid::bench::bench_plan_with(plan, batch, backend, seconds, cpu_kernel)?;
            if json {
                let mut v = serde_json::to_value(&r).expect("serialise");
                v["network"] = net.name.clone().into();
                v["network_file"] = network.display().to_string().into();
                v["buses"] = net.buses.len().into();
                v["plan_build_s"] = plan_build_s.into();
                v["variant"] = variant.into();
                v["psi"] = psi.into();
                emit(&v.to_string())?;
            } else {
                let text = [
                    format!("network            {} ({})", net.name, network.display()),
                    format!("backend            {}", r.backend),
                    format!("batch              {}", r.batch),
                    format!("threads            {}", r.threads),
                    format!(
                        "plan build         {plan_build_s:.3} s ({} buses)",
                        net.buses.len()
                    ),
                    format!("power flows / s    {:.0}", r.power_flows_per_s),
                    format!("per thread / s     {:.0}", r.power_flows_per_s_per_thread),
                    format!(
                        "µs per power flow  {:.3} (wall, whole batch / batch size)",
                        1e6 / r.power_flows_per_s
                    ),
                    format!("variant            {variant} psi {psi:.1}"),
                    format!("mean iterations    {:.2}", r.mean_iterations),
                    format!("converged          {:.4}", r.converged_fraction),
                    format!("steps measured     {} in {:.3} s", r.steps, r.seconds),
                ];
                let mut text = text.join("\n");
                if let Some(h) = &r.host_us_per_copy {
                    let device = ["host", "wait", "kernel"];
                    let parts: Vec<String> = h
                        .iter()
                        .filter(|(k, _)| !device.contains(&k.as_str()))
                        .map(|(k, v)| format!("{k} {v:.4}"))
                        .collect();
                    let at = |k: &str| h.get(k).copied().unwrap_or(0.0);
                    text += &format!(
                        "\nhost µs per copy   {:.4} ({}; µs per copy per solve)\
                         \nwait µs per copy   {:.4} (blocked on the device; its compute passes {:.4} by timestamp queries, 0 where the adapter has none)",
                        at("host"),
                        parts.join(", "),
                        at("wait"),
                        at("kernel"),
                    );
                }
                if let Some(b) = r.readback_bytes_per_copy {
                    text += &format!("\nread back          {b:.0} bytes per copy per solve");
                }
                emit(&text)?;
            }
            Ok(())
        }
        Cmd::Rollout {
            setup,
            envs,
            steps,
            policy,
            split,
            backend,
            seed,
            json,
            gpu,
        } => {
            gpu.check(backend)?;
            if policy == "opf" {
                // One whole episode per copy, on the CPU (see --policy).
                let summary = powergrid::opf::replay::rollout_opf(
                    &setup,
                    envs,
                    split,
                    seed,
                    &powergrid::opf::OptimizeOptions::default(),
                )?;
                return if json {
                    emit(&summary.to_string())
                } else {
                    emit(&serde_json::to_string_pretty(&summary).expect("json"))
                };
            }
            let opts = rollout::RolloutOptions {
                setup,
                envs,
                steps,
                policy: policy.parse().map_err(|_| {
                    powergrid::Error::InvalidInput(format!(
                        "unknown policy {policy:?}: use random, zero, heuristic or opf"
                    ))
                })?,
                split,
                backend,
                seed,
                progress: !json,
                gpu_chunks: gpu.gpu_chunks as usize,
                gpu_threads: gpu.gpu_threads as usize,
            };
            let (summary, text) = rollout::run(&opts)?;
            emit(&if json { summary.to_string() } else { text })
        }
        Cmd::Optimize {
            setup,
            split,
            day,
            days,
            hours,
            band,
            time_limit,
            gap,
            relax,
            check,
            json,
            output,
            export_conic,
        } => optimize_cmd(
            &setup,
            &split,
            day,
            days,
            powergrid::opf::OptimizeOptions {
                hours,
                band,
                time_limit_s: time_limit,
                gap,
                relax,
                ..Default::default()
            },
            check,
            json,
            output,
            export_conic,
        ),
        Cmd::Setups => {
            let list = powergrid::setup::list_setups();
            let w = list.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
            let lines: Vec<String> = list
                .iter()
                .map(|(name, desc)| format!("{name:<w$}  {desc}"))
                .collect();
            emit(&lines.join("\n"))
        }
    }
}

/// `powergrid rollout`: step a setup's vector environment with a baseline
/// policy and report throughput, each reward term, voltage violations,
/// convergence and control iterations.
mod rollout {
    use ndarray::Array2;
    use powergrid::env::reward::TERMS;
    use powergrid::env::{EnvOptions, Policy, PolicyRunner, Split, VecEnv};
    use powergrid::powerflow::BackendKind;
    use powergrid::{Error, Result};
    use serde_json::json;
    use std::time::Instant;

    /// Runs shorter than this print no rate.
    const MIN_TIMED_S: f64 = 0.01;

    /// Options of `powergrid rollout`.
    pub struct RolloutOptions {
        pub setup: String,
        pub envs: usize,
        pub steps: usize,
        pub policy: Policy,
        pub split: Split,
        pub backend: BackendKind,
        pub seed: u64,
        pub progress: bool,
        pub gpu_chunks: usize,
        pub gpu_threads: usize,
    }

    /// Run a rollout; returns the summary as JSON and as text.
    ///
    /// Timing covers the `step` calls and the policy, not building or the
    /// first reset. Rewards, reward terms, the violation share and the
    /// control iterations are averaged over non-reset steps (the autoreset
    /// steps of `NEXT_STEP` carry no action); convergence counts every solve.
    pub fn run(opts: &RolloutOptions) -> Result<(serde_json::Value, String)> {
        if opts.envs == 0 || opts.steps == 0 {
            return Err(Error::InvalidInput(
                "rollout needs --envs and --steps of at least 1".into(),
            ));
        }
        // Building and first-solving a large batch takes a while: say so.
        let spinner = (opts.progress && opts.envs >= 16_384).then(|| {
            let s = indicatif::ProgressBar::new_spinner();
            s.set_message(format!(
                "building {} copies of {} and solving their first hour",
                opts.envs, opts.setup
            ));
            s.enable_steady_tick(std::time::Duration::from_millis(120));
            s
        });
        let mut env = VecEnv::from_name(
            &opts.setup,
            &EnvOptions {
                batch: opts.envs,
                backend: opts.backend,
                split: opts.split,
                gpu_chunks: opts.gpu_chunks,
                gpu_threads: opts.gpu_threads,
                ..Default::default()
            },
        )?;
        env.reset(opts.seed)?;
        if let Some(s) = spinner {
            s.finish_and_clear();
        }
        let b = env.batch();
        let names = env.agent_names().to_vec();
        let na = names.len();
        let mut actions: Vec<Array2<f32>> = PolicyRunner::zero_actions(&env);
        let mut policy = PolicyRunner::new(opts.policy, b, opts.seed);
        let total = (b * opts.steps) as u64;
        let bar = if opts.progress && opts.steps >= 20 {
            let pb = indicatif::ProgressBar::new(total);
            pb.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {human_pos}/{human_len} env-steps  {per_sec}  eta {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            Some(pb)
        } else {
            None
        };
        let mut sum_reward = vec![0.0f64; na];
        let mut sum_cost = vec![0.0f64; na];
        let mut sum_safety = vec![0.0f64; na];
        let mut sum_terms = vec![0.0f64; na * TERMS.len()];
        let (mut counted, mut converged, mut violations, mut solved) = (0u64, 0u64, 0u64, 0u64);
        let (mut ctrl_iters, mut ctrl_moves) = (0u64, 0u64);
        let work0 = env.power_flow_work();
        let host0 = env.power_flow_host_time();
        let t0 = Instant::now();
        for _ in 0..opts.steps {
            policy.fill(&env, &mut actions)?;
            let views: Vec<_> = actions.iter().map(|a| a.view()).collect();
            env.step(&views)?;
            let info = env.info();
            let r = env.rewards();
            for c in 0..b {
                solved += 1;
                converged += info.converged[c] as u64;
                if info.reset[c] {
                    continue;
                }
                counted += 1;
                violations += info.voltage_violation[c] as u64;
                ctrl_iters += info.control_iterations[c] as u64;
                ctrl_moves += info
                    .controller_moves
                    .row(c)
                    .iter()
                    .map(|&m| m as u64)
                    .sum::<u64>();
                for i in 0..na {
                    sum_reward[i] += r[[c, i]] as f64;
                    sum_cost[i] += info.cost[[c, i]];
                    sum_safety[i] += info.safety[[c, i]];
                    for (t, sum) in sum_terms[i * TERMS.len()..][..TERMS.len()]
                        .iter_mut()
                        .enumerate()
                    {
                        *sum += info.terms[[c, i, t]];
                    }
                }
            }
            if let Some(pb) = &bar {
                pb.inc(b as u64);
            }
        }
        let secs = t0.elapsed().as_secs_f64();
        // Host time of the backend's solves (GPU): per copy and env-step, by
        // phase, and the whole step's host time (wall time less the waits on
        // the device).
        let host = env
            .power_flow_host_time()
            .zip(host0)
            .map(|(h, h0)| h.since(&h0));
        let per_step = |x: f64| x * 1e6 / (b * opts.steps).max(1) as f64;
        let host_json = host.map(|h| {
            let mut m = serde_json::Map::new();
            for (k, v) in [
                ("solves", h.solves as f64),
                ("host", per_step(h.host_s())),
                ("check", per_step(h.check_s)),
                ("prepare", per_step(h.prepare_s)),
                ("upload", per_step(h.upload_s)),
                ("submit", per_step(h.submit_s)),
                ("unpack", per_step(h.unpack_s)),
                ("wait", per_step(h.wait_s)),
                ("kernel", per_step(h.kernel_s)),
                ("step_host", per_step(secs - h.wait_s)),
                // Not µs: bytes read back from the device per copy and env-step.
                (
                    "readback_bytes",
                    h.read_bytes as f64 / (b * opts.steps).max(1) as f64,
                ),
            ] {
                m.insert(k.to_string(), json!(v));
            }
            serde_json::Value::Object(m)
        });
        let work = env.power_flow_work().zip(work0).map(|(w, w0)| {
            let solves = (w.copy_solves - w0.copy_solves) as f64;
            (
                solves / (b * opts.steps).max(1) as f64,
                (w.iterations - w0.iterations) as f64 / solves.max(1.0),
            )
        });
        if let Some(pb) = bar {
            pb.finish_and_clear();
        }
        let env_steps = (b * opts.steps) as u64;
        // A rate from a run of a few milliseconds says nothing: leave it out.
        let timed = secs >= MIN_TIMED_S;
        let sps = env_steps as f64 / secs;
        let n = counted.max(1) as f64;
        let mean = |v: &[f64]| v.iter().map(|x| x / n).collect::<Vec<f64>>();
        let (mr, mc, ms) = (mean(&sum_reward), mean(&sum_cost), mean(&sum_safety));
        let mt = mean(&sum_terms);
        let mean_reward = mr.iter().sum::<f64>() / na as f64;
        let conv_rate = converged as f64 / solved as f64;
        let viol = violations as f64 / n;
        let per = |v: &[f64]| {
            serde_json::Value::Object(
                names
                    .iter()
                    .cloned()
                    .zip(v.iter().map(|x| json!(x)))
                    .collect(),
            )
        };
        // Each reward term, averaged over agents (and per agent).
        let mut terms_mean = serde_json::Map::new();
        let mut terms_per_agent = serde_json::Map::new();
        for (t, name) in TERMS.iter().enumerate() {
            let v: Vec<f64> = (0..na).map(|i| mt[i * TERMS.len() + t]).collect();
            terms_mean.insert(name.to_string(), json!(v.iter().sum::<f64>() / na as f64));
            terms_per_agent.insert(name.to_string(), per(&v));
        }
        let mean_ctrl = ctrl_iters as f64 / n;
        let json = json!({
            "setup": env.setup().config.name,
            "backend": env.backend(),
            "split": opts.split.to_string(),
            "envs": b,
            "steps": opts.steps,
            "policy": opts.policy.to_string(),
            "seed": opts.seed,
            "seconds": secs,
            "env_steps": env_steps,
            "counted_steps": counted,
            "env_steps_per_s": if timed { json!(sps) } else { serde_json::Value::Null },
            "mean_reward": mean_reward,
            "mean_reward_per_agent": per(&mr),
            "mean_cost_per_agent": per(&mc),
            "mean_safety_per_agent": per(&ms),
            "mean_terms": terms_mean,
            "mean_terms_per_agent": terms_per_agent,
            "penalty": env.setup().config.penalty,
            "reward_scale": env.setup().config.reward_scale,
            "voltage_violation_share": viol,
            "convergence_rate": conv_rate,
            "non_converged": solved - converged,
            "mean_control_iterations": mean_ctrl,
            // Where a step's time goes (CPU backend): power flows per env-step
            // (first solve, control re-solves, full-tolerance re-solves) and
            // FDPF iterations per power flow.
            "power_flows_per_env_step": work.map(|(s, _)| s),
            "fdpf_iterations_per_power_flow": work.map(|(_, i)| i),
            "mean_controller_moves": ctrl_moves as f64 / n,
            // GPU backend: host µs per copy and env-step of the solves by phase
            // (`host`: their sum without the wait), `step_host` the whole step's
            // host time (wall less the waits on the device), `solves` per run.
            "power_flow_host_us_per_env_step": host_json,
        });
        let rate = if timed {
            format!("in {secs:.3} s = {sps:.0} env-steps/s")
        } else {
            format!(
                "in {:.1} ms (too short to give a rate; use more --steps)",
                secs * 1e3
            )
        };
        let mut text = format!(
            "setup {} ({} split) on {}: {b} copies x {} steps, policy {}, {rate}\n",
            env.setup().config.name,
            opts.split,
            env.backend(),
            opts.steps,
            opts.policy
        );
        let cfg = &env.setup().config;
        if cfg.share_reward && na > 1 {
            text += "  share_reward: every agent gets the mean of the agents' rewards, so their rewards are equal (cost and safety stay per agent)\n";
        }
        text += &format!(
            "  reward = -reward_scale·(cost + penalty·safety), penalty {}, reward_scale {}; cost in $ per step; safety in p.u. of voltage outside the band + 0.01 per % of overload + device limit violations (MW, MVA, SOC)\n",
            cfg.penalty, cfg.reward_scale
        );
        for i in 0..na {
            text += &format!(
                "  {:<16} mean reward {:>10.3}  cost {:>10.3}  safety {:>8.4}\n",
                names[i], mr[i], mc[i], ms[i]
            );
        }
        text += "  reward terms (mean over agents; safety unweighted):";
        for name in TERMS {
            let v = terms_mean.get(name).and_then(|v| v.as_f64()).unwrap_or(0.0);
            text += &format!(" {name} {v:.4}");
        }
        text += "\n";
        text += &format!(
            "  steps with a voltage violation: {:.1} %   power flow converged: {:.3} %   mean control iterations: {:.3}\n",
            100.0 * viol,
            100.0 * conv_rate,
            mean_ctrl
        );
        if let Some(h) = host {
            text += &format!(
                "  host µs per copy and step: power-flow solves {:.3} (prepare {:.3}, upload {:.3}, submit {:.3}, unpack {:.3}, check {:.3}; {} solves), whole step without device waits {:.3}; device wait {:.3}\n",
                per_step(h.host_s()),
                per_step(h.prepare_s),
                per_step(h.upload_s),
                per_step(h.submit_s),
                per_step(h.unpack_s),
                per_step(h.check_s),
                h.solves,
                per_step(secs - h.wait_s),
                per_step(h.wait_s)
            );
        }
        Ok((json, text))
    }
}

/// `powergrid optimize`: one plan per start day; the plan file holds one plan
/// (one day) or `{"plans": [...]}`.
#[allow(clippy::too_many_arguments)]
fn optimize_cmd(
    setup: &str,
    split: &str,
    day: usize,
    days: usize,
    mut opts: powergrid::opf::OptimizeOptions,
    check: bool,
    json: bool,
    output: Option<PathBuf>,
    export_conic: Option<PathBuf>,
) -> powergrid::Result<()> {
    use powergrid::env::vec_env::Split;
    opts.split = match split {
        "train" => Split::Train,
        "test" => Split::Test,
        s => {
            return Err(powergrid::Error::InvalidInput(format!(
                "--split {s:?}: expected train or test"
            )))
        }
    };
    if days == 0 {
        return Err(powergrid::Error::InvalidInput(
            "--days must be at least 1".into(),
        ));
    }
    let setup = powergrid::setup::Setup::load(setup)?;
    let list: Vec<usize> = (day..day + days).collect();
    let t0 = std::time::Instant::now();
    let plans = powergrid::opf::optimize_days(&setup, &list, &opts)
        .into_iter()
        .collect::<powergrid::Result<Vec<_>>>()?;
    let wall = t0.elapsed().as_secs_f64();
    let mut summary = vec![];
    for p in &plans {
        let mut s = serde_json::json!({
            "day": p.day, "status": p.status, "objective": p.objective, "mean_reward": p.mean_reward,
            "gap": p.gap, "bound": p.bound, "regularizer": p.regularizer,
            "relaxation_objective": p.relaxation_objective, "nodes": p.nodes,
            "solve_seconds": p.solve_seconds, "hours": p.hours.len(),
        });
        if check {
            let c = powergrid::opf::check_plan(&setup, p)?;
            s["ac_check"] = serde_json::to_value(&c).expect("serialise");
        }
        summary.push(s);
    }
    let summary = serde_json::json!({"setup": setup.config.name, "split": split, "wall_seconds": wall, "plans": summary});
    if json {
        emit(&summary.to_string())?;
    } else {
        for s in summary["plans"].as_array().into_iter().flatten() {
            emit(&s.to_string())?;
        }
        eprintln!("{} plan(s) in {wall:.2} s", plans.len());
    }
    if let Some(path) = export_conic {
        let mut pr = powergrid::opf::Problem::new(&setup, plans[0].day, &opts)?;
        pr.guard_hours(&plans[0].guard_hours);
        let v = pr.export(&plans[0].integers, &plans[0].integers)?;
        std::fs::write(&path, v.to_string()).map_err(|e| powergrid::Error::io(&path, e))?;
    }
    if let Some(path) = output {
        let text = if plans.len() == 1 {
            serde_json::to_string(&plans[0])
        } else {
            serde_json::to_string(&serde_json::json!({ "plans": plans }))
        }
        .expect("plans serialise");
        std::fs::write(&path, text).map_err(|e| powergrid::Error::io(&path, e))?;
        // The set-points refer to the setup's network (with its added generators).
        let net_path = path.with_extension("network.yml");
        network::yaml::write(&setup.network, &net_path)?;
        eprintln!("wrote {} and {}", path.display(), net_path.display());
    }
    Ok(())
}
