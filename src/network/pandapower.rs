//! Import of pandapower's JSON format (`pandapower.to_json`).
//!
//! Tables are pandas DataFrames serialised with `orient: split`, usually as a JSON
//! string inside `_object`. Element indices are labels; bus references are mapped
//! to positions. Every table that would change the power flow but is not
//! modelled is an error naming it. Descriptive columns (`type`, `std_type`,
//! `zone`, geodata, `max_*`/`min_*` limits, costs…) are ignored, as pandapower's
//! `runpp` ignores them.

use super::controllers::*;
use super::model::*;
use crate::error::{Error, Result};
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;

/// Tables that may be non-empty without affecting the power flow.
const IGNORED_TABLES: &[&str] = &[
    "measurement",
    "pwl_cost",
    "poly_cost",
    "group",
    "bus_geodata",
    "line_geodata",
    "trafo_characteristic_table",
    "shunt_characteristic_table",
    "characteristic",
    "q_capability_curve_table",
    "q_capability_curve_characteristic",
    "trafo_characteristic_spline",
    "shunt_characteristic_spline",
];

/// Tables this crate models.
const MODELLED_TABLES: &[&str] = &[
    "bus",
    "line",
    "trafo",
    "load",
    "sgen",
    "storage",
    "shunt",
    "ext_grid",
    "switch",
    "controller",
    "trafo3w",
    "impedance",
    "ward",
    "gen",
    "xward",
];

/// Read a pandapower JSON file.
pub fn read(path: &Path) -> Result<Network> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    from_str(&text).map_err(|e| match e {
        Error::Parse { message, .. } => Error::parse(path, message),
        other => Error::parse(path, other.to_string()),
    })
}

/// One DataFrame in `orient: split` form.
struct Table {
    name: String,
    columns: HashMap<String, usize>,
    index: Vec<i64>,
    data: Vec<Vec<Value>>,
}

