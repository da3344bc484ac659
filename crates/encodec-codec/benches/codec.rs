//! Criterion benches of EnCodec's hot paths on the committed tiny 24 kHz checkpoint (so they run anywhere in
//! seconds): encode (SEANet encoder + LSTM + residual VQ) and decode of 1 s; and the full-size LSTM on its own
//! (2 layers of 512, random weights, the 750 steps of 10 s at 24 kHz). `cargo bench -p encodec-codec`.

use std::hint::black_box;

use burn::tensor::Distribution;
use burn::tensor::{Device, Tensor, TensorData};
use clvp_hub::Checkpoint;
use criterion::{Criterion, criterion_group, criterion_main};
use encodec_codec::EncodecModel;
use encodec_codec::lstm::EncodecLstm;

fn codec(c: &mut Criterion) {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/encodec/tiny_24k"
    );
    let device = Device::flex();
    let model = match Checkpoint::local(dir)
        .map_err(|e| e.to_string())
        .and_then(|ck| EncodecModel::from_checkpoint(&ck, &device).map_err(|e| e.to_string()))
    {
        Ok(m) => m,
        Err(e) => panic!("the tiny checkpoint {dir} does not load: {e}"),
    };
    let n = 24_000;
    let samples: Vec<f32> = (0..n).map(|i| (i as f32 * 0.05).sin() * 0.3).collect();
    let input = || Tensor::<3>::from_data(TensorData::new(samples.clone(), [1, 1, n]), &device);
    c.bench_function("encodec tiny 24 kHz encode 1 s", |b| {
        b.iter(|| model.encode(black_box(input()), None, None))
    });
    let Ok(enc) = model.encode(input(), None, None) else {
        panic!("encoding 1 s with the tiny checkpoint failed");
    };
    c.bench_function("encodec tiny 24 kHz decode 1 s", |b| {
        b.iter(|| {
            model.decode(
                black_box(enc.audio_codes.clone()),
                enc.audio_scales.clone(),
                enc.last_frame_pad_length,
                Some(n),
            )
        })
    });
    let lstm = EncodecLstm::new(512, 2, &device);
    let x = Tensor::<3>::random([1, 512, 750], Distribution::Normal(0.0, 1.0), &device);
    c.bench_function("encodec LSTM 2 × 512, 750 steps (24 kHz, 10 s)", |b| {
        b.iter(|| lstm.forward(black_box(x.clone())))
    });
}

criterion_group!(benches, codec);
criterion_main!(benches);
