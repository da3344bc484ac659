//! The `.ecdc` reader on arbitrary bytes: an error or a file, never a panic; a file read back is written again.
#![no_main]

use encodec_codec::ecdc::{read_ecdc, write_ecdc};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(file) = read_ecdc(&mut std::io::Cursor::new(data)) {
        let mut out = Vec::new();
        let _ = write_ecdc(&mut out, &file);
    }
});
