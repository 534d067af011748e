//! Rotary position embeddings: the settings a config gives (base, scaling, the rotated share of
//! a head) and the cos/sin tables the decoder gathers per position.
//!
//! Read as transformers 5 writes them (`rope_parameters`, per layer type for Gemma 3) and as
//! older configs did (`rope_theta`, `rope_scaling`, `rope_local_base_freq`,
//! `partial_rotary_factor`, `original_max_position_embeddings` at the top).

use candle_core::{DType, Device, Tensor};
use serde_json::Value;

/// One rotary embedding.
#[derive(Debug, Clone, PartialEq)]
pub struct Rope {
    /// `rope_theta`.
    pub theta: f64,
    pub scaling: RopeScaling,
    /// Leading dimensions of each head that rotate (`head_dim · partial_rotary_factor`); the rest
    /// pass through unchanged.
    pub rotary_dim: usize,
}

/// RoPE frequency scaling.
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    None,
    Linear {
        factor: f64,
    },
    /// Llama 3.1's: low and high frequency bands scaled differently.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: f64,
    },
    /// YaRN, as transformers computes it: frequencies blended between interpolated and
    /// extrapolated by a linear ramp over the correction range, and cos/sin scaled by
    /// `attention_factor`.
    Yarn {
        factor: f64,
        beta_fast: f64,
        beta_slow: f64,
        original_max_position_embeddings: f64,
        truncate: bool,
        attention_factor: f64,
    },
    /// Phi-3's LongRoPE: each frequency divided by its own factor, `short_factor` while a
    /// sequence is within `original_max_position_embeddings` and `long_factor` once it is
    /// longer; cos/sin scaled by `attention_factor`.
    LongRope {
        short_factor: Vec<f64>,
        long_factor: Vec<f64>,
        original_max_position_embeddings: usize,
        attention_factor: f64,
    },
}

fn f64_of(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64)
}

fn factors(r: &Value, key: &str, want: usize) -> Result<Vec<f64>, String> {
    let list = r.get(key).and_then(Value::as_array).ok_or_else(|| format!("longrope needs `{key}` (a list)"))?;
    let out: Vec<f64> = list.iter().filter_map(Value::as_f64).collect();
    if out.len() != list.len() || out.len() != want {
        return Err(format!(
            "longrope `{key}` has {} numbers; the rotary dimension needs {want} (one per frequency)",
            list.len()
        ));
    }
    if out.iter().any(|f| *f <= 0.0 || f.is_nan()) {
        return Err(format!("longrope `{key}` holds a factor that is not positive"));
    }
    Ok(out)
}

/// What a family allows beyond plain RoPE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowed {
    /// default, linear, llama3.
    Common,
    /// Also YaRN (gpt-oss).
    Yarn,
    /// Also LongRoPE, which Phi-3 configs also name `su` and `yarn`.
    LongRope,
}

