//! The jobs of `clvp batch`: one model load, then one item at a time, each item's values or its error.
//!
//! Items are not batched together: every result is bit for bit the single-file command's, whatever else is in
//! the shard — the contract that lets a resumed run (a different mix of items) write the same bytes. On this
//! project's CPU backends batching brings little: the kernels already spread one item over every core.

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use clvp::codec::CompactCodes;
use clvp::raw::audio::{AudioReader, Features, load_audio_prefix};
use clvp::raw::encodec::ecdc::EcdcModel;
use clvp::raw::encodec::is_valid_scale;
use clvp::{Clvp, ClvpProcessor, Encodec, GenerationConfig};

use super::manifest::{CodesCell, Item, Needs};
use super::table::{Cell, Column, Kind};
use crate::codes_in::{CodesIn, read_input_codes};
use crate::finite::{MODEL_CAUSE, ensure_finite};

/// One kind of work over items.
pub trait Job {
    /// The result columns after `id`.
    fn columns(&self) -> &'static [Column];
    /// The item's values and the seconds of audio it took or made.
    fn run(&mut self, item: &Item) -> Result<(Vec<Cell>, f64)>;
}

/// The columns each job needs from the manifest.
pub fn needs(job: &str) -> Needs {
    match job {
        "encodec-encode" | "features" => Needs {
            audio: true,
            ..Needs::default()
        },
        "encodec-decode" => Needs {
            codes: true,
            ..Needs::default()
        },
        "generate" => Needs {
            audio: true,
            text: true,
            codes: false,
        },
        _ => Needs {
            text: true,
            ..Needs::default()
        },
    }
}

/// The item's audio file: present and a regular file (a FIFO or a device would block or never end).
fn audio_path(item: &Item) -> Result<&Path> {
    let Some(path) = item.audio.as_deref() else {
        bail!("the row has no `audio`");
    };
    regular_file(path, "audio")
}

/// `path`, if it names a regular file (`what` names the input in the messages).
fn regular_file<'a>(path: &'a Path, what: &str) -> Result<&'a Path> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("reading {what} {}", path.display()))?;
    if !meta.is_file() {
        bail!(
            "reading {what} {}: not a regular file (a manifest names files)",
            path.display()
        );
    }
    Ok(path)
}

fn text(item: &Item) -> Result<&str> {
    item.text
        .as_deref()
        .ok_or_else(|| anyhow!("the row has no `text`"))
}

/// `encodec-encode`: audio → codes, as `clvp encodec encode` makes them.
pub struct Encode {
    pub codec: Encodec,
    pub bandwidth: f64,
}

const ENCODE: &[Column] = &[
    // [chunks][codebooks][frames], each chunk its own length (HF pads the last chunk; .ecdc does not).
    Column {
        name: "audio_codes",
        kind: Kind::Ints3,
    },
    // One per chunk for models that normalise (48 kHz), else null.
    Column {
        name: "audio_scales",
        kind: Kind::Floats,
    },
    Column {
        name: "audio_length",
        kind: Kind::Int,
    },
];

impl Job for Encode {
    fn columns(&self) -> &'static [Column] {
        ENCODE
    }

    fn run(&mut self, item: &Item) -> Result<(Vec<Cell>, f64)> {
        let path = audio_path(item)?;
        let mut reader =
            AudioReader::open(path).with_context(|| format!("reading audio {}", path.display()))?;
        let mut codes = CompactCodes::default();
        let summary = self
            .codec
            .encode_stream(&mut reader, Some(self.bandwidth), &mut |event| {
                codes.push(event).map_err(anyhow::Error::from)
            })
            .with_context(|| format!("encoding {}", path.display()))?;
        let mut chunks = Vec::with_capacity(codes.segments.len());
        let mut scales = Vec::new();
        for (i, (seg, frames, scale)) in codes.segments.iter().enumerate() {
            let k = codes.num_codebooks;
            let rows: Vec<Vec<i64>> = (0..k)
                .map(|q| {
                    seg.get(q * frames..(q + 1) * frames)
                        .map(|r| r.iter().map(|&c| i64::from(c)).collect())
                        .ok_or_else(|| {
                            anyhow!("chunk {i} holds {} codes, not {k} × {frames}", seg.len())
                        })
                })
                .collect::<Result<_>>()?;
            chunks.push(rows);
            if let Some(s) = scale {
                if !is_valid_scale(*s) {
                    bail!(
                        "chunk {i} has the scale {s}: the audio's level overflows float32 (samples far outside \
                         [-1, 1]?)"
                    );
                }
                scales.push(*s);
            }
        }
        let scales = if scales.is_empty() {
            Cell::Null
        } else {
            Cell::Floats(scales)
        };
        let seconds = summary.audio_length as f64 / f64::from(self.codec.sample_rate());
        Ok((
            vec![
                Cell::Ints3(chunks),
                scales,
                Cell::Int(summary.audio_length as i64),
            ],
            seconds,
        ))
    }
}

