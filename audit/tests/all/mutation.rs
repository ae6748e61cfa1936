//! A deterministic mutation pass over the two parsers of attacker-controlled
//! text, checking what the fuzz targets check (`fuzz/fuzz_targets/audit_*.rs`)
//! on every CI run: no panic, and whatever is accepted prints back byte for
//! byte.

use audit::{Entry, SignedCheckpoint};
use serde_json::json;

use crate::support::{Fixture, forge_line, signer};

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING: &[u8] = b"{}[]\",:\\0123456789-.eEtfnu\x00\x1f\x7f\xc3\xa9\xff ";

fn mutate(rng: &mut XorShift, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(3) {
        let at = rng.below(out.len() + 1);
        let byte = INTERESTING[rng.below(INTERESTING.len())];
        match rng.below(4) {
            0 if at < out.len() => out[at] = byte,
            1 => out.insert(at, byte),
            2 if at < out.len() => {
                out.remove(at);
            }
            _ if at < out.len() => out[at] ^= 1 << rng.below(8),
            _ => out.push(byte),
        }
    }
    out
}

#[test]
fn entry_parser_survives_mutations() {
    let f = Fixture::with_entries(3);
    let mut seeds = f.lines();
    seeds.push(
        forge_line(
            7,
            audit::Sha256Hash([0xab; 32]),
            json!({"nested": {"a": [1, -2, 18446744073709551615u64, null, true], "b": "x\u{1}\"\\é"}, "\n": {}}),
        )
        .0,
    );
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut accepted = 0;
    for round in 0..20_000 {
        let seed = &seeds[round % seeds.len()];
        let candidate = mutate(&mut rng, seed);
        if let Ok(entry) = Entry::from_line(&candidate) {
            accepted += 1;
            assert_eq!(entry.to_line().unwrap(), candidate, "accepted a non-canonical line");
            let generic = signer::canonical::to_canonical_bytes(&entry).unwrap();
            assert_eq!(generic, candidate);
        }
    }
    // Some mutations (inside strings, say) stay valid: the round trip was
    // really exercised.
    assert!(accepted > 100, "only {accepted} mutants accepted");
}

#[test]
fn checkpoint_parser_survives_mutations() {
    let seed = signer(1).sign(123_456, audit::Sha256Hash([0x42; 32])).to_signed_note();
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    let mut accepted = 0;
    for _ in 0..20_000 {
        let candidate = mutate(&mut rng, seed.as_bytes());
        let Ok(text) = std::str::from_utf8(&candidate) else { continue };
        if let Ok(parsed) = SignedCheckpoint::parse(text) {
            accepted += 1;
            assert_eq!(parsed.to_signed_note(), text, "accepted a non-canonical checkpoint");
            let _ = parsed.verify(&signer(1).verifying_key());
        }
    }
    assert!(accepted > 100, "only {accepted} mutants accepted");
}
