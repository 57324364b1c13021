//! The `pf` scenario file format (the shape of pandapower's reference solutions):
//! `{"scenarios":[{"inputs":{"load_p_mw":[…], …}}, …]}`; any key may be left out
//! to keep the network's value. Output: `{"scenarios":[{"converged", "iterations",
//! "max_mismatch_pu", "results":{…}}]}`.

use super::batch::{BatchInputs, BatchResults};
use crate::error::{Error, Result};
use crate::network::Network;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// A scenario key, its values and the batch table they go to.
type Field<'a> = (
    &'static str,
    &'a Option<Vec<f64>>,
    &'a mut ndarray::Array2<f64>,
);

/// One scenario's inputs; every key optional.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioInputs {
    /// Load P in MW.
    #[serde(default)]
    pub load_p_mw: Option<Vec<f64>>,
    /// Load Q in Mvar.
    #[serde(default)]
    pub load_q_mvar: Option<Vec<f64>>,
    /// Load scaling.
    #[serde(default)]
    pub load_scaling: Option<Vec<f64>>,
    /// Sgen P in MW.
    #[serde(default)]
    pub sgen_p_mw: Option<Vec<f64>>,
    /// Sgen Q in Mvar.
    #[serde(default)]
    pub sgen_q_mvar: Option<Vec<f64>>,
    /// Storage P in MW.
    #[serde(default)]
    pub storage_p_mw: Option<Vec<f64>>,
    /// Trafo tap positions.
    #[serde(default)]
    pub trafo_tap_pos: Option<Vec<f64>>,
    /// Shunt steps.
    #[serde(default)]
    pub shunt_step: Option<Vec<f64>>,
    /// Gen P in MW.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gen_p_mw: Option<Vec<f64>>,
    /// Gen voltage set-points in p.u.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gen_vm_pu: Option<Vec<f64>>,
}

/// A scenario: inputs, plus whatever else a reference file carries (kept, ignored).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Scenario {
    /// Inputs (absent: the network as given).
    #[serde(default)]
    pub inputs: ScenarioInputs,
    /// Other keys (`id`, `converged`, reference `results`, …).
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// A scenario file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ScenarioFile {
    /// The scenarios, solved as one batch.
    pub scenarios: Vec<Scenario>,
    /// Other top-level keys.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl ScenarioFile {
    /// Read a scenario file.
    pub fn read(path: &Path) -> Result<ScenarioFile> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let f: ScenarioFile = serde_json::from_str(&text).map_err(|e| Error::parse(path, e))?;
        if f.scenarios.is_empty() {
            return Err(Error::parse(path, "the file has no scenarios"));
        }
        Ok(f)
    }

    /// Batch inputs: one copy per scenario, the network's values where a key is absent.
    pub fn to_inputs(&self, net: &Network) -> Result<BatchInputs> {
        let mut inp = BatchInputs::from_network(net, self.scenarios.len());
        for (c, s) in self.scenarios.iter().enumerate() {
            let i = &s.inputs;
            let pairs: [Field<'_>; 10] = [
                ("load_p_mw", &i.load_p_mw, &mut inp.load_p_mw),
                ("load_q_mvar", &i.load_q_mvar, &mut inp.load_q_mvar),
                ("load_scaling", &i.load_scaling, &mut inp.load_scaling),
                ("sgen_p_mw", &i.sgen_p_mw, &mut inp.sgen_p_mw),
                ("sgen_q_mvar", &i.sgen_q_mvar, &mut inp.sgen_q_mvar),
                ("storage_p_mw", &i.storage_p_mw, &mut inp.storage_p_mw),
                ("trafo_tap_pos", &i.trafo_tap_pos, &mut inp.trafo_tap_pos),
                ("shunt_step", &i.shunt_step, &mut inp.shunt_step),
                ("gen_p_mw", &i.gen_p_mw, &mut inp.gen_p_mw),
                ("gen_vm_pu", &i.gen_vm_pu, &mut inp.gen_vm_pu),
            ];
            for (name, src, dst) in pairs {
                if let Some(v) = src {
                    if v.len() != dst.ncols() {
                        return Err(Error::InvalidInput(format!(
                            "scenario {c}: {name} has {} values, the network has {}",
                            v.len(),
                            dst.ncols()
                        )));
                    }
                    dst.row_mut(c).iter_mut().zip(v).for_each(|(d, s)| *d = *s);
                }
            }
        }
        inp.validate(net)?;
        Ok(inp)
    }
}

/// One copy's output.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScenarioOutput {
    /// Converged?
    pub converged: bool,
    /// Iterations.
    pub iterations: u32,
    /// Final mismatch in p.u.
    pub max_mismatch_pu: f64,
    /// Result tables by name.
    pub results: BTreeMap<String, Vec<f64>>,
    /// With `pf --control`: the settled tap positions (0 for trafos without a tap changer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trafo_tap_pos: Option<Vec<f64>>,
    /// With `pf --control`: the settled shunt steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shunt_step: Option<Vec<f64>>,
    /// With `pf --control`: control iterations (power flows after the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_iterations: Option<u32>,
    /// With `pf --control`: whether every controller settled (false where the
    /// power flow failed or the iteration cap was reached).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_settled: Option<bool>,
}

/// The `pf` output file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutputFile {
    /// Backend that solved it.
    pub backend: String,
    /// Buses cut off from every slack (their values are 0).
    pub isolated_buses: Vec<usize>,
    /// Per-scenario results.
    pub scenarios: Vec<ScenarioOutput>,
}

impl OutputFile {
    /// Build from batch results.
    pub fn from_results(backend: String, isolated_buses: Vec<usize>, r: &BatchResults) -> Self {
        let scenarios = (0..r.batch())
            .map(|c| ScenarioOutput {
                converged: r.converged[c],
                iterations: r.iterations[c],
                max_mismatch_pu: if r.max_mismatch_pu[c].is_finite() {
                    r.max_mismatch_pu[c]
                } else {
                    f64::MAX
                },
                results: r
                    .tables()
                    .iter()
                    .map(|(k, a)| (k.to_string(), a.row(c).to_vec()))
                    .collect(),
                trafo_tap_pos: None,
                shunt_step: None,
                control_iterations: None,
                control_settled: None,
            })
            .collect();
        OutputFile {
            backend,
            isolated_buses,
            scenarios,
        }
    }

    /// Add the control loop's outcome per scenario: final taps and steps from
    /// `inputs`, `iterations` and `settled` per copy.
    pub fn add_control(&mut self, inputs: &BatchInputs, iterations: &[u32], settled: &[bool]) {
        for (c, s) in self.scenarios.iter_mut().enumerate() {
            s.trafo_tap_pos = Some(inputs.trafo_tap_pos.row(c).to_vec());
            s.shunt_step = Some(inputs.shunt_step.row(c).to_vec());
            s.control_iterations = iterations.get(c).copied();
            s.control_settled = settled.get(c).copied();
        }
    }
}
