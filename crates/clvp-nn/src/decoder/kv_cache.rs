//! The decoder's key/value cache ([`KvCache`]): burn tensors, or host buffers when the projections run on the host.

use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::config::ClvpDecoderConfig;
use crate::error::NnError;
use crate::host::attention::HostKv;

/// Per-layer keys and values, preallocated to a capacity and filled left to right.
///
/// The buffers are allocated by the first forward that uses the cache: burn tensors, or host buffers
/// when the decoder runs its projections on the host ([`ClvpForCausalLM::set_host_projections`](crate::ClvpForCausalLM::set_host_projections)), whose
/// attention then runs on the host too ([`crate::host`]).
#[derive(Debug, Clone)]
pub struct KvCache {
    pub(super) store: Store,
    pub(super) len: usize,
    pub(super) capacity: usize,
    pub(super) batch: usize,
    pub(super) heads: usize,
    pub(super) head_dim: usize,
    pub(super) layers: usize,
}

#[derive(Debug, Clone)]
pub(super) enum Store {
    Unallocated,
    Tensors {
        keys: Vec<Tensor<4>>,
        values: Vec<Tensor<4>>,
    },
    Host(HostKv),
}

impl KvCache {
    /// An empty cache for `batch` rows and up to `capacity` positions.
    pub fn new(
        config: &ClvpDecoderConfig,
        batch: usize,
        capacity: usize,
        _device: &Device,
    ) -> Self {
        KvCache {
            store: Store::Unallocated,
            len: 0,
            capacity,
            batch,
            heads: config.num_attention_heads,
            head_dim: config.head_dim(),
            layers: config.num_hidden_layers,
        }
    }

    /// Positions held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Maximum positions.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Keep only the rows `indices` (beam-search reordering, or dropping finished rows); an index past the
    /// cache's batch is an error, and the cache is left as it was.
    pub fn select_rows(&mut self, indices: &[usize]) -> Result<(), NnError> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.batch) {
            return Err(NnError::Shape(format!(
                "KV cache row {bad} selected from a batch of {}",
                self.batch
            )));
        }
        match &mut self.store {
            Store::Unallocated => {}
            Store::Tensors { keys, values } => {
                let Some(first) = keys.first() else {
                    return Ok(());
                };
                let device = first.device();
                let idx: Vec<i64> = indices.iter().map(|&i| i as i64).collect();
                let idx =
                    Tensor::<1, Int>::from_data(TensorData::new(idx, [indices.len()]), &device);
                for t in keys.iter_mut().chain(values.iter_mut()) {
                    *t = t.clone().select(0, idx.clone());
                }
            }
            Store::Host(kv) => kv.select_rows(indices),
        }
        self.batch = indices.len();
        Ok(())
    }

    /// Allocate the buffers for the host path (`host`) or burn tensors on `device`, on first use; a
    /// cache filled by the other path is an error.
    pub(super) fn prepare(&mut self, host: bool, device: &Device) -> Result<(), NnError> {
        let fits = match &self.store {
            Store::Unallocated => false,
            Store::Tensors { .. } => !host,
            Store::Host(_) => host,
        };
        if fits {
            return Ok(());
        }
        if self.len > 0 {
            return Err(NnError::Shape(format!(
                "KV cache holds {} positions from the {} path, the decoder now runs the other one",
                self.len,
                if host { "burn" } else { "host" }
            )));
        }
        self.store = if host {
            Store::Host(HostKv::new(
                self.layers,
                self.batch,
                self.heads,
                self.capacity,
                self.head_dim,
            ))
        } else {
            let shape = [self.batch, self.heads, self.capacity, self.head_dim];
            Store::Tensors {
                keys: (0..self.layers)
                    .map(|_| Tensor::zeros(shape, device))
                    .collect(),
                values: (0..self.layers)
                    .map(|_| Tensor::zeros(shape, device))
                    .collect(),
            }
        };
        Ok(())
    }

    /// Write `k`, `v` (`[B, heads, t, hd]`) after the cached positions; returns the whole buffers
    /// (`[B, heads, capacity, hd]`), unused slots included.
    pub(super) fn append(
        &mut self,
        layer: usize,
        k: Tensor<4>,
        v: Tensor<4>,
    ) -> Result<(Tensor<4>, Tensor<4>), NnError> {
        let Store::Tensors { keys, values } = &mut self.store else {
            return Err(NnError::Shape(
                "KV cache: tensor append on host buffers".into(),
            ));
        };
        let [b, h, t, hd] = k.dims();
        let (start, end) = (self.len, self.len + t);
        let ranges = [0..b, 0..h, start..end, 0..hd];
        // The cached tensor is moved out so the cache is its only owner and `slice_assign` writes in
        // place: assigning into a shared tensor copies all of it, every layer of every step.
        let write = |slot: &mut Tensor<4>, new: Tensor<4>| {
            let device = new.device();
            let cache = std::mem::replace(slot, Tensor::empty([0, 0, 0, 0], &device));
            *slot = cache.slice_assign(ranges.clone(), new);
            slot.clone()
        };
        Ok((write(&mut keys[layer], k), write(&mut values[layer], v)))
    }
}