impl Rope {
    /// Reads one rope dictionary (`rope_parameters`, or an old `rope_scaling` with its theta
    /// passed in `theta`). `max_position_embeddings` and `original_max_position_embeddings` are
    /// the config's top-level values, which some scalings fall back on.
    pub fn parse(
        r: Option<&Value>,
        theta: f64,
        rotary_dim: usize,
        max_position_embeddings: usize,
        top_original_max: Option<f64>,
        allowed: Allowed,
    ) -> Result<Self, String> {
        if rotary_dim == 0 || !rotary_dim.is_multiple_of(2) {
            return Err(format!("the rotary dimension {rotary_dim} must be even and positive"));
        }
        let Some(r) = r else {
            return Ok(Self { theta, scaling: RopeScaling::None, rotary_dim });
        };
        let theta = f64_of(r, "rope_theta").unwrap_or(theta);
        let kind = r.get("rope_type").or_else(|| r.get("type")).and_then(Value::as_str).unwrap_or("default");
        let kind = match (kind, allowed) {
            ("su" | "yarn", Allowed::LongRope) => "longrope",
            (k, _) => k,
        };
        let factor = f64_of(r, "factor").unwrap_or(1.0);
        let scaling = match kind {
            "default" => RopeScaling::None,
            "linear" => RopeScaling::Linear { factor },
            "llama3" => RopeScaling::Llama3 {
                factor,
                low_freq_factor: f64_of(r, "low_freq_factor").unwrap_or(1.0),
                high_freq_factor: f64_of(r, "high_freq_factor").unwrap_or(4.0),
                original_max_position_embeddings: f64_of(r, "original_max_position_embeddings").unwrap_or(8192.0),
            },
            "yarn" if allowed == Allowed::Yarn => {
                let original = f64_of(r, "original_max_position_embeddings")
                    .or(top_original_max)
                    .unwrap_or(max_position_embeddings as f64);
                RopeScaling::Yarn {
                    factor,
                    beta_fast: f64_of(r, "beta_fast").filter(|b| *b != 0.0).unwrap_or(32.0),
                    beta_slow: f64_of(r, "beta_slow").filter(|b| *b != 0.0).unwrap_or(1.0),
                    original_max_position_embeddings: original,
                    truncate: r.get("truncate").and_then(Value::as_bool).unwrap_or(true),
                    attention_factor: yarn_attention_factor(r, factor),
                }
            }
            "longrope" if allowed == Allowed::LongRope => {
                let original = f64_of(r, "original_max_position_embeddings")
                    .or(top_original_max)
                    .ok_or("longrope needs `original_max_position_embeddings`")?;
                if original < 1.0 {
                    return Err(format!("longrope's original_max_position_embeddings {original} must be positive"));
                }
                // Phi-3 derives the factor from the two context lengths, not from `factor`.
                let factor = f64_of(r, "factor").unwrap_or(max_position_embeddings as f64 / original);
                let attention_factor = f64_of(r, "attention_factor").unwrap_or(if factor <= 1.0 {
                    1.0
                } else {
                    (1.0 + factor.ln() / original.ln()).sqrt()
                });
                RopeScaling::LongRope {
                    short_factor: factors(r, "short_factor", rotary_dim / 2)?,
                    long_factor: factors(r, "long_factor", rotary_dim / 2)?,
                    original_max_position_embeddings: original as usize,
                    attention_factor,
                }
            }
            other => {
                let mut names = vec!["default", "linear", "llama3"];
                names.extend(match allowed {
                    Allowed::Common => None,
                    Allowed::Yarn => Some("yarn"),
                    Allowed::LongRope => Some("longrope (su)"),
                });
                return Err(format!(
                    "rope_type {other:?} is not supported for this architecture (supported: {})",
                    names.join(", ")
                ));
            }
        };
        if let RopeScaling::Linear { factor } | RopeScaling::Llama3 { factor, .. } | RopeScaling::Yarn { factor, .. } =
            &scaling
            && (*factor <= 0.0 || factor.is_nan())
        {
            return Err(format!("rope scaling factor {factor} must be positive"));
        }
        Ok(Self { theta, scaling, rotary_dim })
    }

    /// Inverse frequencies, with scaling applied; `long` picks LongRoPE's long factors.
    pub fn inv_freq(&self, long: bool) -> Vec<f64> {
        let d = self.rotary_dim as f64;
        let base: Vec<f64> = (0..self.rotary_dim / 2).map(|i| 1.0 / self.theta.powf(2.0 * i as f64 / d)).collect();
        match &self.scaling {
            RopeScaling::None => base,
            RopeScaling::Linear { factor } => base.into_iter().map(|f| f / factor).collect(),
            RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max_position_embeddings } => {
                let low_wavelen = original_max_position_embeddings / low_freq_factor;
                let high_wavelen = original_max_position_embeddings / high_freq_factor;
                base.into_iter()
                    .map(|f| {
                        let wavelen = 2.0 * std::f64::consts::PI / f;
                        if wavelen < high_wavelen {
                            f
                        } else if wavelen > low_wavelen {
                            f / factor
                        } else {
                            let smooth = (original_max_position_embeddings / wavelen - low_freq_factor)
                                / (high_freq_factor - low_freq_factor);
                            (1.0 - smooth) * f / factor + smooth * f
                        }
                    })
                    .collect()
            }
            RopeScaling::Yarn { factor, beta_fast, beta_slow, original_max_position_embeddings, truncate, .. } => {
                // The dimension (of d) at which a frequency makes `rotations` turns over the
                // original context.
                let dim_of = |rotations: f64| {
                    d * (original_max_position_embeddings / (rotations * 2.0 * std::f64::consts::PI)).ln()
                        / (2.0 * self.theta.ln())
                };
                let (mut low, mut high) = (dim_of(*beta_fast), dim_of(*beta_slow));
                if *truncate {
                    (low, high) = (low.floor(), high.ceil());
                }
                let (low, mut high) = (low.max(0.0), high.min(d - 1.0));
                if low == high {
                    high += 0.001;
                }
                base.into_iter()
                    .enumerate()
                    .map(|(i, f)| {
                        let ramp = ((i as f64 - low) / (high - low)).clamp(0.0, 1.0);
                        let extrapolation = 1.0 - ramp;
                        f / factor * (1.0 - extrapolation) + f * extrapolation
                    })
                    .collect()
            }
            RopeScaling::LongRope { short_factor, long_factor, .. } => {
                let ext = if long { long_factor } else { short_factor };
                base.into_iter().zip(ext).map(|(f, e)| f / e).collect()
            }
        }
    }

    /// The factor on cos and sin (YaRN's and LongRoPE's attention factor; 1 otherwise).
    pub fn attention_factor(&self) -> f64 {
        match self.scaling {
            RopeScaling::Yarn { attention_factor, .. } | RopeScaling::LongRope { attention_factor, .. } => {
                attention_factor
            }
            _ => 1.0,
        }
    }

    /// LongRoPE's switch: a sequence longer than this uses the long factors.
    pub fn long_after(&self) -> Option<usize> {
        match self.scaling {
            RopeScaling::LongRope { original_max_position_embeddings, .. } => Some(original_max_position_embeddings),
            _ => None,
        }
    }
}

