//! `powergrid`: power flow, import, benchmarks and rollouts from the command line.

use clap::{Parser, Subcommand};
use powergrid::env::rollout::{self, Policy, RolloutOptions};
use powergrid::network;
use powergrid::powerflow::scenarios::{OutputFile, ScenarioFile};
use powergrid::powerflow::{new_backend, BackendKind, Plan, SolverOptions};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

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
        #[arg(long, value_enum, default_value = "cpu")]
        backend: BackendKind,
        /// Write the results here instead of stdout.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Convert a pandapower JSON network to the project's YAML format (element order kept).
    Import {
        /// pandapower JSON file.
        input: PathBuf,
        /// Output YAML file.
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
        #[arg(long, default_value_t = 1024)]
        envs: usize,
        /// Steps per copy.
        #[arg(long, default_value_t = 96)]
        steps: usize,
        /// Policy.
        #[arg(long, value_enum, default_value = "random")]
        policy: Policy,
        /// Power-flow backend.
        #[arg(long, value_enum, default_value = "auto")]
        backend: BackendKind,
        /// Seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Print the summary as one JSON object.
        #[arg(long)]
        json: bool,
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
}

#[derive(Subcommand)]
enum BenchCmd {
    /// Power flows per second on a warm batch (every injection perturbed a few percent per step).
    Pf {
        /// Network file.
        #[arg(long)]
        network: PathBuf,
        /// Copies per batch.
        #[arg(long, default_value_t = 1024)]
        batch: usize,
        /// Backend.
        #[arg(long, value_enum, default_value = "cpu")]
        backend: BackendKind,
        /// Minimum measuring time in seconds.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
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
        } => {
            let net = network::load(&network)?;
            let plan = Arc::new(Plan::new(&net, SolverOptions::default())?);
            let inputs = match &scenarios {
                Some(p) => ScenarioFile::read(p)?.to_inputs(&net)?,
                None => powergrid::powerflow::BatchInputs::from_network(&net, 1),
            };
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
            let s = pf.solve()?;
            eprintln!(
                "{} of {} converged, mean {:.1} iterations",
                s.converged, s.batch, s.mean_iterations
            );
            let out = OutputFile::from_results(desc, plan.isolated_buses.clone(), pf.results());
            let text = serde_json::to_string(&out).expect("results serialise");
            match output {
                Some(p) => std::fs::write(&p, text).map_err(|e| powergrid::Error::io(&p, e))?,
                None => println!("{text}"),
            }
            Ok(())
        }
        Cmd::Import { input, output } => {
            let net = network::pandapower::read(&input)?;
            net.validate()
                .map_err(|e| powergrid::Error::parse(&input, e))?;
            network::yaml::write(&net, &output)?;
            eprintln!(
                "wrote {} ({} buses, {} lines, {} trafos, {} loads, {} sgens, {} storages, {} shunts, {} ext_grids, {} switches)",
                output.display(),
                net.buses.len(),
                net.lines.len(),
                net.trafos.len(),
                net.loads.len(),
                net.sgens.len(),
                net.storages.len(),
                net.shunts.len(),
                net.ext_grids.len(),
                net.switches.len()
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
                },
        } => {
            let net = network::load(&network)?;
            let r = powergrid::bench::bench_pf(&net, batch, backend, seconds)?;
            if json {
                println!("{}", serde_json::to_string(&r).expect("serialise"));
            } else {
                println!("network            {}", network.display());
                println!("backend            {}", r.backend);
                println!("batch              {}", r.batch);
                println!("threads            {}", r.threads);
                println!("power flows / s    {:.0}", r.power_flows_per_s);
                println!("per thread / s     {:.0}", r.power_flows_per_s_per_thread);
                println!(
                    "µs per power flow  {:.3} (wall, whole batch / batch size)",
                    1e6 / r.power_flows_per_s
                );
                println!("mean iterations    {:.2}", r.mean_iterations);
                println!("converged          {:.4}", r.converged_fraction);
                println!("steps measured     {}", r.steps);
            }
            Ok(())
        }
        Cmd::Rollout {
            setup,
            envs,
            steps,
            policy,
            backend,
            seed,
            json,
        } => {
            let opts = RolloutOptions {
                setup,
                envs,
                steps,
                policy,
                backend,
                seed,
                progress: !json,
            };
            let (summary, text) = rollout::run(&opts)?;
            if json {
                println!("{summary}");
            } else {
                println!("{text}");
            }
            Ok(())
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
        println!("{summary}");
    } else {
        for s in summary["plans"].as_array().into_iter().flatten() {
            println!("{s}");
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
