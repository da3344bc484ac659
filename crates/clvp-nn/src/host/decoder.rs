//! The decoder's projections packed for [`PackedLinear`]: `ClvpDecoder`'s q/k/v (fused), `out_proj`, the
//! MLP's `c_fc` and `c_proj`, and `lm_head`, laid out `[out, in]` in f32, bf16 or int8.

use burn::nn::Linear;
use burn::tensor::{Device, Tensor, TensorData};

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

/// Every projection of a `ClvpForCausalLM`, packed (by `ClvpForCausalLM`'s own walk over its layers).
#[derive(Debug)]
pub(crate) struct HostDecoder {
    pub layers: Vec<HostLayer>,
    pub lm_head: PackedLinear,
}

impl HostLayer {
    /// Pack one decoder layer's projections in `precision`: q, k and v stacked into one product,
    /// `out_proj`, and the MLP's `c_fc` and `c_proj`. The error names the projection at fault.
    pub fn pack(
        [q, k, v]: [&Linear; 3],
        out_proj: &Linear,
        [c_fc, c_proj]: [&Linear; 2],
        precision: Precision,
    ) -> Result<Self, String> {
        let mut w = Vec::new();
        let mut b = Vec::new();
        let (mut d_out, mut d_in) = (0, 0);
        for part in [q, k, v].map(read) {
            let part = part?;
            if d_out > 0 && part.d_in != d_in {
                return Err("q/k/v projections of unequal widths".into());
            }
            d_out += part.d_out;
            d_in = part.d_in;
            w.extend_from_slice(&part.w);
            b.extend(part.b.unwrap_or_else(|| vec![0.0; part.d_out]));
        }
        Ok(HostLayer {
            qkv: Read {
                w,
                b: Some(b),
                d_out,
                d_in,
            }
            .pack(precision)
            .map_err(|e| format!("q/k/v: {e}"))?,
            out_proj: pack_linear(out_proj, precision)?,
            c_fc: pack_linear(c_fc, precision)?,
            c_proj: pack_linear(c_proj, precision)?,
        })
    }
}

/// A burn `Linear` packed `[out, in]` in `precision`.
pub(crate) fn pack_linear(linear: &Linear, precision: Precision) -> Result<PackedLinear, String> {
    read(linear).and_then(|r| r.pack(precision))
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
        if precision == Precision::Int8 && self.w.iter().any(|v| !v.is_finite()) {
            return Err("a weight is not finite, and has no int8 value".into());
        }
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
