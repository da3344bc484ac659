//! EnCodec's conveniences in one place: the bandwidths a checkpoint offers, and Meta's `.ecdc` container read
//! and written through the codec (one call each, instead of four across two crates).

use std::io::{Read, Write};
use std::path::Path;

use encodec_codec::ecdc::{read_ecdc, write_ecdc};

use super::{AudioCodes, CodecError, Encodec};

impl Encodec {
    /// The bandwidths (kbps) this checkpoint encodes at (`target_bandwidths`), smallest first.
    pub fn bandwidths(&self) -> &[f64] {
        &self.model.config.target_bandwidths
    }

    /// Write `codes` as an `.ecdc` stream (byte for byte what Meta's `encodec` writes for them).
    pub fn write_ecdc(&self, codes: &AudioCodes, w: &mut impl Write) -> Result<(), CodecError> {
        let file = codes.to_ecdc(&self.ecdc_model()?)?;
        write_ecdc(w, &file)?;
        Ok(())
    }

    /// Read codes from an `.ecdc` stream written for this checkpoint's layout; a file of the other model is
    /// an error that names both.
    pub fn read_ecdc(&self, r: &mut impl Read) -> Result<AudioCodes, CodecError> {
        let file = read_ecdc(r)?;
        let mine = self.ecdc_model()?;
        if file.model != mine.name {
            return Err(CodecError::Codes(format!(
                "the .ecdc file holds {} codes; this checkpoint is {}",
                file.model, mine.name
            )));
        }
        Ok(AudioCodes::from_ecdc(&file))
    }

    /// [`Encodec::write_ecdc`] to a file at `path` (created or replaced).
    pub fn save_ecdc(&self, codes: &AudioCodes, path: impl AsRef<Path>) -> Result<(), CodecError> {
        let path = path.as_ref();
        let mut bytes = Vec::new();
        self.write_ecdc(codes, &mut bytes)?;
        std::fs::write(path, bytes)
            .map_err(|e| CodecError::Codes(format!("writing {}: {e}", path.display())))
    }

    /// [`Encodec::read_ecdc`] from the file at `path`.
    pub fn load_ecdc(&self, path: impl AsRef<Path>) -> Result<AudioCodes, CodecError> {
        let path = path.as_ref();
        let file = std::fs::File::open(path)
            .map_err(|e| CodecError::Codes(format!("reading {}: {e}", path.display())))?;
        self.read_ecdc(&mut std::io::BufReader::new(file))
    }
}
