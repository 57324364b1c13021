//! Arithmetic of the GPU solver.

/// Floating-point width of the GPU solver's state and arithmetic.
///
/// `F32` (the default) is the fast path for feeders: within about 1e-6 p.u. and
/// 1e-4 pp of line loading of pandapower on every distribution network we test.
/// On meshed transmission networks whose angles span most of a radian, f32 angles
/// alone (spacing 6e-8 rad) move the current of a stiff line by |y_s|·6e-8, about
/// 1e-2 pp of loading; `F64` runs the same shader in f64 (WGSL f64, on
/// adapters with `SHADER_F64`: NVIDIA, AMD, lavapipe) for pandapower's own
/// precision, at f64 speed and twice the device memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GpuPrecision {
    /// f32 state and arithmetic (deviation form, see `shaders/fdpf.wgsl`).
    #[default]
    F32,
    /// The same solver in f64.
    F64,
}

impl std::str::FromStr for GpuPrecision {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        match s {
            "f32" => Ok(GpuPrecision::F32),
            "f64" => Ok(GpuPrecision::F64),
            _ => Err(crate::Error::InvalidInput(format!(
                "GPU precision {s:?}: expected \"f32\" or \"f64\""
            ))),
        }
    }
}

impl std::fmt::Display for GpuPrecision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            GpuPrecision::F32 => "f32",
            GpuPrecision::F64 => "f64",
        })
    }
}
