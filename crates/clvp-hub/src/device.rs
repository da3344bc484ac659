//! Which kind of device a model sits on: the CPU backends run some work on host kernels instead.

use burn::tensor::Device;

/// Whether `device` belongs to a CPU backend (burn-flex or burn-ndarray), where the models' host
/// kernels (plain slices on the calling threads) can stand in for burn ops.
pub fn is_cpu(device: &Device) -> bool {
    use burn::backend::{Device as _, DispatchDeviceId};
    // The dispatch device keeps its backend in the upper byte of the id's type (burn-dispatch's
    // `encode_type_id`); `cpu_devices_are_recognised` below fails if that ever changes.
    let backend = device.as_dispatch().to_id().type_id >> 8;
    [DispatchDeviceId::Flex, DispatchDeviceId::NdArray]
        .into_iter()
        .any(|id| u16::from(id) == backend)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_devices_are_recognised() {
        assert!(
            is_cpu(&Device::flex()),
            "burn-flex's device is not a CPU device"
        );
    }
}
