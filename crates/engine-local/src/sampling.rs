//! Choosing the next token: greedy (argmax, first index on ties, as torch does), or seeded
//! sampling with temperature and top-p. Each prompt has its own random stream, seeded by the
//! seed and the prompt's text, so its tokens do not depend on the batch it is in.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use energy_star_engine::GenerationParams;

pub struct Sampler {
    greedy: bool,
    temperature: f32,
    top_p: f32,
    top_k: Option<usize>,
    rng: StdRng,
}

/// FNV-1a, for a stable per-prompt seed.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

impl Sampler {
    pub fn new(p: &GenerationParams, prompt: &str) -> Self {
        let seed = p.seed.unwrap_or(0) ^ fnv(prompt);
        Self {
            greedy: !p.do_sample || p.temperature <= 0.0,
            temperature: p.temperature.max(1e-6),
            top_p: p.top_p.clamp(0.0, 1.0),
            top_k: p.top_k.filter(|k| *k > 0).map(|k| k as usize),
            rng: StdRng::seed_from_u64(seed),
        }
    }

    pub fn pick(&mut self, logits: &[f32]) -> u32 {
        if self.greedy {
            return argmax(logits);
        }
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut probs: Vec<(usize, f64)> = logits
            .iter()
            .enumerate()
            .map(|(i, &l)| (i, f64::from((l - max) / self.temperature).exp()))
            .filter(|(_, p)| *p > 0.0)
            .collect();
        probs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        // transformers' order: temperature, then top-k, then top-p over what top-k kept.
        if let Some(k) = self.top_k {
            probs.truncate(k);
        }
        let total: f64 = probs.iter().map(|p| p.1).sum();
        let mut kept = Vec::new();
        let mut cum = 0.0;
        for (i, p) in probs {
            kept.push((i, p));
            cum += p / total;
            if cum >= f64::from(self.top_p) {
                break;
            }
        }
        let kept_total: f64 = kept.iter().map(|p| p.1).sum();
        let mut r = self.rng.random::<f64>() * kept_total;
        for (i, p) in &kept {
            r -= p;
            if r <= 0.0 {
                return *i as u32;
            }
        }
        kept.last().map(|k| k.0 as u32).unwrap_or(0)
    }
}

pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0usize;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_first_maximum() {
        assert_eq!(argmax(&[0.0, 2.0, 2.0, 1.0]), 1);
    }

    #[test]
    fn sampling_is_seeded_per_prompt_and_respects_top_p() {
        let p = GenerationParams { do_sample: true, temperature: 1.0, top_p: 1.0, seed: Some(7), ..Default::default() };
        let logits = [1.0f32, 1.2, 0.8, 1.1];
        let a: Vec<u32> = {
            let mut s = Sampler::new(&p, "x");
            (0..50).map(|_| s.pick(&logits)).collect()
        };
        let b: Vec<u32> = {
            let mut s = Sampler::new(&p, "x");
            (0..50).map(|_| s.pick(&logits)).collect()
        };
        assert_eq!(a, b, "same seed and prompt, same tokens");
        assert!(a.iter().collect::<std::collections::BTreeSet<_>>().len() > 1, "it samples");
        let narrow = GenerationParams { top_p: 0.01, ..p };
        let mut s = Sampler::new(&narrow, "x");
        assert!((0..50).all(|_| s.pick(&logits) == 1), "top-p 0.01 keeps only the best token");
    }

    #[test]
    fn top_k_keeps_the_k_most_probable_before_top_p() {
        let logits = [1.0f32, 1.2, 0.8, 1.1, 0.9];
        let p = GenerationParams { do_sample: true, top_k: Some(2), seed: Some(3), ..Default::default() };
        let mut s = Sampler::new(&p, "x");
        let seen: std::collections::BTreeSet<u32> = (0..200).map(|_| s.pick(&logits)).collect();
        assert_eq!(seen, [1, 3].into_iter().collect(), "only the two most probable");
        // Top-p applies to what top-k kept: of the two, 1 holds more than 50 %.
        let both = GenerationParams { top_p: 0.5, ..p };
        let mut s = Sampler::new(&both, "x");
        assert!((0..50).all(|_| s.pick(&logits) == 1));
    }
}
