//! Statistics of repeated measures, for figures people compare: a sample's mean with its
//! standard deviation and a 95 % Student's t interval, and the difference of two samples' means
//! with Welch's interval (unequal variances, Welch–Satterthwaite degrees of freedom).
//!
//! The t quantile is computed, not looked up: Welch's degrees of freedom are not whole numbers.
//! It inverts the t distribution's CDF, written with the regularized incomplete beta function
//! (continued fraction) and a Lanczos log-gamma; the tests check it against SciPy.

use serde::{Deserialize, Serialize};

/// The confidence level of every interval here.
pub const CONFIDENCE: f64 = 0.95;

/// What a sample of repeated measures says.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Describe {
    pub n: usize,
    pub mean: f64,
    /// Sample standard deviation (n − 1); none for one measure.
    pub sd: Option<f64>,
    /// 95 % interval of the mean (Student's t, n − 1 degrees of freedom); none for one measure.
    pub ci95: Option<[f64; 2]>,
    pub min: f64,
    pub max: f64,
}

/// Describes `values`; none when there are none or any is not finite.
pub fn describe(values: &[f64]) -> Option<Describe> {
    if values.is_empty() || values.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let n = values.len();
    let mean = values.iter().sum::<f64>() / n as f64;
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (sd, ci95) = if n > 1 {
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let sd = var.sqrt();
        let half = t_quantile(0.5 + CONFIDENCE / 2.0, (n - 1) as f64) * sd / (n as f64).sqrt();
        (Some(sd), Some([mean - half, mean + half]))
    } else {
        (None, None)
    };
    Some(Describe { n, mean, sd, ci95, min, max })
}

/// The difference of two means, `a − b`, with Welch's 95 % interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Difference {
    pub diff: f64,
    pub ci95: [f64; 2],
    /// Welch–Satterthwaite degrees of freedom.
    pub df: f64,
    /// Welch's t statistic; none when both samples have no spread.
    pub t: Option<f64>,
}

impl Difference {
    /// Whether the interval excludes zero: a difference beyond noise at 95 %.
    pub fn beyond_noise(&self) -> bool {
        self.ci95[0] > 0.0 || self.ci95[1] < 0.0
    }
}

/// Why an interval cannot be given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntervalError {
    /// A sample with fewer than two measures has no spread to estimate.
    TooFewMeasures { which: &'static str, n: usize },
}

impl std::fmt::Display for IntervalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IntervalError::TooFewMeasures { which, n } => write!(
                f,
                "{which} has {n} measure{}: an interval needs at least 2 (set scenario.iterations, or repeat the run)",
                if *n == 1 { "" } else { "s" }
            ),
        }
    }
}

/// Welch's difference of the means of `a` and `b`.
pub fn welch(a: &Describe, b: &Describe) -> Result<Difference, IntervalError> {
    let (Some(sa), Some(sb)) = (a.sd, b.sd) else {
        let (which, n) = if a.sd.is_none() { ("the first", a.n) } else { ("the second", b.n) };
        return Err(IntervalError::TooFewMeasures { which, n });
    };
    let (va, vb) = (sa * sa / a.n as f64, sb * sb / b.n as f64);
    let diff = a.mean - b.mean;
    let se = (va + vb).sqrt();
    if se == 0.0 {
        // No spread at all: the difference is exact.
        return Ok(Difference { diff, ci95: [diff, diff], df: f64::INFINITY, t: None });
    }
    let df = (va + vb).powi(2) / (va * va / (a.n - 1) as f64 + vb * vb / (b.n - 1) as f64);
    let half = t_quantile(0.5 + CONFIDENCE / 2.0, df) * se;
    Ok(Difference { diff, ci95: [diff - half, diff + half], df, t: Some(diff / se) })
}

/// Degrees of freedom beyond which t is taken as t(1e6): its 97.5 % quantile is then within
/// 3e-6 (relative) of the normal's, and the incomplete beta stays well conditioned.
const MAX_DF: f64 = 1e6;

/// The `p` quantile of Student's t with `df` degrees of freedom (`df` > 0, not necessarily
/// whole), by bisection on the CDF.
pub fn t_quantile(p: f64, df: f64) -> f64 {
    assert!(p > 0.0 && p < 1.0 && df > 0.0, "t_quantile({p}, {df})");
    let df = df.min(MAX_DF);
    if p < 0.5 {
        return -t_quantile(1.0 - p, df);
    }
    let (mut lo, mut hi) = (0.0_f64, 1.0_f64);
    while t_cdf(hi, df) < p {
        hi *= 2.0;
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if t_cdf(mid, df) < p {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo <= 1e-13 * hi.max(1.0) {
            break;
        }
    }
    0.5 * (lo + hi)
}

/// Student's t CDF.
pub fn t_cdf(t: f64, df: f64) -> f64 {
    let x = df / (df + t * t);
    let tail = 0.5 * incomplete_beta(x, df / 2.0, 0.5);
    if t >= 0.0 { 1.0 - tail } else { tail }
}

/// Regularized incomplete beta I_x(a, b).
pub fn incomplete_beta(x: f64, a: f64, b: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    let front = ln_front.exp();
    // The continued fraction converges fast for x < (a + 1) / (a + b + 2); use symmetry beyond.
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_fraction(x, a, b) / a
    } else {
        1.0 - front * beta_fraction(1.0 - x, b, a) / b
    }
}

/// The incomplete beta continued fraction, by the modified Lentz method.
fn beta_fraction(x: f64, a: f64, b: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let mut c = 1.0;
    let mut d = 1.0 - (a + b) * x / (a + 1.0);
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..500 {
        let m = m as f64;
        // Even step.
        let num = m * (b - m) * x / ((a + 2.0 * m - 1.0) * (a + 2.0 * m));
        d = 1.0 + num * d;
        d = if d.abs() < TINY { 1.0 / TINY } else { 1.0 / d };
        c = 1.0 + num / c;
        if c.abs() < TINY {
            c = TINY;
        }
        h *= d * c;
        // Odd step.
        let num = -(a + m) * (a + b + m) * x / ((a + 2.0 * m) * (a + 2.0 * m + 1.0));
        d = 1.0 + num * d;
        d = if d.abs() < TINY { 1.0 / TINY } else { 1.0 / d };
        c = 1.0 + num / c;
        if c.abs() < TINY {
            c = TINY;
        }
        let step = d * c;
        h *= step;
        if (step - 1.0).abs() < 1e-15 {
            break;
        }
    }
    h
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, nine terms; relative error below 1e-14).
pub fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const COEF: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x)Γ(1 − x) = π / sin(πx).
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut sum = COEF[0];
    for (i, c) in COEF.iter().enumerate().skip(1) {
        sum += c / (x + i as f64);
    }
    let t = x + G + 0.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

#[cfg(test)]
mod tests;
