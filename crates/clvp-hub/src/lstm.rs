//! Reproduces PyTorch `nn.LSTM`'s packed parameters (`weight_ih_l{k}` `[4H, in]`, rows `[i | f | g | o]`) and
//! splits them into burn's `Lstm` gate controllers.
//!
//! burn-nn 0.22 `Lstm` has four `GateController`s (`input_gate`, `forget_gate`, `cell_gate`,
//! `output_gate`), each with `input_transform: Linear` (weight `[in, H]`) and `hidden_transform: Linear`
//! (weight `[H, H]`), both with bias. PyTorch adds `bias_ih` and `bias_hh`; burn adds the two Linear
//! biases, so they map one to one. burn's `Lstm` is one layer: a stacked `nn.LSTM(num_layers=n)` is
//! `n` burn `Lstm`s (e.g. `Vec<Lstm>`, layer `k` fed by layer `k-1`), `batch_first = false` for
//! PyTorch's default sequence-first layout.

/// burn gate names in PyTorch's row order `i, f, g, o`.
pub const LSTM_GATES: [&str; 4] = ["input_gate", "forget_gate", "cell_gate", "output_gate"];

/// One PyTorch LSTM parameter kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LstmParam {
    /// `weight_ih_l{k}` `[4H, in]`.
    WeightIh,
    /// `weight_hh_l{k}` `[4H, H]`.
    WeightHh,
    /// `bias_ih_l{k}` `[4H]`.
    BiasIh,
    /// `bias_hh_l{k}` `[4H]`.
    BiasHh,
}

impl LstmParam {
    /// Parse the last key segment (`weight_ih_l0`, `bias_hh_l1_reverse`, ...) into kind and layer.
    pub fn parse(segment: &str) -> Option<(LstmParam, usize)> {
        let segment = segment.strip_suffix("_reverse").unwrap_or(segment);
        let (name, layer) = segment.rsplit_once("_l")?;
        let layer = layer.parse().ok()?;
        let kind = match name {
            "weight_ih" => LstmParam::WeightIh,
            "weight_hh" => LstmParam::WeightHh,
            "bias_ih" => LstmParam::BiasIh,
            "bias_hh" => LstmParam::BiasHh,
            _ => return None,
        };
        Some((kind, layer))
    }

    /// The burn path below a gate: `input_transform.weight`, `hidden_transform.bias`, ...
    pub fn burn_suffix(self) -> &'static str {
        match self {
            LstmParam::WeightIh => "input_transform.weight",
            LstmParam::WeightHh => "hidden_transform.weight",
            LstmParam::BiasIh => "input_transform.bias",
            LstmParam::BiasHh => "hidden_transform.bias",
        }
    }

    /// True for the weight matrices (which burn stores transposed).
    pub fn is_weight(self) -> bool {
        matches!(self, LstmParam::WeightIh | LstmParam::WeightHh)
    }
}

/// The shape of one gate's burn parameter for a packed PyTorch shape (`[4H, in]` → `[in, H]`, `[4H]` → `[H]`).
pub fn gate_shape(packed: &[usize]) -> Result<Vec<usize>, String> {
    match packed {
        [rows] if rows % 4 == 0 => Ok(vec![rows / 4]),
        [rows, cols] if rows % 4 == 0 => Ok(vec![*cols, rows / 4]),
        _ => Err(format!(
            "an LSTM tensor is [4H] or [4H, in] with 4H divisible by 4, found {packed:?}"
        )),
    }
}

/// Split packed rows `[i | f | g | o]` into four row blocks (each `[H, ...]`, unchanged layout).
pub fn split_gates(packed: &[f32], shape: &[usize]) -> Result<[Vec<f32>; 4], String> {
    gate_shape(shape)?;
    let numel: usize = shape.iter().product();
    if packed.len() != numel {
        return Err(format!("{} values for shape {shape:?}", packed.len()));
    }
    let block = numel / 4;
    Ok(std::array::from_fn(|i| {
        packed[i * block..(i + 1) * block].to_vec()
    }))
}

/// Inverse of [`split_gates`]: concatenate four row blocks in the order `i, f, g, o`.
pub fn pack_gates(gates: [&[f32]; 4]) -> Vec<f32> {
    gates.concat()
}

/// Row-major transpose of a `[rows, cols]` matrix.
pub fn transpose(data: &[f32], rows: usize, cols: usize) -> Result<Vec<f32>, String> {
    if data.len() != rows * cols {
        return Err(format!(
            "{} values cannot be a [{rows}, {cols}] matrix",
            data.len()
        ));
    }
    let mut out = vec![0.0; data.len()];
    for (r, row) in data.chunks_exact(cols.max(1)).enumerate() {
        for (c, &x) in row.iter().enumerate() {
            out[c * rows + r] = x;
        }
    }
    Ok(out)
}

/// One gate of a packed LSTM tensor as burn wants it: the gate's row block, transposed for weights.
pub fn gate_for_burn(packed: &[f32], shape: &[usize], gate: usize) -> Result<Vec<f32>, String> {
    let blocks = split_gates(packed, shape)?;
    let block = blocks
        .into_iter()
        .nth(gate)
        .ok_or_else(|| format!("gate index {gate} out of 0..4"))?;
    match shape {
        [rows, cols] => transpose(&block, rows / 4, *cols),
        _ => Ok(block),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pytorch_names() {
        assert_eq!(
            LstmParam::parse("weight_ih_l0"),
            Some((LstmParam::WeightIh, 0))
        );
        assert_eq!(
            LstmParam::parse("bias_hh_l12"),
            Some((LstmParam::BiasHh, 12))
        );
        assert_eq!(
            LstmParam::parse("weight_hh_l1_reverse"),
            Some((LstmParam::WeightHh, 1))
        );
        assert_eq!(LstmParam::parse("weight"), None);
    }

    #[test]
    fn split_pack_round_trip_and_gate_layout() {
        // 4H = 4 (H = 1), in = 2: rows i=[0,1], f=[2,3], g=[4,5], o=[6,7].
        let packed: Vec<f32> = (0..8).map(|x| x as f32).collect();
        let parts = split_gates(&packed, &[4, 2]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parts[2], vec![4.0, 5.0]);
        assert_eq!(
            pack_gates([&parts[0], &parts[1], &parts[2], &parts[3]]),
            packed
        );
        assert_eq!(gate_shape(&[4, 2]), Ok(vec![2, 1]));
        assert_eq!(gate_for_burn(&packed, &[4, 2], 3), Ok(vec![6.0, 7.0]));
        assert!(split_gates(&packed, &[8]).is_ok());
        assert!(gate_shape(&[6, 2]).is_err());
    }

    #[test]
    fn transposes() {
        assert_eq!(
            transpose(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3),
            Ok(vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0])
        );
        assert!(transpose(&[1.0, 2.0, 3.0], 2, 2).is_err());
    }
}
