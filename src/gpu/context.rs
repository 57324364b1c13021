//! One context struct owns the wgpu instance, adapter, device and queue.
//!
//! Adapter choice honours `WGPU_BACKEND` (e.g. `vulkan`) and `WGPU_ADAPTER_NAME`
//! (a case-insensitive substring of the adapter name, e.g. `llvmpipe`); without
//! them the first discrete GPU, then integrated, virtual, other and last CPU
//! adapter is taken.

use crate::error::{Error, Result};
use std::sync::{Arc, OnceLock};

/// What the chosen adapter is.
#[derive(Debug, Clone)]
pub struct GpuInfo {
    /// Adapter name as the driver reports it.
    pub name: String,
    /// Backend (Vulkan, Metal, DX12, GL).
    pub backend: String,
    /// Device type.
    pub device_type: wgpu::DeviceType,
    /// Driver name and version.
    pub driver: String,
}

impl GpuInfo {
    /// Whether the adapter emulates a GPU on the CPU (lavapipe/llvmpipe, WARP, SwiftShader).
    pub fn is_cpu_emulated(&self) -> bool {
        let n = self.name.to_lowercase();
        self.device_type == wgpu::DeviceType::Cpu
            || n.contains("llvmpipe")
            || n.contains("lavapipe")
            || n.contains("swiftshader")
    }
}

impl std::fmt::Display for GpuInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}, {:?}", self.name, self.backend, self.device_type)?;
        if !self.driver.is_empty() {
            write!(f, ", {}", self.driver)?;
        }
        write!(f, ")")
    }
}

/// Instance, adapter, device and queue, with the limits the solvers need.
pub struct GpuContext {
    /// The adapter in use.
    pub adapter: wgpu::Adapter,
    /// The logical device.
    pub device: wgpu::Device,
    /// Its queue.
    pub queue: wgpu::Queue,
    /// What the adapter is.
    pub info: GpuInfo,
    /// Device limits (the adapter's own, requested in full).
    pub limits: wgpu::Limits,
    /// Whether timestamp queries on compute passes are enabled.
    pub timestamps: bool,
    /// Whether shaders may use f64 (`SHADER_F64`, enabled where the adapter has it).
    pub shader_f64: bool,
}

fn info_of(a: &wgpu::Adapter) -> GpuInfo {
    let i = a.get_info();
    GpuInfo {
        name: i.name,
        backend: format!("{:?}", i.backend),
        device_type: i.device_type,
        driver: format!("{} {}", i.driver, i.driver_info).trim().to_string(),
    }
}

/// The backends `WGPU_BACKEND` names (comma-separated, case-insensitive), or the
/// primary ones (Vulkan, Metal, DX12) when it is unset. GL is skipped by default:
/// it has nothing for batched compute and its EGL probe prints errors on
/// headless machines. A name wgpu does not know is an error, not an empty set.
pub fn backends_from_env() -> Result<wgpu::Backends> {
    let Ok(list) = std::env::var("WGPU_BACKEND") else {
        return Ok(wgpu::Backends::PRIMARY);
    };
    let mut out = wgpu::Backends::empty();
    for name in list.split(',').map(|n| n.trim().to_lowercase()) {
        out |= match name.as_str() {
            "vulkan" | "vk" => wgpu::Backends::VULKAN,
            "metal" | "mtl" => wgpu::Backends::METAL,
            "dx12" | "d3d12" => wgpu::Backends::DX12,
            "gl" | "gles" | "opengl" => wgpu::Backends::GL,
            "webgpu" => wgpu::Backends::BROWSER_WEBGPU,
            "primary" => wgpu::Backends::PRIMARY,
            "secondary" => wgpu::Backends::SECONDARY,
            "all" => wgpu::Backends::all(),
            _ => {
                return Err(Error::Gpu(format!(
                    "WGPU_BACKEND={list:?}: {name:?} is not a backend name; use vulkan, metal, dx12 or gl (comma-separated), or unset it"
                )))
            }
        };
    }
    Ok(out)
}

