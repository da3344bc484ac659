//! The conditioning of several voice clips, averaged as Tortoise averages them, computed a batch of clips at a
//! time: memory holds one batch whatever the number of clips (3 200 `--voice` clips kept every clip and its
//! features before the mean).

use burn::tensor::{Tensor, TensorData};

use crate::model::{Clvp, ClvpError};

/// Clips whose features go through the conditioning encoder together: up to this many clips give exactly the
/// mean of one batch of all of them (`mel_vector_mean`); more are summed batch by batch, then divided (the same
/// mean within float rounding).
pub const VOICE_BATCH: usize = 16;

/// The running mean of voice clips' conditioning vectors (`[1, 1, hidden]`), for [`Clvp::generate_with_voice`].
///
/// ```no_run
/// # fn main() -> Result<(), clvp::ClvpError> {
/// # let device = clvp::device::device("cpu")?;
/// let clvp = clvp::Clvp::from_pretrained("susnato/clvp_dev", &device)?;
/// let mut voice = clvp.voice_conditioning();
/// for path in ["a.wav", "b.wav"] {
///     voice.push(&clvp.processor.load_voice(path)?)?;
/// }
/// let ranked = clvp.generate_with_voice("Hello.", voice, &clvp::GenerationConfig::default(), &mut |_, _| {})?;
/// # Ok(()) }
/// ```
pub struct VoiceConditioning<'a> {
    clvp: &'a Clvp,
    /// Clips not yet through the encoder.
    pending: Vec<Vec<f32>>,
    /// The sum of the vectors of the batches done.
    sum: Option<Tensor<3>>,
    count: usize,
}

impl std::fmt::Debug for VoiceConditioning<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VoiceConditioning")
            .field("clips", &self.count)
            .finish_non_exhaustive()
    }
}

impl Clvp {
    /// An empty running mean of voice clips ([`VoiceConditioning`]).
    pub fn voice_conditioning(&self) -> VoiceConditioning<'_> {
        VoiceConditioning {
            clvp: self,
            pending: Vec::new(),
            sum: None,
            count: 0,
        }
    }
}

impl VoiceConditioning<'_> {
    /// Add a clip (mono, at the feature extractor's rate, as [`crate::ClvpProcessor::load_voice`] gives it).
    pub fn push(&mut self, clip: &[f32]) -> Result<(), ClvpError> {
        if self.pending.len() == VOICE_BATCH {
            let batch = self.vectors()?.sum_dim(0);
            self.sum = Some(match self.sum.take() {
                Some(sum) => sum + batch,
                None => batch,
            });
        }
        self.pending.push(clip.to_vec());
        self.count += 1;
        Ok(())
    }

    /// Clips added.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The conditioning vectors `[clips, 1, hidden]` of the pending clips (which are dropped).
    fn vectors(&mut self) -> Result<Tensor<3>, ClvpError> {
        let fe = &self.clvp.processor.feature_extractor;
        let clips: Vec<&[f32]> = self.pending.iter().map(Vec::as_slice).collect();
        let f = fe
            .extract(&clips, Some(fe.sampling_rate))
            .map_err(crate::ProcessorError::from)?;
        self.pending.clear();
        let feats = Tensor::<3>::from_data(
            TensorData::new(f.input_features, f.shape),
            self.clvp.device(),
        );
        Ok(self.clvp.model.model.conditioning_encoder.mel_vector(feats))
    }

    /// An error without clips.
    pub(crate) fn require_clips(&self) -> Result<(), ClvpError> {
        if self.count == 0 {
            return Err(ClvpError::NoVoice);
        }
        Ok(())
    }

    /// The mean conditioning vector `[1, 1, hidden]` (Tortoise's mean over the clips); an error without clips.
    pub fn finish(mut self) -> Result<Tensor<3>, ClvpError> {
        self.require_clips()?;
        let vectors = self.vectors()?;
        Ok(match self.sum.take() {
            None => vectors.mean_dim(0),
            Some(sum) => (sum + vectors.sum_dim(0)) / self.count as f64,
        })
    }
}

