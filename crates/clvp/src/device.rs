//! Runtime backend choice: `cpu` (burn-flex, else ndarray), `ndarray`, `wgpu`, `cuda[:N]`.
//!
//! The device is always chosen explicitly: with `wgpu` compiled in, burn's `Device::default()` would pick
//! the wgpu device even on a CPU-only machine.

use std::fmt;
use std::str::FromStr;

pub use burn::tensor::Device;

/// A backend the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    /// The pure-Rust CPU backend: burn-flex when compiled in, else ndarray.
    Cpu,
    /// The ndarray CPU backend.
    Ndarray,
    /// The wgpu backend (default adapter).
    Wgpu,
    /// A CUDA device by index.
    Cuda(usize),
}

/// A device that cannot be had: unknown name, or its backend feature is not compiled in.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DeviceError {
    /// The name is not one of the known devices.
    #[error("unknown device {0:?}: expected cpu, ndarray, wgpu, cuda or cuda:N")]
    Unknown(String),
    /// The backend for this device was not compiled in.
    #[error(
        "device {device} needs the `{feature}` feature of the clvp crate, which this build was compiled without"
    )]
    NotCompiled {
        /// The requested device.
        device: String,
        /// The cargo feature that provides it.
        feature: &'static str,
    },
}

impl FromStr for DeviceChoice {
    type Err = DeviceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        match lower.as_str() {
            "cpu" | "flex" => Ok(DeviceChoice::Cpu),
            "ndarray" => Ok(DeviceChoice::Ndarray),
            "wgpu" | "gpu" => Ok(DeviceChoice::Wgpu),
            "cuda" => Ok(DeviceChoice::Cuda(0)),
            _ => match lower.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(i)) => Ok(DeviceChoice::Cuda(i)),
                _ => Err(DeviceError::Unknown(s.to_string())),
            },
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceChoice::Cpu => write!(f, "cpu"),
            DeviceChoice::Ndarray => write!(f, "ndarray"),
            DeviceChoice::Wgpu => write!(f, "wgpu"),
            DeviceChoice::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl DeviceChoice {
    /// The burn device for this choice, or an error naming the missing feature.
    #[allow(unreachable_code, deprecated)]
    pub fn device(self) -> Result<Device, crate::Error> {
        let missing = |feature| {
            Err(crate::Error::Device(DeviceError::NotCompiled {
                device: self.to_string(),
                feature,
            }))
        };
        match self {
            DeviceChoice::Cpu => {
                #[cfg(feature = "flex")]
                return Ok(Device::flex());
                #[cfg(feature = "ndarray")]
                return Ok(Device::ndarray());
                missing("flex")
            }
            DeviceChoice::Ndarray => {
                #[cfg(feature = "ndarray")]
                return Ok(Device::ndarray());
                missing("ndarray")
            }
            DeviceChoice::Wgpu => {
                #[cfg(feature = "wgpu")]
                return Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice));
                missing("wgpu")
            }
            DeviceChoice::Cuda(_index) => {
                #[cfg(feature = "cuda")]
                return Ok(Device::cuda(_index));
                missing("cuda")
            }
        }
    }
}

/// The device named by `name` (`cpu`, `ndarray`, `wgpu`, `cuda`, `cuda:N`).
pub fn device(name: &str) -> Result<Device, crate::Error> {
    name.parse::<DeviceChoice>()?.device()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names() {
        assert_eq!("cpu".parse(), Ok(DeviceChoice::Cpu));
        assert_eq!("CUDA:2".parse(), Ok(DeviceChoice::Cuda(2)));
        assert_eq!("cuda".parse(), Ok(DeviceChoice::Cuda(0)));
        assert!(matches!(
            "tpu".parse::<DeviceChoice>(),
            Err(DeviceError::Unknown(_))
        ));
        assert!(matches!(
            "cuda:x".parse::<DeviceChoice>(),
            Err(DeviceError::Unknown(_))
        ));
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn missing_backend_names_the_feature() {
        let err = device("cuda").unwrap_err();
        assert!(err.to_string().contains("`cuda` feature"), "{err}");
    }

    #[cfg(feature = "flex")]
    #[test]
    fn cpu_is_flex_and_computes() {
        let dev = device("cpu").expect("flex is compiled in");
        let t = burn::tensor::Tensor::<1>::from_floats([1.0, 2.0, 3.0], &dev);
        let s: f32 = t.sum().into_scalar::<f32>();
        assert_eq!(s, 6.0);
    }
}