impl Table {
    fn parse(name: &str, v: &Value) -> Result<Table> {
        let obj = v
            .get("_object")
            .ok_or_else(|| perr(format!("table {name}: no _object")))?;
        let parsed: Value;
        let obj = if let Some(s) = obj.as_str() {
            parsed = serde_json::from_str(s).map_err(|e| perr(format!("table {name}: {e}")))?;
            &parsed
        } else {
            obj
        };
        let columns = obj
            .get("columns")
            .and_then(|c| c.as_array())
            .ok_or_else(|| perr(format!("table {name}: no columns")))?
            .iter()
            .enumerate()
            .map(|(i, c)| (c.as_str().unwrap_or("").to_string(), i))
            .collect();
        let index = obj
            .get("index")
            .and_then(|c| c.as_array())
            .ok_or_else(|| perr(format!("table {name}: no index")))?
            .iter()
            .map(|x| {
                x.as_i64()
                    .ok_or_else(|| perr(format!("table {name}: non-integer index {x}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let data = obj
            .get("data")
            .and_then(|c| c.as_array())
            .ok_or_else(|| perr(format!("table {name}: no data")))?
            .iter()
            .map(|r| {
                r.as_array()
                    .cloned()
                    .ok_or_else(|| perr(format!("table {name}: a row is not an array")))
            })
            .collect::<Result<Vec<_>>>()?;
        if data.len() != index.len() {
            return Err(perr(format!(
                "table {name}: {} rows but {} index labels",
                data.len(),
                index.len()
            )));
        }
        Ok(Table {
            name: name.to_string(),
            columns,
            index,
            data,
        })
    }

    fn len(&self) -> usize {
        self.data.len()
    }

    fn raw(&self, row: usize, col: &str) -> Option<&Value> {
        self.columns
            .get(col)
            .and_then(|&c| self.data[row].get(c))
            .filter(|v| !v.is_null())
    }

    fn f64_opt(&self, row: usize, col: &str) -> Result<Option<f64>> {
        match self.raw(row, col) {
            None => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_f64()),
            Some(Value::Bool(b)) => Ok(Some(if *b { 1.0 } else { 0.0 })),
            Some(other) => Err(perr(format!(
                "{} row {}: column {col} is not a number: {other}",
                self.name, self.index[row]
            ))),
        }
    }

    fn f64(&self, row: usize, col: &str) -> Result<f64> {
        self.f64_opt(row, col)?.ok_or_else(|| {
            perr(format!(
                "{} row {}: missing value in column {col}",
                self.name, self.index[row]
            ))
        })
    }

    fn f64_or(&self, row: usize, col: &str, default: f64) -> Result<f64> {
        Ok(self.f64_opt(row, col)?.unwrap_or(default))
    }

    fn bool_or(&self, row: usize, col: &str, default: bool) -> bool {
        match self.raw(row, col) {
            Some(Value::Bool(b)) => *b,
            Some(Value::Number(n)) => n.as_f64().map(|x| x != 0.0).unwrap_or(default),
            _ => default,
        }
    }

    fn str(&self, row: usize, col: &str) -> String {
        match self.raw(row, col) {
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => String::new(),
        }
    }

    fn int(&self, row: usize, col: &str) -> Result<i64> {
        let x = self.f64(row, col)?;
        if x.fract() != 0.0 {
            return Err(perr(format!(
                "{} row {}: {col} = {x} is not an integer",
                self.name, self.index[row]
            )));
        }
        Ok(x as i64)
    }
}

fn perr(message: String) -> Error {
    Error::Parse {
        path: String::new(),
        message,
    }
}

/// Parse pandapower JSON text.
pub fn from_str(text: &str) -> Result<Network> {
    let root: Value = serde_json::from_str(text).map_err(|e| perr(format!("not JSON: {e}")))?;
    let obj = root
        .get("_object")
        .and_then(|o| o.as_object())
        .ok_or_else(|| perr("not a pandapower network (no _object)".into()))?;
    if root.get("_class").and_then(|c| c.as_str()) != Some("pandapowerNet") {
        return Err(perr(
            "not a pandapower network (_class is not pandapowerNet)".into(),
        ));
    }

    let mut tables: HashMap<String, Table> = HashMap::new();
    for (key, v) in obj {
        let is_frame = v.get("_class").and_then(|c| c.as_str()) == Some("DataFrame");
        if !is_frame || key.starts_with("res_") {
            continue;
        }
        let t = Table::parse(key, v)?;
        if MODELLED_TABLES.contains(&key.as_str()) {
            tables.insert(key.clone(), t);
        } else if !IGNORED_TABLES.contains(&key.as_str()) && !key.ends_with("_geodata") {
            // Any other element table with an in-service row would change the power flow.
            let active = (0..t.len())
                .filter(|&r| t.bool_or(r, "in_service", true))
                .count();
            if active > 0 {
                return Err(Error::Unsupported(format!(
                    "the network has {active} in-service element(s) in table '{key}', which powergrid does not model (supported: {})",
                    MODELLED_TABLES.join(", ")
                )));
            }
        }
    }
    let empty = |name: &str| Table {
        name: name.to_string(),
        columns: HashMap::new(),
        index: vec![],
        data: vec![],
    };
    let mut take = |name: &str| tables.remove(name).unwrap_or_else(|| empty(name));

    let f_hz = obj.get("f_hz").and_then(|v| v.as_f64()).unwrap_or(50.0);
    let sn_mva = obj.get("sn_mva").and_then(|v| v.as_f64()).unwrap_or(1.0);
    let name = obj
        .get("name")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string();

    let bt = take("bus");
    let mut bus_pos: HashMap<i64, usize> = HashMap::new();
    let mut buses = Vec::with_capacity(bt.len());
    for r in 0..bt.len() {
        bus_pos.insert(bt.index[r], r);
        buses.push(Bus {
            name: bt.str(r, "name"),
            vn_kv: bt.f64(r, "vn_kv")?,
            in_service: bt.bool_or(r, "in_service", true),
            zone: bt.str(r, "zone"),
        });
    }
    let bus_of = |t: &Table, r: usize, col: &str| -> Result<usize> {
        let label = t.int(r, col)?;
        bus_pos.get(&label).copied().ok_or_else(|| {
            Error::InvalidNetwork(format!(
                "{} row {}: {col} = {label} is not a bus of the network",
                t.name, t.index[r]
            ))
        })
    };

    let lt = take("line");
    let mut line_pos = HashMap::new();
    let mut lines = Vec::with_capacity(lt.len());
    for r in 0..lt.len() {
        line_pos.insert(lt.index[r], r);
        lines.push(Line {
            name: lt.str(r, "name"),
            from_bus: bus_of(&lt, r, "from_bus")?,
            to_bus: bus_of(&lt, r, "to_bus")?,
            length_km: lt.f64(r, "length_km")?,
            r_ohm_per_km: lt.f64(r, "r_ohm_per_km")?,
            x_ohm_per_km: lt.f64(r, "x_ohm_per_km")?,
            c_nf_per_km: lt.f64_or(r, "c_nf_per_km", 0.0)?,
            g_us_per_km: lt.f64_or(r, "g_us_per_km", 0.0)?,
            max_i_ka: lt.f64(r, "max_i_ka")?,
            parallel: lt.int(r, "parallel").unwrap_or(1).max(0) as u32,
            df: lt.f64_or(r, "df", 1.0)?,
            in_service: lt.bool_or(r, "in_service", true),
        });
    }

    let tt = take("trafo");
    let mut trafo_pos = HashMap::new();
    let mut trafos = Vec::with_capacity(tt.len());
    for r in 0..tt.len() {
        trafo_pos.insert(tt.index[r], r);
        let name = tt.str(r, "name");
        let in_service = tt.bool_or(r, "in_service", true);
        let ctx = |what: &str| format!("trafo row {} ({name:?}): {what}", tt.index[r]);
        if tt.bool_or(r, "tap_dependency_table", false) && in_service {
            return Err(Error::Unsupported(ctx("tap-dependent impedance tables")));
        }
        if tt.f64_or(r, "tap_step_degree", 0.0)? != 0.0 && in_service {
            return Err(Error::Unsupported(ctx(
                "phase-shifting tap changer (tap_step_degree)",
            )));
        }
        if tt.f64_or(r, "tap2_step_percent", 0.0)? != 0.0 && in_service {
            return Err(Error::Unsupported(ctx("second tap changer (tap2_*)")));
        }
        let changer = tt.str(r, "tap_changer_type");
        // pandapower ≥ 3.0 has `tap_changer_type`, and a trafo whose type is null has
        // no tap changer at all (its tap columns are ignored); older files have no
        // such column and a tap changer wherever side and step are given.
        let typed = tt.columns.contains_key("tap_changer_type");
        let side = tt.str(r, "tap_side");
        let step = tt.f64_opt(r, "tap_step_percent")?;
        let tap = match (side.as_str(), step) {
            _ if typed && changer.is_empty() => None,
            ("hv" | "lv", Some(step_percent)) if !step_percent.is_nan() => {
                if !(changer.is_empty() || changer == "Ratio" || changer == "Symmetrical")
                    && in_service
                {
                    return Err(Error::Unsupported(ctx(&format!(
                        "tap_changer_type {changer:?}"
                    ))));
                }
                let neutral = tt.f64_or(r, "tap_neutral", 0.0)?;
                let pos = tt.f64_or(r, "tap_pos", neutral)?;
                // Missing limits (pandapower's IEEE cases: NaN, with a tap_pos
                // off neutral): the range spans neutral and the position.
                Some(TapChanger {
                    side: if side == "hv" {
                        TapSide::Hv
                    } else {
                        TapSide::Lv
                    },
                    neutral,
                    step_percent,
                    min: tt.f64_or(r, "tap_min", neutral.min(pos))?,
                    max: tt.f64_or(r, "tap_max", neutral.max(pos))?,
                    pos,
                })
            }
            _ => None,
        };
        trafos.push(Trafo {
            name,
            hv_bus: bus_of(&tt, r, "hv_bus")?,
            lv_bus: bus_of(&tt, r, "lv_bus")?,
            sn_mva: tt.f64(r, "sn_mva")?,
            vn_hv_kv: tt.f64(r, "vn_hv_kv")?,
            vn_lv_kv: tt.f64(r, "vn_lv_kv")?,
            vk_percent: tt.f64(r, "vk_percent")?,
            vkr_percent: tt.f64(r, "vkr_percent")?,
            pfe_kw: tt.f64_or(r, "pfe_kw", 0.0)?,
            i0_percent: tt.f64_or(r, "i0_percent", 0.0)?,
            shift_degree: tt.f64_or(r, "shift_degree", 0.0)?,
            tap,
            parallel: tt.int(r, "parallel").unwrap_or(1).max(0) as u32,
            df: tt.f64_or(r, "df", 1.0)?,
            in_service,
        });
    }

    let t3 = take("trafo3w");
    let mut trafo3w_pos = HashMap::new();
    let mut trafo3ws = Vec::with_capacity(t3.len());
    for r in 0..t3.len() {
        trafo3w_pos.insert(t3.index[r], r);
        trafo3ws.push(read_trafo3w(&t3, r, &bus_of)?);
    }

    let it = take("impedance");
    let mut impedances = Vec::with_capacity(it.len());
    for r in 0..it.len() {
        let rft_pu = it.f64(r, "rft_pu")?;
        let xft_pu = it.f64(r, "xft_pu")?;
        impedances.push(Impedance {
            name: it.str(r, "name"),
            from_bus: bus_of(&it, r, "from_bus")?,
            to_bus: bus_of(&it, r, "to_bus")?,
            rft_pu,
            xft_pu,
            rtf_pu: Some(it.f64_or(r, "rtf_pu", rft_pu)?),
            xtf_pu: Some(it.f64_or(r, "xtf_pu", xft_pu)?),
            gf_pu: it.f64_or(r, "gf_pu", 0.0)?,
            bf_pu: it.f64_or(r, "bf_pu", 0.0)?,
            gt_pu: it.f64_or(r, "gt_pu", 0.0)?,
            bt_pu: it.f64_or(r, "bt_pu", 0.0)?,
            sn_mva: it.f64(r, "sn_mva")?,
            in_service: it.bool_or(r, "in_service", true),
        });
    }

    let wt = take("ward");
    let mut wards = Vec::with_capacity(wt.len());
    for r in 0..wt.len() {
        wards.push(Ward {
            name: wt.str(r, "name"),
            bus: bus_of(&wt, r, "bus")?,
            ps_mw: wt.f64(r, "ps_mw")?,
            qs_mvar: wt.f64(r, "qs_mvar")?,
            pz_mw: wt.f64(r, "pz_mw")?,
            qz_mvar: wt.f64(r, "qz_mvar")?,
            in_service: wt.bool_or(r, "in_service", true),
        });
    }

    let ld = take("load");
    let mut loads = Vec::with_capacity(ld.len());
    for r in 0..ld.len() {
        let name = ld.str(r, "name");
        let in_service = ld.bool_or(r, "in_service", true);
        // ZIP shares: pandapower ≥ 2.x names them per P and Q; older files have
        // `const_z_percent`/`const_i_percent` for both (renamed on load by
        // pandapower's `convert_format`).
        let pct = |col: &str, legacy: &str| -> Result<f64> {
            Ok(match ld.f64_opt(r, col)? {
                Some(v) => v,
                None => ld.f64_or(r, legacy, 0.0)?,
            })
        };
        // `type` ("wye", "delta", or a label such as "MV/LV Station") matters only to
        // pandapower's three-phase flow; its balanced `runpp` ignores it, as we do.
        loads.push(Load {
            name,
            bus: bus_of(&ld, r, "bus")?,
            p_mw: ld.f64(r, "p_mw")?,
            q_mvar: ld.f64_or(r, "q_mvar", 0.0)?,
            scaling: ld.f64_or(r, "scaling", 1.0)?,
            const_z_p_percent: pct("const_z_p_percent", "const_z_percent")?,
            const_z_q_percent: pct("const_z_q_percent", "const_z_percent")?,
            const_i_p_percent: pct("const_i_p_percent", "const_i_percent")?,
            const_i_q_percent: pct("const_i_q_percent", "const_i_percent")?,
            in_service,
        });
    }

    let sg = take("sgen");
    let mut sgens = Vec::with_capacity(sg.len());
    for r in 0..sg.len() {
        sgens.push(Sgen {
            name: sg.str(r, "name"),
            bus: bus_of(&sg, r, "bus")?,
            p_mw: sg.f64(r, "p_mw")?,
            q_mvar: sg.f64_or(r, "q_mvar", 0.0)?,
            scaling: sg.f64_or(r, "scaling", 1.0)?,
            sn_mva: sg.f64_opt(r, "sn_mva")?,
            in_service: sg.bool_or(r, "in_service", true),
        });
    }

    let st = take("storage");
    let mut storages = Vec::with_capacity(st.len());
    for r in 0..st.len() {
        storages.push(Storage {
            name: st.str(r, "name"),
            bus: bus_of(&st, r, "bus")?,
            p_mw: st.f64_or(r, "p_mw", 0.0)?,
            q_mvar: st.f64_or(r, "q_mvar", 0.0)?,
            scaling: st.f64_or(r, "scaling", 1.0)?,
            max_e_mwh: st.f64_or(r, "max_e_mwh", 0.0)?,
            in_service: st.bool_or(r, "in_service", true),
        });
    }

    let sh = take("shunt");
    let mut shunt_pos = HashMap::new();
    let mut shunts = Vec::with_capacity(sh.len());
    for r in 0..sh.len() {
        shunt_pos.insert(sh.index[r], r);
        let name = sh.str(r, "name");
        let in_service = sh.bool_or(r, "in_service", true);
        if sh.bool_or(r, "step_dependency_table", false) && in_service {
            return Err(Error::Unsupported(format!(
                "shunt row {} ({name:?}): step-dependency tables",
                sh.index[r]
            )));
        }
        shunts.push(Shunt {
            name,
            bus: bus_of(&sh, r, "bus")?,
            p_mw: sh.f64_or(r, "p_mw", 0.0)?,
            q_mvar: sh.f64(r, "q_mvar")?,
            vn_kv: sh.f64_opt(r, "vn_kv")?,
            step: sh.f64_or(r, "step", 1.0)?,
            max_step: sh.int(r, "max_step").unwrap_or(1).max(1) as u32,
            in_service,
        });
    }

    let eg = take("ext_grid");
    let mut ext_grids = Vec::with_capacity(eg.len());
    for r in 0..eg.len() {
        ext_grids.push(ExtGrid {
            name: eg.str(r, "name"),
            bus: bus_of(&eg, r, "bus")?,
            vm_pu: eg.f64_or(r, "vm_pu", 1.0)?,
            va_degree: eg.f64_or(r, "va_degree", 0.0)?,
            in_service: eg.bool_or(r, "in_service", true),
        });
    }

    // Generators (PV buses). `controllable`, `slack_weight`, the short-circuit
    // columns and the reactive capability curve (read by `runpp` only with
    // `enforce_q_lims = True`) are ignored; `slack = True` is refused.
    let gt = take("gen");
    let mut gens = Vec::with_capacity(gt.len());
    for r in 0..gt.len() {
        let name = gt.str(r, "name");
        let in_service = gt.bool_or(r, "in_service", true);
        let slack = gt.bool_or(r, "slack", false);
        if slack && in_service {
            return Err(Error::Unsupported(format!(
                "gen row {} ({name:?}), column slack: a gen with slack = True (a reference bus of \
                 its own) is not modelled; use an ext_grid at its bus",
                gt.index[r]
            )));
        }
        let q =
            |col: &str| -> Result<Option<f64>> { Ok(gt.f64_opt(r, col)?.filter(|x| !x.is_nan())) };
        gens.push(Gen {
            bus: bus_of(&gt, r, "bus")?,
            p_mw: gt.f64(r, "p_mw")?,
            vm_pu: gt.f64_or(r, "vm_pu", 1.0)?,
            scaling: gt.f64_or(r, "scaling", 1.0)?,
            sn_mva: gt.f64_opt(r, "sn_mva")?.filter(|x| !x.is_nan()),
            min_q_mvar: q("min_q_mvar")?,
            max_q_mvar: q("max_q_mvar")?,
            slack,
            in_service,
            name,
        });
    }

    // Extended wards (`slack_weight` ignored: `distributed_slack` is not offered).
    let xt = take("xward");
    let mut xwards = Vec::with_capacity(xt.len());
    for r in 0..xt.len() {
        xwards.push(Xward {
            name: xt.str(r, "name"),
            bus: bus_of(&xt, r, "bus")?,
            ps_mw: xt.f64(r, "ps_mw")?,
            qs_mvar: xt.f64(r, "qs_mvar")?,
            pz_mw: xt.f64(r, "pz_mw")?,
            qz_mvar: xt.f64(r, "qz_mvar")?,
            r_ohm: xt.f64(r, "r_ohm")?,
            x_ohm: xt.f64(r, "x_ohm")?,
            vm_pu: xt.f64_or(r, "vm_pu", 1.0)?,
            in_service: xt.bool_or(r, "in_service", true),
        });
    }

    let sw = take("switch");
    let mut switches = Vec::with_capacity(sw.len());
    for r in 0..sw.len() {
        let et = sw.str(r, "et");
        let label = sw.int(r, "element")?;
        let missing = |kind: &str| {
            Error::InvalidNetwork(format!(
                "switch row {}: element {label} is not a {kind} of the network",
                sw.index[r]
            ))
        };
        let (et, element) = match et.as_str() {
            "b" => (
                SwitchElement::Bus,
                *bus_pos.get(&label).ok_or_else(|| missing("bus"))?,
            ),
            "l" => (
                SwitchElement::Line,
                *line_pos.get(&label).ok_or_else(|| missing("line"))?,
            ),
            "t" => (
                SwitchElement::Trafo,
                *trafo_pos.get(&label).ok_or_else(|| missing("trafo"))?,
            ),
            "t3" => (
                SwitchElement::Trafo3w,
                *trafo3w_pos.get(&label).ok_or_else(|| missing("trafo3w"))?,
            ),
            other => {
                let closed = sw.bool_or(r, "closed", true);
                if closed {
                    return Err(Error::Unsupported(format!(
                        "switch row {}: element type {other:?} (supported: b, l, t, t3)",
                        sw.index[r]
                    )));
                }
                continue;
            }
        };
        switches.push(Switch {
            name: sw.str(r, "name"),
            bus: bus_of(&sw, r, "bus")?,
            element,
            et,
            closed: sw.bool_or(r, "closed", true),
            z_ohm: sw.f64_or(r, "z_ohm", 0.0)?,
        });
    }

    let ct = take("controller");
    let controllers = read_controllers(&ct, &bus_pos, &trafo_pos, &shunt_pos)?;

    Ok(Network {
        name,
        f_hz,
        sn_mva,
        buses,
        lines,
        trafos,
        loads,
        sgens,
        storages,
        shunts,
        ext_grids,
        switches,
        controllers,
        trafo3ws,
        impedances,
        wards,
        gens,
        xwards,
    })
}

/// Row `r` of the `trafo3w` table. Refused (in service, naming row and column):
/// tap-dependence tables, a tap at the star point, phase-shifting or `"Ideal"`/
/// `"Tabular"` tap changers, `loss_side = "star"`.
fn read_trafo3w(
    t3: &Table,
    r: usize,
    bus_of: &dyn Fn(&Table, usize, &str) -> Result<usize>,
) -> Result<Trafo3w> {
    let name = t3.str(r, "name");
    let in_service = t3.bool_or(r, "in_service", true);
    let ctx = |col: &str, what: &str| {
        Error::Unsupported(format!(
            "trafo3w row {} ({name:?}), column {col}: {what}",
            t3.index[r]
        ))
    };
    if in_service && t3.bool_or(r, "tap_dependency_table", false) {
        return Err(ctx(
            "tap_dependency_table",
            "tap-dependent impedance tables",
        ));
    }
    let changer = t3.str(r, "tap_changer_type");
    let typed = t3.columns.contains_key("tap_changer_type");
    let side = t3.str(r, "tap_side");
    let step = t3.f64_opt(r, "tap_step_percent")?;
    let tap = match (side.as_str(), step) {
        _ if typed && changer.is_empty() => None,
        ("hv" | "mv" | "lv", Some(step_percent)) if !step_percent.is_nan() => {
            if in_service {
                if !(changer.is_empty() || changer == "Ratio" || changer == "Symmetrical") {
                    return Err(ctx(
                        "tap_changer_type",
                        &format!("tap changer type {changer:?}"),
                    ));
                }
                if t3.f64_or(r, "tap_step_degree", 0.0)?.is_finite()
                    && t3.f64_or(r, "tap_step_degree", 0.0)? != 0.0
                {
                    return Err(ctx("tap_step_degree", "phase-shifting tap changer"));
                }
                if t3.bool_or(r, "tap_at_star_point", false) {
                    return Err(ctx("tap_at_star_point", "a tap changer at the star point"));
                }
            }
            let neutral = t3.f64_or(r, "tap_neutral", 0.0)?;
            Some(Trafo3wTap {
                side: match side.as_str() {
                    "hv" => Trafo3wSide::Hv,
                    "mv" => Trafo3wSide::Mv,
                    _ => Trafo3wSide::Lv,
                },
                neutral,
                step_percent,
                min: t3.f64_or(r, "tap_min", neutral)?,
                max: t3.f64_or(r, "tap_max", neutral)?,
                pos: t3.f64_or(r, "tap_pos", neutral)?,
            })
        }
        _ => None,
    };
    let loss_side = match t3.str(r, "loss_side").as_str() {
        "" | "hv" => Trafo3wSide::Hv,
        "mv" => Trafo3wSide::Mv,
        "lv" => Trafo3wSide::Lv,
        other => {
            if in_service {
                return Err(ctx("loss_side", &format!("iron losses at {other:?}")));
            }
            Trafo3wSide::Hv
        }
    };
    Ok(Trafo3w {
        name: name.clone(),
        hv_bus: bus_of(t3, r, "hv_bus")?,
        mv_bus: bus_of(t3, r, "mv_bus")?,
        lv_bus: bus_of(t3, r, "lv_bus")?,
        sn_hv_mva: t3.f64(r, "sn_hv_mva")?,
        sn_mv_mva: t3.f64(r, "sn_mv_mva")?,
        sn_lv_mva: t3.f64(r, "sn_lv_mva")?,
        vn_hv_kv: t3.f64(r, "vn_hv_kv")?,
        vn_mv_kv: t3.f64(r, "vn_mv_kv")?,
        vn_lv_kv: t3.f64(r, "vn_lv_kv")?,
        vk_hv_percent: t3.f64(r, "vk_hv_percent")?,
        vk_mv_percent: t3.f64(r, "vk_mv_percent")?,
        vk_lv_percent: t3.f64(r, "vk_lv_percent")?,
        vkr_hv_percent: t3.f64(r, "vkr_hv_percent")?,
        vkr_mv_percent: t3.f64(r, "vkr_mv_percent")?,
        vkr_lv_percent: t3.f64(r, "vkr_lv_percent")?,
        pfe_kw: t3.f64_or(r, "pfe_kw", 0.0)?,
        i0_percent: t3.f64_or(r, "i0_percent", 0.0)?,
        shift_mv_degree: t3.f64_or(r, "shift_mv_degree", 0.0)?,
        shift_lv_degree: t3.f64_or(r, "shift_lv_degree", 0.0)?,
        tap,
        loss_side,
        in_service,
    })
}

/// A value of a serialised controller: numpy scalars are `{"_module": "numpy",
/// "_class": …, "_object": value}`, and NaN/booleans may be strings.
fn np_value(v: &Value) -> &Value {
    match v {
        Value::Object(o) if o.get("_module").and_then(|m| m.as_str()) == Some("numpy") => {
            o.get("_object").unwrap_or(&Value::Null)
        }
        _ => v,
    }
}

fn np_f64(v: &Value) -> Option<f64> {
    match np_value(v) {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse::<f64>().ok(),
        Value::Bool(b) => Some(*b as u8 as f64),
        _ => None,
    }
}

fn np_bool(v: &Value) -> Option<bool> {
    match np_value(v) {
        Value::Bool(b) => Some(*b),
        Value::String(s) => s.parse::<bool>().ok(),
        Value::Number(n) => n.as_f64().map(|x| x != 0.0),
        _ => None,
    }
}

/// The `controller` table: each row's `object` is the controller serialised by
/// pandapower (`_class` and its attributes as a JSON string in `_object`).
/// `DiscreteTapControl` (of a `trafo`) and `DiscreteShuntController` are read;
/// any other class is an error naming it and the row. Controllers are ordered
/// by pandapower's `order` column (stable); several `level`s are an error.
fn read_controllers(
    ct: &Table,
    bus_pos: &HashMap<i64, usize>,
    trafo_pos: &HashMap<i64, usize>,
    shunt_pos: &HashMap<i64, usize>,
) -> Result<Vec<Controller>> {
    let mut rows: Vec<(f64, Controller)> = Vec::with_capacity(ct.len());
    let mut levels: Vec<String> = vec![];
    for r in 0..ct.len() {
        let label = ct.index[r];
        let err = |m: String| perr(format!("controller row {label}: {m}"));
        let obj = ct.raw(r, "object").ok_or_else(|| err("no object".into()))?;
        let class = obj
            .get("_class")
            .and_then(|c| c.as_str())
            .unwrap_or("")
            .to_string();
        let parsed: Value;
        let attrs = match obj.get("_object") {
            Some(Value::String(s)) => {
                parsed = serde_json::from_str(s).map_err(|e| err(format!("{class}: {e}")))?;
                &parsed
            }
            Some(v) => v,
            None => return Err(err(format!("{class}: no _object"))),
        };
        let get = |k: &str| attrs.get(k).map(np_value).filter(|v| !v.is_null());
        let num = |k: &str| -> Result<f64> {
            get(k)
                .and_then(np_f64)
                .ok_or_else(|| err(format!("{class}: missing or non-numeric {k}")))
        };
        let label_of = |k: &str| -> Result<i64> {
            let x = num(k)?;
            if x.fract() != 0.0 {
                return Err(err(format!("{class}: {k} = {x} is not an index")));
            }
            Ok(x as i64)
        };
        let in_service = ct.bool_or(r, "in_service", true);
        let order = ct.f64_or(r, "order", 0.0)?;
        let level = ct
            .raw(r, "level")
            .map_or("0".to_string(), |v| v.to_string());
        if !levels.contains(&level) {
            levels.push(level);
        }
        let name = ct.str(r, "name");
        let c = match class.as_str() {
            "DiscreteTapControl" => {
                let element = get("element").and_then(|v| v.as_str()).unwrap_or("trafo");
                if element != "trafo" {
                    return Err(Error::Unsupported(format!(
                        "controller row {label}: DiscreteTapControl of element {element:?} (only trafo)"
                    )));
                }
                if get("element_index").is_some_and(|v| v.is_array()) {
                    return Err(Error::Unsupported(format!(
                        "controller row {label}: DiscreteTapControl of several trafos (make one per trafo)"
                    )));
                }
                let t = label_of("element_index")?;
                let trafo = *trafo_pos
                    .get(&t)
                    .ok_or_else(|| err(format!("DiscreteTapControl: trafo {t} does not exist")))?;
                let side = match get("side").and_then(|v| v.as_str()).unwrap_or("lv") {
                    "hv" => TapSide::Hv,
                    "lv" => TapSide::Lv,
                    other => {
                        return Err(Error::Unsupported(format!(
                            "controller row {label}: DiscreteTapControl side {other:?}"
                        )))
                    }
                };
                Controller::DiscreteTap(DiscreteTapControl {
                    name,
                    trafo,
                    side,
                    vm_lower_pu: num("vm_lower_pu")?,
                    vm_upper_pu: num("vm_upper_pu")?,
                    tol: get("tol").and_then(np_f64).unwrap_or(1e-3),
                    line_drop: None,
                    in_service,
                })
            }
            "DiscreteShuntController" => {
                if get("check_step_bounds").and_then(np_bool) == Some(false) {
                    return Err(Error::Unsupported(format!(
                        "controller row {label}: DiscreteShuntController with check_step_bounds = False"
                    )));
                }
                if get("reset_at_init").and_then(np_bool) == Some(true) {
                    return Err(Error::Unsupported(format!(
                        "controller row {label}: DiscreteShuntController with reset_at_init = True"
                    )));
                }
                let s = label_of("shunt_index")?;
                let shunt = *shunt_pos.get(&s).ok_or_else(|| {
                    err(format!("DiscreteShuntController: shunt {s} does not exist"))
                })?;
                let bus = match get("controlled_bus") {
                    Some(_) => {
                        let b = label_of("controlled_bus")?;
                        Some(*bus_pos.get(&b).ok_or_else(|| {
                            err(format!("DiscreteShuntController: bus {b} does not exist"))
                        })?)
                    }
                    None => None,
                };
                let increment = get("increment").and_then(np_f64).unwrap_or(1.0);
                if !(increment >= 1.0 && increment.fract() == 0.0) {
                    return Err(err(format!(
                        "DiscreteShuntController: increment {increment} is not a positive integer"
                    )));
                }
                Controller::DiscreteShunt(DiscreteShuntControl {
                    name,
                    shunt,
                    bus,
                    vm_set_pu: num("vm_set_pu")?,
                    tol: get("tol").and_then(np_f64).unwrap_or(1e-3),
                    increment: increment as u32,
                    in_service,
                })
            }
            other => {
                return Err(Error::Unsupported(format!(
                    "controller row {label}: controller class {other:?} (supported: DiscreteTapControl, DiscreteShuntController)"
                )))
            }
        };
        rows.push((order, c));
    }
    if levels.len() > 1 {
        return Err(Error::Unsupported(format!(
            "controllers on several levels ({}): powergrid runs one level",
            levels.join(", ")
        )));
    }
    // Stable: equal `order`s keep their file order.
    rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok(rows.into_iter().map(|(_, c)| c).collect())
}
