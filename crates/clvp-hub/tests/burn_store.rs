//! Pins the burn-store 0.22.1 behaviour that made this crate map names itself: `PytorchStore` always applies
//! `PyTorchToBurnAdapter`, which transposes the weight of every burn `Linear` — wrong for a GPT-2 `Conv1D`
//! (already `[in, out]`). The same module loads correctly through `clvp_hub::load_module`.

mod common;

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::store::{ModuleSnapshot, PytorchStore};
use clvp_hub::{Layout, NameMap, Weights, load_module};
use common::{device, hub_fixture};

#[derive(Module, Debug)]
struct Mlp {
    c_fc: Linear,
}

#[derive(Module, Debug)]
struct Gpt2Mlp {
    mlp: Mlp,
}

fn model() -> Gpt2Mlp {
    Gpt2Mlp {
        mlp: Mlp {
            c_fc: LinearConfig::new(6, 7).init(&device()),
        },
    }
}

#[test]
fn pytorch_store_transposes_gpt2_conv1d_wrongly() {
    let path = hub_fixture("pytorch/pytorch_model.bin");
    let mut store = PytorchStore::from_file(&path).allow_partial(true);
    let msg = match model().load_from(&mut store) {
        Ok(r) => panic!("burn-store accepted the transposed Conv1D weight: {r}"),
        Err(e) => e.to_string(),
    };
    assert!(
        msg.contains("mlp.c_fc.weight") && msg.contains("[7, 6]"),
        "{msg}"
    );

    let map = NameMap::new("gpt2-mlp")
        .rule(r"mlp\.c_fc\.(weight|bias)", "mlp.c_fc.$1", Layout::AsIs)
        .ignore(r".*");
    let weights = Weights::open(&path).unwrap_or_else(|e| panic!("{e}"));
    let m = load_module(model(), &weights, &map).unwrap_or_else(|e| panic!("{e}"));
    let stored = weights.get("mlp.c_fc.weight").map(|e| e.to_f32());
    let loaded = m.mlp.c_fc.weight.val().into_data().try_to_vec::<f32>().ok();
    assert!(matches!((stored, loaded), (Some(Ok(a)), Some(b)) if a == b));
}