impl VoiceConditioning<'_> {
    /// The mean conditioning as a reusable [`Voice`]; an error without clips.
    pub fn finish_voice(self) -> Result<Voice, ClvpError> {
        let clips = self.count;
        let mean = self.finish()?;
        let vector = mean
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .map_err(|e| ClvpError::readback("the voice", e))?;
        Voice::from_vector(vector, clips)
    }
}

/// A speaker's conditioning, reusable across calls: the mean conditioning vector of one or more clips
/// (Tortoise's `get_conditioning_latents`), computed once by [`Clvp::voice`] and used by
/// [`Clvp::generate_for_voice`]. It saves to a small `.safetensors` (one `conditioning` tensor `[1, 1, hidden]`,
/// f32, and the clip count in the metadata) that a TTS can ship per speaker; a file is bound to the model size
/// it was made with (its hidden size is checked when it is used).
///
/// ```no_run
/// # fn main() -> Result<(), clvp::ClvpError> {
/// # let device = clvp::device::device("cpu")?;
/// let clvp = clvp::Clvp::from_pretrained("susnato/clvp_dev", &device)?;
/// let clips = [clvp.processor.load_voice("a.wav")?, clvp.processor.load_voice("b.wav")?];
/// let voice = clvp.voice(&clips)?;
/// voice.save("speaker.voice.safetensors")?;
/// let voice = clvp::Voice::load("speaker.voice.safetensors")?;
/// let config = clvp.preset(clvp::Preset::UltraFast);
/// for text in ["Hello.", "Good bye."] {
///     let ranked = clvp.generate_for_voice(text, &voice, &config, &mut |_, _| {})?;
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Voice {
    vector: Vec<f32>,
    clips: usize,
}

impl Voice {
    /// The tensor's name in a voice file.
    pub const TENSOR: &'static str = "conditioning";
    /// The metadata key of the clip count.
    pub const CLIPS_KEY: &'static str = "clvp.voice.clips";
    /// The largest voice file [`Voice::load`] reads (a conditioning vector of the full-size model is 4 KiB).
    pub const MAX_FILE_BYTES: u64 = 1 << 20;

    /// A voice from a conditioning vector (`hidden` values) and the number of clips it averages; an error if it
    /// is empty or not finite.
    pub fn from_vector(vector: Vec<f32>, clips: usize) -> Result<Voice, ClvpError> {
        if vector.is_empty() {
            return Err(ClvpError::Input(
                "a voice needs a non-empty conditioning vector".into(),
            ));
        }
        if let Some(i) = vector.iter().position(|v| !v.is_finite()) {
            return Err(ClvpError::Input(format!(
                "the voice's conditioning value {i} is {} (not finite): the clips or the checkpoint are broken",
                vector[i]
            )));
        }
        Ok(Voice { vector, clips })
    }

    /// The conditioning vector (`hidden` values).
    pub fn vector(&self) -> &[f32] {
        &self.vector
    }

    /// The hidden size of the model it was made with.
    pub fn hidden_size(&self) -> usize {
        self.vector.len()
    }

    /// Clips averaged.
    pub fn clips(&self) -> usize {
        self.clips
    }

    /// The voice as `.safetensors` bytes.
    pub fn to_safetensors(&self) -> Result<Vec<u8>, ClvpError> {
        let bytes: Vec<u8> = self.vector.iter().flat_map(|v| v.to_le_bytes()).collect();
        let view = safetensors::tensor::TensorView::new(
            safetensors::Dtype::F32,
            vec![1, 1, self.vector.len()],
            &bytes,
        )
        .map_err(|e| ClvpError::Input(format!("cannot write the voice: {e}")))?;
        let meta = std::collections::HashMap::from([
            (Self::CLIPS_KEY.to_string(), self.clips.to_string()),
            ("format".to_string(), "clvp-voice".to_string()),
        ]);
        safetensors::serialize([(Self::TENSOR, view)], Some(meta))
            .map_err(|e| ClvpError::Input(format!("cannot write the voice: {e}")))
    }

