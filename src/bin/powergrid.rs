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
        /// Run the network's controllers to settlement (as pandapower's
        /// `runpp(run_control=True)`); adds `trafo_tap_pos`, `shunt_step`,
        /// `control_iterations` and `control_settled` per scenario.
        #[arg(long)]
        control: bool,
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
            control,
        } => {
            let net = network::load(&network)?;
            if control && net.controllers.is_empty() {
                return Err(powergrid::Error::InvalidInput(format!(
                    "--control: {} has no controllers",
                    network.display()
                )));
            }
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
    }
}