/// YaRN's cos/sin scale: `attention_factor` when given, else from `mscale`/`mscale_all_dim`,
/// else 0.1 ln(factor) + 1 (1 for factor ≤ 1), as transformers infers it.
fn yarn_attention_factor(r: &Value, factor: f64) -> f64 {
    if let Some(a) = f64_of(r, "attention_factor") {
        return a;
    }
    let mscale = |scale: f64, m: f64| if scale <= 1.0 { 1.0 } else { 0.1 * m * scale.ln() + 1.0 };
    match (f64_of(r, "mscale").filter(|m| *m != 0.0), f64_of(r, "mscale_all_dim").filter(|m| *m != 0.0)) {
        (Some(m), Some(all)) => mscale(factor, m) / mscale(factor, all),
        _ => mscale(factor, 1.0),
    }
}

/// Longest context the rotary tables cover.
pub const MAX_POSITIONS: usize = 131_072;

/// cos and sin of every position × frequency, `(positions, rotary_dim / 2)`; LongRoPE's long
/// tables follow the short ones in the same tensor, at row `positions`.
#[derive(Debug, Clone)]
pub struct RopeTables {
    cos: Tensor,
    sin: Tensor,
    positions: usize,
    long_after: Option<usize>,
    pub rotary_dim: usize,
}

impl RopeTables {
    pub fn new(
        rope: &Rope,
        max_position_embeddings: usize,
        device: &Device,
        dtype: DType,
    ) -> candle_core::Result<Self> {
        // Capped so that a config claiming an absurd context cannot allocate gigabytes; prompts
        // longer than the table are refused by the engine, which checks against the same cap.
        let positions = max_position_embeddings.clamp(1, MAX_POSITIONS);
        let table = |long: bool| -> candle_core::Result<(Tensor, Tensor)> {
            let inv: Vec<f32> = rope.inv_freq(long).into_iter().map(|f| f as f32).collect();
            let inv = Tensor::from_vec(inv, (1, rope.rotary_dim / 2), device)?;
            let t = Tensor::arange(0u32, positions as u32, device)?.to_dtype(DType::F32)?.reshape((positions, 1))?;
            let freqs = t.matmul(&inv)?;
            let factor = rope.attention_factor();
            Ok(((freqs.cos()? * factor)?, (freqs.sin()? * factor)?))
        };
        let (mut cos, mut sin) = table(false)?;
        if rope.long_after().is_some() {
            let (lc, ls) = table(true)?;
            cos = Tensor::cat(&[&cos, &lc], 0)?;
            sin = Tensor::cat(&[&sin, &ls], 0)?;
        }
        Ok(Self {
            cos: cos.to_dtype(dtype)?,
            sin: sin.to_dtype(dtype)?,
            positions,
            long_after: rope.long_after(),
            rotary_dim: rope.rotary_dim,
        })
    }

    /// LongRoPE's switch: a sequence longer than this reads the long tables.
    pub fn long_after(&self) -> Option<usize> {
        self.long_after
    }

