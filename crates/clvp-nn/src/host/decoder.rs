//! The decoder's projections packed for [`PackedLinear`]: `ClvpDecoder`'s q/k/v (fused), `out_proj`, the
//! MLP's `c_fc` and `c_proj`, and `lm_head`, laid out `[out, in]` in f32 or bf16.

use burn::nn::Linear;
use burn::tensor::{Device, Tensor, TensorData};

use crate::decoder::ClvpForCausalLM;
use crate::error::NnError;
use crate::host::activation::gelu_new_in_place;
use crate::host::attention::HostKv;
use crate::host::{PackedLinear, Precision, to_host};

/// One decoder layer's projections.
#[derive(Debug)]
pub(crate) struct HostLayer {
    /// q, k and v projections stacked: `[3·hidden, hidden]`.
    pub qkv: PackedLinear,
    pub out_proj: PackedLinear,
    pub c_fc: PackedLinear,
    pub c_proj: PackedLinear,
}

/// Every projection of a [`ClvpForCausalLM`], packed.
#[derive(Debug)]
pub(crate) struct HostDecoder {
    pub layers: Vec<HostLayer>,
    pub lm_head: PackedLinear,
}

impl HostDecoder {
    /// Pack `lm`'s projections in `precision`, layer by layer, handing each layer's mapped checkpoint
    /// pages back once its copy exists (the loaded tensors are not used again).
    pub fn pack(lm: &ClvpForCausalLM, precision: Precision) -> Result<Self, NnError> {
        let dec = &lm.model.decoder;
        let mut layers = Vec::with_capacity(dec.layers.len());
        for (i, layer) in dec.layers.iter().enumerate() {
            let a = &layer.attn;
            let parts = [&a.q_proj, &a.k_proj, &a.v_proj].map(read);
            let mut w = Vec::new();
            let mut b = Vec::new();
            let (mut d_out, mut d_in) = (0, 0);
            for part in parts {
                let part = part.map_err(|e| NnError::Shape(format!("decoder layer {i}: {e}")))?;
                d_out += part.d_out;
                d_in = part.d_in;
                w.extend_from_slice(&part.w);
                b.extend(part.b.unwrap_or_else(|| vec![0.0; part.d_out]));
            }
            let qkv = PackedLinear::new(w, Some(b), d_out, d_in, precision);
            let pack = |l: &Linear| read(l).and_then(|r| r.pack(precision));
            let packed = (
                qkv,
                pack(&a.out_proj),
                pack(&layer.mlp.c_fc),
                pack(&layer.mlp.c_proj),
            );
            let layer_err = |what: &str| NnError::Shape(format!("decoder layer {i}: {what}"));
            let host = HostLayer {
                qkv: packed
                    .0
                    .ok_or_else(|| layer_err("q/k/v projections of unequal widths"))?,
                out_proj: packed.1.map_err(|e| layer_err(&e))?,
                c_fc: packed.2.map_err(|e| layer_err(&e))?,
                c_proj: packed.3.map_err(|e| layer_err(&e))?,
            };
            layer.mapped.iter().for_each(clvp_hub::MappedPages::release);
            layer
                .mlp
                .mapped
                .iter()
                .for_each(clvp_hub::MappedPages::release);
            layers.push(host);
        }
        let lm_head = read(&lm.lm_head)
            .and_then(|r| r.pack(precision))
            .map_err(|e| NnError::Shape(format!("lm_head: {e}")))?;
        lm.mapped.iter().for_each(clvp_hub::MappedPages::release);
        Ok(HostDecoder { layers, lm_head })
    }
}

/// A layer's weight as `[out, in]` row-major, and its bias.
struct Read {
    w: Vec<f32>,
    b: Option<Vec<f32>>,
    d_out: usize,
    d_in: usize,
}

impl Read {
    fn pack(self, precision: Precision) -> Result<PackedLinear, String> {
        let (d_out, d_in) = (self.d_out, self.d_in);
        PackedLinear::new(self.w, self.b, d_out, d_in, precision)
            .ok_or_else(|| format!("weight or bias does not fit [{d_out}, {d_in}]"))
    }
}

fn read(linear: &Linear) -> Result<Read, String> {
    // burn's `Linear` weight is `[in, out]` whatever its buffer's layout; its transpose reads out as
    // PyTorch's `[out, in]`.
    let weight = linear.weight.val();
    let [d_in, d_out] = weight.dims();
    let w = to_host(weight.transpose().into_data())?;
    let b = match &linear.bias {
        Some(b) => Some(to_host(b.val().into_data())?),
        None => None,
    };
    if w.len() != d_out * d_in || b.as_ref().is_some_and(|b| b.len() != d_out) {
        return Err(format!(
            "weight of {} values is not [{d_out}, {d_in}]",
            w.len()
        ));
    }
    Ok(Read { w, b, d_out, d_in })
}

/// `lin` over the last dimension of `x` `[B, T, in]` → `[B, T, out]`, on the host.
pub(crate) fn apply(lin: &PackedLinear, x: Tensor<3>) -> Result<Tensor<3>, NnError> {
    let (d_out, d_in) = lin.dims();
    map_rows(x, d_in, d_out, |x, rows| Ok(lin.forward(x, rows)?))
}

impl HostLayer {
    /// Self-attention of `x` `[B, t, hidden]` (normed) over the host cache `kv` of layer `layer`,
    /// `past` positions already cached: the fused q/k/v projection, the cached attention and
    /// `out_proj`, in one host pass.
    pub fn cached_attention(
        &self,
        kv: &mut HostKv,
        layer: usize,
        past: usize,
        t: usize,
        x: Tensor<3>,
    ) -> Result<Tensor<3>, NnError> {
        let (d_out, d_in) = self.out_proj.dims();
        map_rows(x, d_in, d_out, |x, rows| {
            let merged = kv.attend(layer, past, t, &self.qkv.forward(x, rows)?);
            Ok(self.out_proj.forward(&merged, rows)?)
        })
    }

    /// `ClvpDecoderMLP`: `c_proj(gelu_new(c_fc(z)))` on the host, the activation computed in place
    /// between the two products.
    pub fn mlp(&self, z: Tensor<3>) -> Result<Tensor<3>, NnError> {
        let (d_out, _) = self.c_proj.dims();
        let (_, d_in) = self.c_fc.dims();
        map_rows(z, d_in, d_out, |x, rows| {
            let mut a = self.c_fc.forward(x, rows)?;
            gelu_new_in_place(&mut a);
            Ok(self.c_proj.forward(&a, rows)?)
        })
    }
}

/// `f` over the rows of `x` `[B, T, d_in]` read to the host, giving `[B, T, d_out]`.
fn map_rows(
    x: Tensor<3>,
    d_in: usize,
    d_out: usize,
    f: impl FnOnce(&[f32], usize) -> Result<Vec<f32>, NnError>,
) -> Result<Tensor<3>, NnError> {
    let [b, t, d] = x.dims();
    if d != d_in {
        return Err(NnError::Shape(format!(
            "projection expects width {d_in}, got [{b}, {t}, {d}]"
        )));
    }
    let device: Device = x.device();
    let data = to_host(x.into_data()).map_err(NnError::Shape)?;
    let y = f(&data, b * t)?;
    Ok(Tensor::from_data(
        TensorData::new(y, [b, t, d_out]),
        &device,
    ))
}