/// `encodec-decode`: a codes file → audio, as `clvp encodec decode` makes it (before the WAV's 16 bits).
pub struct Decode {
    pub codec: Encodec,
}

const DECODE: &[Column] = &[
    // [channels][samples], float32 at the model's rate.
    Column {
        name: "audio_values",
        kind: Kind::Floats2,
    },
    Column {
        name: "sample_rate",
        kind: Kind::Int,
    },
];

impl Job for Decode {
    fn columns(&self) -> &'static [Column] {
        DECODE
    }

    fn run(&mut self, item: &Item) -> Result<(Vec<Cell>, f64)> {
        let path = match &item.codes {
            Some(CodesCell::Path(p)) => p,
            Some(CodesCell::Ids(_)) => {
                bail!("encodec-decode takes `codes` as the path of an .ecdc or .safetensors file")
            }
            None => bail!("the row has no `codes`"),
        };
        regular_file(path, "codes")?;
        let channels = self.codec.channels();
        let mut audio: Vec<Vec<f32>> = vec![Vec::new(); channels];
        let mut sink = |block: &[f32], n: usize| -> Result<()> {
            for (c, out) in audio.iter_mut().enumerate() {
                let Some(part) = block.get(c * n..(c + 1) * n) else {
                    bail!(
                        "a decoded block of {} values for {channels} × {n}",
                        block.len()
                    );
                };
                out.extend_from_slice(part);
            }
            Ok(())
        };
        let codec = &self.codec;
        match read_input_codes(path)? {
            CodesIn::Ecdc(mut file) => {
                let expected: EcdcModel = codec.ecdc_model()?;
                if file.model() != expected {
                    bail!(
                        "{} was written by {}, but the model has the layout of {}",
                        path.display(),
                        file.model().name,
                        expected.name
                    );
                }
                codec.decode_ecdc_stream(&mut file, &mut sink)?;
            }
            CodesIn::Tensors(codes) => {
                let segments = codes.segment_refs();
                codec.decode_stream(
                    &segments,
                    codes.num_codebooks,
                    codes.audio_length,
                    &mut sink,
                )?;
            }
            CodesIn::Jsonl(..) => bail!(
                "{}: JSON-lines codes are for live streams; give .ecdc or .safetensors files",
                path.display()
            ),
        }
        for ch in &audio {
            ensure_finite("the decoded audio", ch, MODEL_CAUSE)?;
        }
        let seconds = audio.first().map_or(0, Vec::len) as f64 / f64::from(codec.sample_rate());
        Ok((
            vec![
                Cell::Floats2(audio),
                Cell::Int(i64::from(codec.sample_rate())),
            ],
            seconds,
        ))
    }
}

/// `features`: audio → `ClvpFeatureExtractor` log-mel features, as `clvp features` makes them.
pub struct FeatureJob {
    pub processor: ClvpProcessor,
}

const FEATURES: &[Column] = &[Column {
    // [feature_size][frames] (80 × 517 with Tortoise's settings).
    name: "input_features",
    kind: Kind::Floats2,
}];

impl Job for FeatureJob {
    fn columns(&self) -> &'static [Column] {
        FEATURES
    }

    fn run(&mut self, item: &Item) -> Result<(Vec<Cell>, f64)> {
        let path = audio_path(item)?;
        let processor = &self.processor;
        let prefix = load_audio_prefix(path, |r| processor.voice_frame_limit(r))
            .with_context(|| format!("reading audio {}", path.display()))?;
        let rate = prefix.audio.sample_rate;
        let seconds = prefix
            .total_frames
            .map_or(prefix.audio.duration_secs(), |f| f as f64 / f64::from(rate));
        let clip = processor
            .prepare(&prefix.audio)
            .with_context(|| format!("preparing {}", path.display()))?;
        let fe = &processor.feature_extractor;
        let features = fe.extract(&[&clip], Some(fe.sampling_rate))?;
        ensure_finite(
            "the log-mel features",
            &features.input_features,
            "the audio's samples are far outside [-1, 1]: normalise the file",
        )?;
        let [_, bins, frames] = features.shape;
        let rows = features
            .input_features
            .chunks(frames.max(1))
            .take(bins)
            .map(<[f32]>::to_vec)
            .collect();
        Ok((vec![Cell::Floats2(rows)], seconds))
    }
}