    /// cos and sin for `positions` (one row per sequence), `(batch, len, rotary_dim / 2)`. A
    /// sequence whose furthest position this step is past LongRoPE's switch reads the long
    /// tables for all its positions, as transformers does for that sequence alone.
    pub fn gather(&self, positions: &[Vec<u32>], device: &Device) -> candle_core::Result<(Tensor, Tensor)> {
        let (b, t) = (positions.len(), positions.first().map_or(0, Vec::len));
        let mut index = Vec::with_capacity(b * t);
        for row in positions {
            let furthest = row.iter().copied().max().unwrap_or(0) as usize;
            let offset = match self.long_after {
                Some(limit) if furthest + 1 > limit => self.positions as u32,
                _ => 0,
            };
            index.extend(row.iter().map(|p| p + offset));
        }
        let index = Tensor::from_vec(index, b * t, device)?;
        let half = self.rotary_dim / 2;
        Ok((
            self.cos.index_select(&index, 0)?.reshape((b, t, half))?,
            self.sin.index_select(&index, 0)?.reshape((b, t, half))?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llama3_scaling_leaves_high_frequencies_and_divides_low_ones() {
        let r = serde_json::json!({"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192, "rope_type": "llama3"});
        let rope = Rope::parse(Some(&r), 500_000.0, 16, 131_072, None, Allowed::Common).expect("llama3");
        let f = rope.inv_freq(false);
        assert_eq!(f[0], 1.0, "high frequencies are unscaled");
        assert!(
            (f[7] - 1.0 / 500_000f64.powf(14.0 / 16.0) / 8.0).abs() < 1e-15,
            "low frequencies divided by the factor"
        );
    }

    #[test]
    fn longrope_picks_factors_by_length_and_scales_by_the_context_ratio() {
        let r = serde_json::json!({"rope_type": "longrope", "short_factor": [1.0, 2.0], "long_factor": [4.0, 8.0]});
        let rope = Rope::parse(Some(&r), 10_000.0, 4, 64, Some(16.0), Allowed::LongRope).expect("longrope");
        assert_eq!(rope.long_after(), Some(16));
        // factor = 64 / 16 = 4: sqrt(1 + ln 4 / ln 16) = sqrt(1.5).
        assert!((rope.attention_factor() - 1.5f64.sqrt()).abs() < 1e-12);
        let (short, long) = (rope.inv_freq(false), rope.inv_freq(true));
        assert_eq!((short[0], short[1]), (1.0, 1.0 / 100.0 / 2.0));
        assert_eq!((long[0], long[1]), (1.0 / 4.0, 1.0 / 100.0 / 8.0));
        // Phi-3's older spelling.
        let su = serde_json::json!({"type": "su", "short_factor": [1.0, 1.0], "long_factor": [1.0, 1.0]});
        assert!(Rope::parse(Some(&su), 1e4, 4, 64, Some(16.0), Allowed::LongRope).is_ok());
        let bad = serde_json::json!({"rope_type": "longrope", "short_factor": [1.0], "long_factor": [1.0, 1.0]});
        let err = Rope::parse(Some(&bad), 1e4, 4, 64, Some(16.0), Allowed::LongRope).unwrap_err();
        assert!(err.contains("`short_factor` has 1 numbers") && err.contains("needs 2"), "{err}");
        // Elsewhere yarn is refused rather than read as something else.
        let err = Rope::parse(Some(&r), 1e4, 4, 64, None, Allowed::Common).unwrap_err();
        assert!(err.contains("\"longrope\" is not supported"), "{err}");
    }

    #[test]
    fn a_sequence_past_the_switch_reads_the_long_tables() {
        let r = serde_json::json!({"rope_type": "longrope", "short_factor": [1.0, 1.0], "long_factor": [2.0, 2.0],
            "attention_factor": 1.0});
        let rope = Rope::parse(Some(&r), 10_000.0, 4, 64, Some(4.0), Allowed::LongRope).expect("longrope");
        let tables = RopeTables::new(&rope, 64, &Device::Cpu, DType::F32).expect("tables");
        // Row 0 ends at position 3 (length 4: short); row 1 at 4 (length 5: long).
        let (cos, _) = tables.gather(&[vec![1, 2, 3], vec![2, 3, 4]], &Device::Cpu).expect("gather");
        let cos: Vec<Vec<Vec<f32>>> = cos.to_vec3().expect("vec");
        assert!((cos[0][0][0] - 1f32.cos()).abs() < 1e-6, "short: angle = position");
        assert!((cos[1][0][0] - 1f32.cos()).abs() < 1e-6, "long: angle = position / 2 (position 2)");
        assert!((cos[1][2][0] - 2f32.cos()).abs() < 1e-6, "long: position 4");
    }
}
