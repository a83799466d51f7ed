//! Randomness, an input like time.
//!
//! Idempotency keys must be unguessable and unique across every session of every client, so in a
//! browser they come straight from `crypto.getRandomValues` ([`Randomness::Source`]): 122 random bits
//! per UUID v4, not the 64 of a seeded generator. Tests and the simulator pass a seed instead
//! ([`Randomness::Seeded`]), which makes every run reproducible.
//!
//! Jitter needs no such strength: it is drawn from a small PRNG seeded once from the same input.

use std::fmt;

/// A source of random bytes the runtime supplies (in a browser: `crypto.getRandomValues`).
pub trait Entropy {
    /// Fills `bytes` with random bytes.
    fn fill(&mut self, bytes: &mut [u8]);
}

/// Where the engine's randomness comes from.
pub enum Randomness {
    /// A deterministic generator: the same seed gives the same ids, keys and jitter. For tests and
    /// simulations; a real client must use [`Randomness::Source`].
    Seeded(u64),
    /// Real randomness from the runtime.
    Source(Box<dyn Entropy>),
}

impl From<u64> for Randomness {
    fn from(seed: u64) -> Self {
        Randomness::Seeded(seed)
    }
}

impl fmt::Debug for Randomness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Randomness::Seeded(seed) => write!(f, "Seeded({seed})"),
            Randomness::Source(_) => f.write_str("Source"),
        }
    }
}

/// The engine's two generators: one for ids and keys, one for jitter.
pub(crate) struct Random {
    keys: Keys,
    /// Jitter and other draws that need no secrecy.
    pub(crate) jitter: fastrand::Rng,
}

enum Keys {
    Seeded(fastrand::Rng),
    Source(Box<dyn Entropy>),
}

impl Random {
    pub(crate) fn new(randomness: Randomness) -> Random {
        match randomness {
            Randomness::Seeded(seed) => Random {
                keys: Keys::Seeded(fastrand::Rng::with_seed(seed)),
                // A different stream, so drawing jitter never shifts the keys a seed produces.
                jitter: fastrand::Rng::with_seed(seed ^ 0x5DEE_CE66_D1CE_4E5B),
            },
            Randomness::Source(mut source) => {
                let mut seed = [0u8; 8];
                source.fill(&mut seed);
                Random {
                    keys: Keys::Source(source),
                    jitter: fastrand::Rng::with_seed(u64::from_le_bytes(seed)),
                }
            }
        }
    }

    /// Random bytes for a UUID.
    pub(crate) fn fill(&mut self, bytes: &mut [u8]) {
        match &mut self.keys {
            Keys::Seeded(rng) => rng.fill(bytes),
            Keys::Source(source) => source.fill(bytes),
        }
    }
}

impl fmt::Debug for Random {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.keys {
            Keys::Seeded(_) => "Random(seeded)",
            Keys::Source(_) => "Random(source)",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counter(u8);

    impl Entropy for Counter {
        fn fill(&mut self, bytes: &mut [u8]) {
            for b in bytes {
                *b = self.0;
                self.0 = self.0.wrapping_add(1);
            }
        }
    }

    #[test]
    fn key_bytes_come_from_the_source_itself() {
        let mut random = Random::new(Randomness::Source(Box::new(Counter(0))));
        let mut bytes = [0u8; 4];
        random.fill(&mut bytes);
        // The first 8 bytes seeded the jitter; the key bytes are the source's next ones, unmixed.
        assert_eq!(bytes, [8, 9, 10, 11]);
    }

    #[test]
    fn a_seed_reproduces_its_keys() {
        let draw = |seed| {
            let mut r = Random::new(Randomness::Seeded(seed));
            let mut b = [0u8; 16];
            r.fill(&mut b);
            b
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }
}
