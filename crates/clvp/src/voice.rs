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
            return Err(ClvpError::Input(
                "no voice clip given: at least one is needed for the conditioning".into(),
            ));
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
