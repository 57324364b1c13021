//! `powergrid`: power flow, import, benchmarks and rollouts from the command line.

use clap::{Parser, Subcommand};
use powergrid::env::rollout::{self, Policy, RolloutOptions};
use powergrid::network;
use powergrid::powerflow::scenarios::{OutputFile, ScenarioFile};
use powergrid::powerflow::{new_backend, BackendKind, Plan, SolverOptions};
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
        #[arg(long, value_enum, default_value = "cpu")]
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
        /// Policy.
        #[arg(long, value_enum, default_value = "random")]
        policy: Policy,
        /// Power-flow backend.
        #[arg(long, value_enum, default_value = "auto")]
        backend: BackendKind,
        /// Seed.
        #[arg(long, default_value_t = 0, value_parser = seed, allow_negative_numbers = true)]
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
        #[arg(long, default_value_t = 1024, value_parser = count, allow_negative_numbers = true)]
        batch: usize,
        /// Backend.
        #[arg(long, value_enum, default_value = "cpu")]
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
            verbose,
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
                "wrote {} ({} buses, {} lines, {} trafos, {} loads, {} sgens, {} storages, {} shunts, {} ext_grids, {} switches)",
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
                    verbose,
                },
        } => {
            let net = network::load(&network)?;
            if verbose {
                let plan = Plan::new(&net, SolverOptions::default())?;
                let e = powergrid::powerflow::memory::estimate(&plan, batch, backend);
                eprintln!("memory: {e}");
            }
            let r = powergrid::bench::bench_pf(&net, batch, backend, seconds)?;
            if json {
                let mut v = serde_json::to_value(&r).expect("serialise");
                v["network"] = net.name.clone().into();
                v["network_file"] = network.display().to_string().into();
                emit(&v.to_string())?;
            } else {
                let text = [
                    format!("network            {} ({})", net.name, network.display()),
                    format!("backend            {}", r.backend),
                    format!("batch              {}", r.batch),
                    format!("threads            {}", r.threads),
                    format!("power flows / s    {:.0}", r.power_flows_per_s),
                    format!("per thread / s     {:.0}", r.power_flows_per_s_per_thread),
                    format!(
                        "µs per power flow  {:.3} (wall, whole batch / batch size)",
                        1e6 / r.power_flows_per_s
                    ),
                    format!("mean iterations    {:.2}", r.mean_iterations),
                    format!("converged          {:.4}", r.converged_fraction),
                    format!("steps measured     {} in {:.3} s", r.steps, r.seconds),
                ];
                emit(&text.join("\n"))?;
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
                emit(&summary.to_string())?;
            } else {
                emit(&text)?;
            }
            Ok(())
        }
    }
}