/// What `score` compares the text with.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Against {
    /// CLVP speech codes (the `codes` column): the similarity of the transcript with the speech — the
    /// dataset filter.
    Codes,
    /// An audio clip (the `audio` column) through HF's `ClvpModelForConditionalGeneration.forward`: the
    /// clip conditions the decoder, whose argmax codes are scored against the text.
    Audio,
}

/// `score`: CLVP's `logits_per_text` of an item's text against its codes or its audio.
pub struct Score {
    pub clvp: Clvp,
    pub against: Against,
}

const SCORE: &[Column] = &[Column {
    name: "logits_per_text",
    kind: Kind::F32,
}];

impl Job for Score {
    fn columns(&self) -> &'static [Column] {
        SCORE
    }

    fn run(&mut self, item: &Item) -> Result<(Vec<Cell>, f64)> {
        let text = text(item)?;
        let logit = match self.against {
            Against::Codes => {
                let ids = match &item.codes {
                    Some(CodesCell::Ids(ids)) => ids,
                    Some(CodesCell::Path(_)) => {
                        bail!("score takes `codes` as a list of CLVP speech codes, not a path")
                    }
                    None => bail!("the row has no `codes`"),
                };
                let ids: Vec<u32> = ids
                    .iter()
                    .map(|&c| {
                        u32::try_from(c).map_err(|_| anyhow!("the code {c} is not a speech code"))
                    })
                    .collect::<Result<_>>()?;
                let scores = self.clvp.score(text, &[ids])?;
                scores.logits_per_text.first().copied()
            }
            Against::Audio => {
                let path = audio_path(item)?;
                let clvp = &self.clvp;
                let clip = clvp
                    .processor
                    .load_voice(path)
                    .with_context(|| format!("reading audio {}", path.display()))?;
                let out = clvp.processor.process(&[text], &[&clip])?;
                let (Some(ids), Some(mask), Some(values), Some(shape)) = (
                    out.input_ids,
                    out.attention_mask,
                    out.input_features,
                    out.features_shape,
                ) else {
                    bail!("the processor gave no ids or features");
                };
                let features = Features {
                    input_features: values,
                    shape,
                    attention_mask: Vec::new(),
                    mask_shape: [0, 0],
                };
                let out = clvp.forward(&ids, Some(&mask), &features)?;
                out.logits_per_text.first().copied()
            }
        };
        let Some(logit) = logit else {
            bail!("the model gave no logit");
        };
        ensure_finite("the CLVP logit", &[logit], MODEL_CAUSE)?;
        Ok((vec![Cell::F32(logit)], 0.0))
    }
}

/// `generate`: text + a voice clip → candidates, scored and ranked, as `clvp generate` makes them.
pub struct Generate {
    pub clvp: Clvp,
    pub config: GenerationConfig,
}

const GENERATE: &[Column] = &[
    // [candidates][tokens]
    Column {
        name: "speech_ids",
        kind: Kind::Ints2,
    },
    // [candidates]
    Column {
        name: "logits_per_text",
        kind: Kind::Floats,
    },
    // Candidate indices, best first.
    Column {
        name: "ranking",
        kind: Kind::Ints,
    },
];

impl Job for Generate {
    fn columns(&self) -> &'static [Column] {
        GENERATE
    }

    fn run(&mut self, item: &Item) -> Result<(Vec<Cell>, f64)> {
        let text = text(item)?;
        let path = audio_path(item)?;
        let clvp = &self.clvp;
        let clip = clvp
            .processor
            .load_voice(path)
            .with_context(|| format!("reading voice {}", path.display()))?;
        let mut voice = clvp.voice_conditioning();
        voice.push(&clip)?;
        let c = crate::generate::checked(clvp.generate_with_voice(
            text,
            voice,
            &self.config,
            &mut |_, _| {},
        ))?;
        let ids = c
            .speech_ids
            .iter()
            .map(|r| r.iter().map(|&x| i64::from(x)).collect())
            .collect();
        let ranking = c.ranking.iter().map(|&(i, _)| i as i64).collect();
        Ok((
            vec![
                Cell::Ints2(ids),
                Cell::Floats(c.logits_per_text),
                Cell::Ints(ranking),
            ],
            0.0,
        ))
    }
}
