//! The kernel's random stream: ChaCha20 keyed by the boot seed (`kernel_abi::seed::KERNEL_STREAM`), behind getrandom and
//! `/dev/urandom` (the VMM draws AT_RANDOM from another stream of the same seed). Same seed, same bytes: a
//! run replays with `--seed`.
//!
//! The VMM computes the stream's first bytes ahead (`BootInfo::random`) and the kernel serves them before it
//! runs ChaCha20 itself: one ChaCha20 refill costs milliseconds where kernel code is emulated (nested KVM),
//! and every C library asks for random bytes while starting. The output is exactly that of one
//! `ChaCha20Rng` answering every request in order, whichever part the prefix covers (tested below).
#![forbid(unsafe_code)]

use alloc::boxed::Box;

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

pub struct RandomStream {
    seed: [u8; 32],
    /// Precomputed bytes of the stream, from word 0.
    prefix: &'static [u8],
    /// Bytes of `prefix` used (a multiple of 4).
    used: usize,
    /// Created once the prefix cannot answer a request (boxed: the process state is moved at boot, and a
    /// generator with its block buffer is 350 bytes).
    generator: Option<Box<ChaCha20Rng>>,
}

impl RandomStream {
    /// The stream keyed by `seed`; `prefix` must be its first bytes (any length: a partial word at the end
    /// is ignored).
    pub fn new(seed: [u8; 32], prefix: &'static [u8]) -> Self {
        let whole_words = prefix.len() / 4 * 4;
        Self { seed, prefix: &prefix[..whole_words], used: 0, generator: None }
    }

    /// Fills `buf` with the next bytes. Like `ChaCha20Rng::fill_bytes`, a request consumes whole 32-bit
    /// words: the unused bytes of its last word are skipped.
    pub fn fill_bytes(&mut self, buf: &mut [u8]) {
        let generator = match &mut self.generator {
            Some(generator) => generator,
            None => {
                let consumed = buf.len().div_ceil(4) * 4;
                if let Some(bytes) = self.prefix.get(self.used..self.used + consumed) {
                    buf.copy_from_slice(&bytes[..buf.len()]);
                    self.used += consumed;
                    return;
                }
                // The prefix cannot answer this request: the generator continues at the same word.
                let mut generator = ChaCha20Rng::from_seed(self.seed);
                generator.set_stream(kernel_abi::seed::KERNEL_STREAM);
                generator.set_word_pos((self.used / 4) as u128);
                self.generator.insert(Box::new(generator))
            }
        };
        generator.fill_bytes(buf);
    }
}

#[cfg(test)]
mod tests {
    use super::RandomStream;
    use alloc::vec;
    use alloc::vec::Vec;
    use proptest::prelude::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::{RngCore, SeedableRng};

    fn leaked_prefix(seed: [u8; 32], len: usize) -> &'static [u8] {
        let mut bytes = vec![0; len];
        ChaCha20Rng::from_seed(seed).fill_bytes(&mut bytes);
        Vec::leak(bytes)
    }

    proptest! {
        #[test]
        fn same_bytes_as_one_generator(
            seed in any::<[u8; 32]>(),
            prefix_len in 0usize..300,
            requests in proptest::collection::vec(0usize..100, 0..20),
        ) {
            let mut reference = ChaCha20Rng::from_seed(seed);
            let mut stream = RandomStream::new(seed, leaked_prefix(seed, prefix_len));
            for len in requests {
                let (mut expected, mut got) = (vec![0; len], vec![0; len]);
                reference.fill_bytes(&mut expected);
                stream.fill_bytes(&mut got);
                prop_assert_eq!(got, expected);
            }
        }
    }

    #[test]
    fn serves_the_prefix_as_given() {
        // The prefix is served as given: the VMM and the kernel must agree on the stream.
        let mut stream = RandomStream::new([1; 32], &[7; 16]);
        let mut buf = [0; 8];
        stream.fill_bytes(&mut buf);
        assert_eq!(buf, [7; 8]);
    }
}
