//! The one digest type of the log: a SHA-256 hash, written as lower-case hex.
//!
//! Entry hashes, Merkle nodes and roots travel through JSON lines, proofs and
//! checkpoints. A dedicated type keeps their text form canonical (exactly 64
//! lower-case hex digits, nothing else accepted) and stops a hash from being
//! compared with an arbitrary string by mistake.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Sha256Hash(pub [u8; 32]);

/// Why a string is not a hash in our canonical form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HashParseError {
    #[error("hash {text:?} is not 64 lower-case hex digits")]
    NotLowerHex { text: String },
}

impl Sha256Hash {
    /// The `prev` of the first entry: there is no previous entry to point at.
    pub const ZERO: Sha256Hash = Sha256Hash([0; 32]);

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The canonical text form: 64 lower-case hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses exactly 64 lower-case hex digits; upper case is refused so that
    /// every hash has one spelling.
    pub fn from_hex(text: &str) -> Result<Self, HashParseError> {
        parse_lower_hex(text.as_bytes())
            .ok_or_else(|| HashParseError::NotLowerHex { text: text.chars().take(80).collect() })
    }
}

/// Value of each byte as a lower-case hex digit; 0xff for every other byte.
static HEX_VALUES: [u8; 256] = {
    let mut table = [0xff; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

/// Decodes exactly 64 lower-case hex digits; `None` for anything else.
/// Branch-free over the digits: it runs twice per line of every verification.
pub(crate) fn parse_lower_hex(bytes: &[u8]) -> Option<Sha256Hash> {
    let bytes: &[u8; 64] = bytes.try_into().ok()?;
    let mut out = [0u8; 32];
    let mut invalid = 0u8;
    for (slot, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let high = HEX_VALUES[usize::from(pair[0])];
        let low = HEX_VALUES[usize::from(pair[1])];
        // Valid digits are below 16, so any high bit marks a bad one.
        invalid |= high | low;
        *slot = (high << 4) | (low & 0x0f);
    }
    (invalid & 0xf0 == 0).then_some(Sha256Hash(out))
}

/// Appends the 64 lower-case hex digits of `hash` to `out` without allocating.
pub(crate) fn push_hex(out: &mut Vec<u8>, hash: &Sha256Hash) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for byte in hash.0 {
        out.push(DIGITS[usize::from(byte >> 4)]);
        out.push(DIGITS[usize::from(byte & 0x0f)]);
    }
}

impl fmt::Display for Sha256Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Sha256Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Hash({})", self.to_hex())
    }
}

impl FromStr for Sha256Hash {
    type Err = HashParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::from_hex(text)
    }
}

impl Serialize for Sha256Hash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Sha256Hash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Sha256Hash::from_hex(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_refuses_upper_case() {
        let hash = Sha256Hash([0xab; 32]);
        assert_eq!(Sha256Hash::from_hex(&hash.to_hex()).unwrap(), hash);
        assert!(Sha256Hash::from_hex(&hash.to_hex().to_uppercase()).is_err());
        assert!(Sha256Hash::from_hex("ab").is_err());
        for bad in ["g", "G", "A", " ", "\u{0}", "/", ":", "`"] {
            let text = format!("{}{bad}", "0".repeat(63));
            assert!(Sha256Hash::from_hex(&text).is_err(), "{text:?}");
        }
        let mut pushed = Vec::new();
        push_hex(&mut pushed, &hash);
        assert_eq!(pushed, hash.to_hex().as_bytes());
    }

    #[test]
    fn serde_uses_hex_strings() {
        let json = serde_json::to_string(&Sha256Hash::ZERO).unwrap();
        assert_eq!(json, format!("\"{}\"", "0".repeat(64)));
        let back: Sha256Hash = serde_json::from_str(&json).unwrap();
        assert_eq!(back, Sha256Hash::ZERO);
        assert!(serde_json::from_str::<Sha256Hash>("\"xyz\"").is_err());
    }
}
