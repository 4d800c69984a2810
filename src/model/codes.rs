//! The code file (`cantor codec encode` / `decode`): a small header then u16 codes, frame-major.
//!
//! Layout (little endian): b"CANTORC1", sample_rate u32, hop u32, levels u32, codebook_size u32,
//! frames u32, then frames * levels u16.

use super::codec::CodecConfig;

const MAGIC: &[u8; 8] = b"CANTORC1";
const HEADER: usize = 8 + 5 * 4;

#[derive(Debug, Clone, PartialEq)]
pub struct CodeFile {
    pub sample_rate: u32,
    pub hop: u32,
    pub levels: u32,
    pub codebook_size: u32,
    /// frames * levels codes, frame-major.
    pub codes: Vec<u16>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CodeFileError {
    #[error("not a Cantor code file (bad magic)")]
    BadMagic,
    #[error("code file truncated: expected {expected} bytes, found {found}")]
    Truncated { expected: usize, found: usize },
    #[error("code {code} at frame {frame} is out of range for codebooks of {size}")]
    OutOfRange { code: u16, frame: usize, size: u32 },
    #[error("the code file was made for a codec with {found}; this codec has {expected}")]
    Mismatch { expected: String, found: String },
}

impl CodeFile {
    pub fn frames(&self) -> usize {
        self.codes.len() / self.levels.max(1) as usize
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + 2 * self.codes.len());
        out.extend_from_slice(MAGIC);
        for v in [self.sample_rate, self.hop, self.levels, self.codebook_size, self.frames() as u32] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for c in &self.codes {
            out.extend_from_slice(&c.to_le_bytes());
        }
        out
    }

    pub fn from_bytes(b: &[u8]) -> Result<Self, CodeFileError> {
        if b.len() < 8 || &b[..8] != MAGIC {
            return Err(CodeFileError::BadMagic);
        }
        if b.len() < HEADER {
            return Err(CodeFileError::Truncated { expected: HEADER, found: b.len() });
        }
        let u = |i: usize| u32::from_le_bytes(b[8 + 4 * i..12 + 4 * i].try_into().expect("4 bytes"));
        let (sample_rate, hop, levels, codebook_size, frames) = (u(0), u(1), u(2), u(3), u(4));
        let expected = HEADER + 2 * frames as usize * levels as usize;
        if b.len() != expected {
            return Err(CodeFileError::Truncated { expected, found: b.len() });
        }
        let codes: Vec<u16> = b[HEADER..].chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
        if let Some((i, &code)) = codes.iter().enumerate().find(|(_, &c)| c as u32 >= codebook_size) {
            return Err(CodeFileError::OutOfRange { code, frame: i / levels.max(1) as usize, size: codebook_size });
        }
        Ok(Self { sample_rate, hop, levels, codebook_size, codes })
    }

    /// Check the file matches the codec that will decode it.
    pub fn check_matches(&self, cfg: &CodecConfig) -> Result<(), CodeFileError> {
        let desc = |sr: u32, hop: u32, l: u32, k: u32| format!("{sr} Hz, hop {hop}, {l} x {k} codes");
        let expected = desc(cfg.sample_rate, cfg.hop() as u32, cfg.n_codebooks as u32, cfg.codebook_size as u32);
        let found = desc(self.sample_rate, self.hop, self.levels, self.codebook_size);
        if expected != found {
            return Err(CodeFileError::Mismatch { expected, found });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let f = CodeFile { sample_rate: 24000, hop: 320, levels: 2, codebook_size: 16, codes: vec![1, 2, 3, 15] };
        let b = f.to_bytes();
        assert_eq!(CodeFile::from_bytes(&b).unwrap(), f);
        assert_eq!(CodeFile::from_bytes(b"nope"), Err(CodeFileError::BadMagic));
        assert!(matches!(CodeFile::from_bytes(&b[..b.len() - 1]), Err(CodeFileError::Truncated { .. })));
        let mut bad = b.clone();
        let n = bad.len();
        bad[n - 2] = 99;
        assert!(matches!(CodeFile::from_bytes(&bad), Err(CodeFileError::OutOfRange { code: 99, frame: 1, .. })));
        assert!(f.check_matches(&CodecConfig::default()).is_err());
    }
}