/// Mesa's Vulkan drivers (lavapipe included) probe Wayland when the instance is
/// made, and libwayland prints `error: XDG_RUNTIME_DIR is invalid or not set`
/// on headless machines and in CI. Point it at the temp dir, once, before the
/// first instance, so that a library user's program prints nothing.
fn quiet_wayland_probe() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
            std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir());
        }
    });
}

fn instance(backends: wgpu::Backends) -> wgpu::Instance {
    quiet_wayland_probe();
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    desc.backends = backends;
    wgpu::Instance::new(desc)
}

/// Every adapter the environment allows (`WGPU_BACKEND`), in preference order,
/// filtered by `WGPU_ADAPTER_NAME` when set.
fn candidate_adapters(inst: &wgpu::Instance, backends: wgpu::Backends) -> Vec<wgpu::Adapter> {
    let mut all = pollster::block_on(inst.enumerate_adapters(backends));
    if let Ok(want) = std::env::var("WGPU_ADAPTER_NAME") {
        let want = want.to_lowercase();
        all.retain(|a| a.get_info().name.to_lowercase().contains(&want));
    }
    let rank = |a: &wgpu::Adapter| match a.get_info().device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    };
    all.sort_by_key(|a| (rank(a), info_of(a).is_cpu_emulated()));
    all
}

impl GpuContext {
    /// Open the preferred adapter (see the module docs).
    pub fn new() -> Result<GpuContext> {
        let backends = backends_from_env()?;
        let inst = instance(backends);
        let adapters = candidate_adapters(&inst, backends);
        let Some(adapter) = adapters.into_iter().next() else {
            let mut msg = String::from("no GPU adapter found (wgpu saw none");
            if let Ok(b) = std::env::var("WGPU_BACKEND") {
                msg += &format!(" with WGPU_BACKEND={b}");
            }
            if let Ok(n) = std::env::var("WGPU_ADAPTER_NAME") {
                msg += &format!(" named like WGPU_ADAPTER_NAME={n}");
            }
            msg += "); install a Vulkan/Metal/DX12 driver (on Debian/Ubuntu without a GPU: `apt-get install mesa-vulkan-drivers` for lavapipe) or use --backend cpu";
            return Err(Error::Gpu(msg));
        };
        let info = info_of(&adapter);
        let limits = adapter.limits();
        let timestamps = adapter.features().contains(wgpu::Features::TIMESTAMP_QUERY);
        let mut features = wgpu::Features::empty();
        if timestamps {
            features |= wgpu::Features::TIMESTAMP_QUERY;
        }
        let shader_f64 = adapter.features().contains(wgpu::Features::SHADER_F64);
        if shader_f64 {
            features |= wgpu::Features::SHADER_F64;
        }
        let desc = wgpu::DeviceDescriptor {
            label: Some("powergrid"),
            required_features: features,
            required_limits: limits.clone(),
            ..Default::default()
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&desc))
            .map_err(|e| Error::Gpu(format!("{info}: cannot open the device: {e}")))?;
        Ok(GpuContext {
            adapter,
            device,
            queue,
            info,
            limits,
            timestamps,
            shader_f64,
        })
    }

    /// The process-wide context, opened on first use and shared after.
    pub fn shared() -> Result<Arc<GpuContext>> {
        static CTX: OnceLock<std::result::Result<Arc<GpuContext>, String>> = OnceLock::new();
        CTX.get_or_init(|| GpuContext::new().map(Arc::new).map_err(|e| e.to_string()))
            .clone()
            .map_err(|e| Error::Gpu(e.trim_start_matches("GPU: ").to_string()))
    }

    /// Largest storage buffer binding, in bytes.
    pub fn max_binding_bytes(&self) -> u64 {
        self.limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size)
    }
}

/// Whether any allowed adapter is a real GPU (not emulated on the CPU).
pub fn real_gpu_available() -> bool {
    static REAL: OnceLock<bool> = OnceLock::new();
    *REAL.get_or_init(|| {
        let Ok(backends) = backends_from_env() else {
            return false;
        };
        candidate_adapters(&instance(backends), backends)
            .iter()
            .any(|a| !info_of(a).is_cpu_emulated())
    })
}