    /// A voice from `.safetensors` bytes ([`Voice::to_safetensors`]); `what` names the source in errors.
    pub fn from_safetensors(bytes: &[u8], what: &str) -> Result<Voice, ClvpError> {
        let bad = |m: String| ClvpError::Input(format!("{what}: not a voice file: {m}"));
        let (_, meta) =
            safetensors::SafeTensors::read_metadata(bytes).map_err(|e| bad(e.to_string()))?;
        let file = safetensors::SafeTensors::deserialize(bytes).map_err(|e| bad(e.to_string()))?;
        let t = file
            .tensor(Self::TENSOR)
            .map_err(|_| bad(format!("no `{}` tensor", Self::TENSOR)))?;
        let shape = t.shape();
        if t.dtype() != safetensors::Dtype::F32
            || shape.len() != 3
            || shape[0] != 1
            || shape[1] != 1
        {
            return Err(bad(format!(
                "`{}` is {:?} {shape:?}, not F32 [1, 1, hidden]",
                Self::TENSOR,
                t.dtype()
            )));
        }
        let vector: Vec<f32> = t
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let clips = meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get(Self::CLIPS_KEY))
            .and_then(|c| c.parse().ok())
            .unwrap_or(1);
        Voice::from_vector(vector, clips).map_err(|e| bad(e.to_string()))
    }

    /// Write the voice to `path` (`.safetensors`).
    pub fn save(&self, path: impl AsRef<std::path::Path>) -> Result<(), ClvpError> {
        let path = path.as_ref();
        let bytes = self.to_safetensors()?;
        std::fs::write(path, bytes)
            .map_err(|e| ClvpError::Input(format!("writing the voice {}: {e}", path.display())))
    }

    /// Read a voice written by [`Voice::save`].
    pub fn load(path: impl AsRef<std::path::Path>) -> Result<Voice, ClvpError> {
        use std::io::Read;
        let path = path.as_ref();
        let what = path.display().to_string();
        let file = std::fs::File::open(path)
            .map_err(|e| ClvpError::Input(format!("reading the voice {what}: {e}")))?;
        let mut bytes = Vec::new();
        file.take(Self::MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| ClvpError::Input(format!("reading the voice {what}: {e}")))?;
        if bytes.len() as u64 > Self::MAX_FILE_BYTES {
            return Err(ClvpError::Input(format!(
                "{what}: larger than a voice file can be ({} bytes at most)",
                Self::MAX_FILE_BYTES
            )));
        }
        Voice::from_safetensors(&bytes, &what)
    }

    /// The vector as the decoder's conditioning `[1, 1, hidden]`, checked against the model's hidden size.
    pub(crate) fn tensor(&self, clvp: &Clvp) -> Result<Tensor<3>, ClvpError> {
        let hidden = clvp.model.config.decoder_config.hidden_size;
        if self.vector.len() != hidden {
            return Err(ClvpError::Input(format!(
                "the voice was made with a model of hidden size {}, this model's is {hidden}",
                self.vector.len()
            )));
        }
        Ok(Tensor::from_data(
            TensorData::new(self.vector.clone(), [1, 1, hidden]),
            clvp.device(),
        ))
    }
}

impl Clvp {
    /// The conditioning of `clips` (mono, at the feature extractor's rate) as a reusable [`Voice`]: their
    /// running mean ([`VoiceConditioning`]), computed once.
    pub fn voice(&self, clips: &[impl AsRef<[f32]>]) -> Result<Voice, ClvpError> {
        let mut v = self.voice_conditioning();
        for c in clips {
            v.push(c.as_ref())?;
        }
        v.finish_voice()
    }
}
