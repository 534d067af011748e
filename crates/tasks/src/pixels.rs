//! Images prepared as transformers' (slow, Pillow-based) image processors prepare them, from
//! the model's `preprocessor_config.json`: decoded and converted to RGB (as optimum-benchmark's
//! `image.convert("RGB")`: alpha dropped, grey replicated), resized by Pillow's own resampling
//! reimplemented bit for bit (a separable convolution whose support grows with the downscale
//! factor, 8-bit fixed point, the two passes in Pillow's order), rescaled by 1/255 in float64 and
//! cast to float32, normalised in float32, and, for DETR, padded at the bottom and right to the
//! largest image of the group with a pixel mask.
//!
//! Where this can differ from Python: JPEG decoding (the `image` crate's decoder against
//! Pillow's libjpeg-turbo may round a pixel by one level); transformers 5's default *fast*
//! processors (torchvision) resize differently again. `docs/tasks.md` has the measured effect.

use image::DynamicImage;
use serde_json::Value;

use super::TaskError;

/// Pillow's resampling filters (`PIL.Image.Resampling`), by the number configs store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    Box,
    Bilinear,
    Hamming,
    Bicubic,
    Lanczos,
}

impl Filter {
    pub fn from_pil(code: u64) -> Result<Self, TaskError> {
        match code {
            1 => Ok(Filter::Lanczos),
            2 => Ok(Filter::Bilinear),
            3 => Ok(Filter::Bicubic),
            4 => Ok(Filter::Box),
            5 => Ok(Filter::Hamming),
            other => Err(TaskError::Processor(format!(
                "resample {other} (Pillow's NEAREST or unknown) is not supported; 1-5 are"
            ))),
        }
    }

    fn support(self) -> f64 {
        match self {
            Filter::Box => 0.5,
            Filter::Bilinear | Filter::Hamming => 1.0,
            Filter::Bicubic => 2.0,
            Filter::Lanczos => 3.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        match self {
            Filter::Box => {
                if x > -0.5 && x <= 0.5 {
                    1.0
                } else {
                    0.0
                }
            }
            Filter::Bilinear => {
                let x = x.abs();
                if x < 1.0 { 1.0 - x } else { 0.0 }
            }
            Filter::Hamming => {
                let x = x.abs();
                if x == 0.0 {
                    1.0
                } else if x >= 1.0 {
                    0.0
                } else {
                    let px = x * std::f64::consts::PI;
                    px.sin() / px * (f64::from(0.54f32) + f64::from(0.46f32) * px.cos())
                }
            }
            Filter::Bicubic => {
                let a = -0.5;
                let x = x.abs();
                if x < 1.0 {
                    ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * a
                } else {
                    0.0
                }
            }
            Filter::Lanczos => {
                let sinc = |x: f64| {
                    if x == 0.0 {
                        1.0
                    } else {
                        let px = x * std::f64::consts::PI;
                        px.sin() / px
                    }
                };
                if (-3.0..3.0).contains(&x) { sinc(x) * sinc(x / 3.0) } else { 0.0 }
            }
        }
    }
}

/// Pillow's fixed-point precision for 8-bit images (`32 - 8 - 2`).
const PRECISION_BITS: u32 = 22;

/// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc`: per output pixel, the first input
/// pixel, how many it reads, and their weights in fixed point.
fn coefficients(in_size: usize, out_size: usize, filter: Filter) -> (Vec<(usize, usize)>, Vec<i32>, usize) {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filter.support() * filterscale;
    let ksize = (support.ceil() as usize) * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut kk = vec![0i32; out_size * ksize];
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        // C casts truncate toward zero, then clamp.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize - xmin;
        let mut k: Vec<f64> = (0..xmax).map(|x| filter.weight((x as f64 + xmin as f64 - center + 0.5) * ss)).collect();
        let ww: f64 = k.iter().sum();
        if ww != 0.0 {
            for w in k.iter_mut() {
                *w /= ww;
            }
        }
        for (x, w) in k.iter().enumerate() {
            let fixed = w * f64::from(1u32 << PRECISION_BITS);
            kk[xx * ksize + x] = if *w < 0.0 { (-0.5 + fixed) as i32 } else { (0.5 + fixed) as i32 };
        }
        bounds.push((xmin, xmax));
    }
    (bounds, kk, ksize)
}

fn clip8(v: i32) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

/// An RGB image, row-major, 3 bytes per pixel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rgb {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl Rgb {
    /// Decodes PNG, JPEG or WebP bytes and converts to RGB as Pillow's `convert("RGB")`.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let img = image::load_from_memory(bytes).map_err(|e| format!("not a readable PNG, JPEG or WebP image: {e}"))?;
        let rgb = match img {
            DynamicImage::ImageRgb8(i) => i,
            other => other.to_rgb8(),
        };
        Ok(Self { width: rgb.width() as usize, height: rgb.height() as usize, data: rgb.into_raw() })
    }

    /// Pillow's `Image.resize((width, height), filter)` for an RGB image: two separable
    /// passes with an 8-bit image between them, so their order changes pixels. Pillow runs the
    /// vertical pass first when the height shrinks by more than twice what the width does
    /// (`ImagingResampleInner`), and skips a pass whose size does not change.
    pub fn resize(&self, width: usize, height: usize, filter: Filter) -> Rgb {
        let shrink_h = self.height as i64 - height as i64;
        let shrink_w = self.width as i64 - width as i64;
        if shrink_h > 0 && shrink_h > 2 * shrink_w {
            self.vertical(height, filter).horizontal(width, filter)
        } else {
            self.horizontal(width, filter).vertical(height, filter)
        }
    }

    fn horizontal(&self, width: usize, filter: Filter) -> Rgb {
        if width == self.width {
            return self.clone();
        }
        let (bounds, kk, ksize) = coefficients(self.width, width, filter);
        let mut out = vec![0u8; self.height * width * 3];
        for y in 0..self.height {
            let row = &self.data[y * self.width * 3..(y + 1) * self.width * 3];
            for (xx, &(xmin, n)) in bounds.iter().enumerate() {
                let k = &kk[xx * ksize..xx * ksize + n];
                for c in 0..3 {
                    let mut ss: i32 = 1 << (PRECISION_BITS - 1);
                    for (x, w) in k.iter().enumerate() {
                        ss += i32::from(row[(x + xmin) * 3 + c]) * w;
                    }
                    out[(y * width + xx) * 3 + c] = clip8(ss);
                }
            }
        }
        Rgb { width, height: self.height, data: out }
    }

    fn vertical(&self, height: usize, filter: Filter) -> Rgb {
        if height == self.height {
            return self.clone();
        }
        let (bounds, kk, ksize) = coefficients(self.height, height, filter);
        let w = self.width;
        let mut out = vec![0u8; height * w * 3];
        for (yy, &(ymin, n)) in bounds.iter().enumerate() {
            let k = &kk[yy * ksize..yy * ksize + n];
            for x in 0..w {
                for c in 0..3 {
                    let mut ss: i32 = 1 << (PRECISION_BITS - 1);
                    for (y, wt) in k.iter().enumerate() {
                        ss += i32::from(self.data[((y + ymin) * w + x) * 3 + c]) * wt;
                    }
                    out[(yy * w + x) * 3 + c] = clip8(ss);
                }
            }
        }
        Rgb { width: w, height, data: out }
    }
}

/// How an image is sized.
#[derive(Debug, Clone, PartialEq)]
pub enum SizeRule {
    /// ViT: exactly this many pixels.
    Fixed { height: usize, width: usize },
    /// DETR: the shorter edge to `shortest`, unless the longer edge would pass `longest`.
    ShortestEdge { shortest: usize, longest: Option<usize> },
}

impl SizeRule {
    /// (height, width) for an image of (height, width), as transformers computes it
    /// (`get_size_with_aspect_ratio` for the shortest-edge rule).
    pub fn target(&self, height: usize, width: usize) -> (usize, usize) {
        match self {
            SizeRule::Fixed { height, width } => (*height, *width),
            SizeRule::ShortestEdge { shortest, longest } => {
                let mut size = *shortest as f64;
                let mut raw = None;
                if let Some(max) = longest {
                    let (lo, hi) = (height.min(width) as f64, height.max(width) as f64);
                    if hi / lo * size > *max as f64 {
                        let r = *max as f64 * lo / hi;
                        raw = Some(r);
                        size = python_round(r);
                    }
                }
                let size_i = size as usize;
                if (height <= width && height == size_i) || (width <= height && width == size_i) {
                    (height, width)
                } else if width < height {
                    let oh = match raw {
                        Some(r) => (r * height as f64 / width as f64) as usize,
                        None => (size * height as f64 / width as f64) as usize,
                    };
                    (oh, size_i)
                } else {
                    let ow = match raw {
                        Some(r) => (r * width as f64 / height as f64) as usize,
                        None => (size * width as f64 / height as f64) as usize,
                    };
                    (size_i, ow)
                }
            }
        }
    }
}

/// Python's `round` (half to even).
fn python_round(x: f64) -> f64 {
    let r = x.round();
    if (x - x.trunc()).abs() == 0.5 && r % 2.0 != 0.0 { r - x.signum() } else { r }
}

/// What `preprocessor_config.json` asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageProcessor {
    pub resize: Option<(SizeRule, Filter)>,
    pub rescale: Option<f64>,
    pub normalize: Option<([f32; 3], [f32; 3])>,
    /// DETR: pad to the group's largest image, with a pixel mask.
    pub pad: bool,
}

fn triple(v: Option<&Value>, default: [f32; 3]) -> Result<[f32; 3], TaskError> {
    match v {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Number(n)) => Ok([n.as_f64().unwrap_or(0.0) as f32; 3]),
        Some(Value::Array(a)) if a.len() == 3 => {
            let mut out = [0f32; 3];
            for (o, x) in out.iter_mut().zip(a) {
                *o = x.as_f64().ok_or_else(|| TaskError::Processor(format!("{x} is not a number")))? as f32;
            }
            Ok(out)
        }
        Some(other) => Err(TaskError::Processor(format!("{other} is not three numbers"))),
    }
}

impl ImageProcessor {
    /// Reads `preprocessor_config.json` (ViTImageProcessor, DetrImageProcessor, and their
    /// `*Fast` spellings, which share the fields).
    pub fn parse(text: &str) -> Result<Self, TaskError> {
        let v: Value = serde_json::from_str(text)
            .map_err(|e| TaskError::Processor(format!("preprocessor_config.json is not JSON: {e}")))?;
        // Older configs (most on the Hub) name a `feature_extractor_type` instead.
        let kind = ["image_processor_type", "feature_extractor_type"]
            .iter()
            .find_map(|k| v.get(*k).and_then(Value::as_str))
            .unwrap_or("");
        let detr = kind.starts_with("Detr");
        if !detr && !kind.starts_with("ViT") && !kind.is_empty() {
            return Err(TaskError::Processor(format!(
                "image processor {kind:?} is not supported (ViTImageProcessor, DetrImageProcessor and their feature extractors are)"
            )));
        }
        let flag = |k: &str| v.get(k).and_then(Value::as_bool).unwrap_or(true);
        let resample = Filter::from_pil(v.get("resample").and_then(Value::as_u64).unwrap_or(2))?;
        let rule = Self::size_rule(&v, detr)?;
        let (mean_default, std_default) =
            if detr { ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]) } else { ([0.5; 3], [0.5; 3]) };
        Ok(Self {
            resize: flag("do_resize").then_some((rule, resample)),
            rescale: flag("do_rescale").then(|| v.get("rescale_factor").and_then(Value::as_f64).unwrap_or(1.0 / 255.0)),
            normalize: if flag("do_normalize") {
                Some((triple(v.get("image_mean"), mean_default)?, triple(v.get("image_std"), std_default)?))
            } else {
                None
            },
            pad: detr && v.get("do_pad").and_then(Value::as_bool).unwrap_or(true),
        })
    }

    /// `size` as transformers' `get_size_dict` reads it: `{height, width}`, `{shortest_edge,
    /// longest_edge}`, or the legacy plain number (a square for ViT, the shortest edge for
    /// DETR, whose legacy `max_size` is the longest).
    fn size_rule(v: &Value, detr: bool) -> Result<SizeRule, TaskError> {
        let edge = |x: &Value, what: &str| {
            x.as_u64().filter(|&n| n > 0).map(|n| n as usize).ok_or_else(|| {
                TaskError::Processor(format!("preprocessor_config.json: {what} = {x} must be a positive whole number"))
            })
        };
        let legacy_max = match v.get("max_size").filter(|m| !m.is_null()) {
            Some(m) => Some(edge(m, "max_size")?),
            None => None,
        };
        let size = v.get("size").filter(|s| !s.is_null());
        Ok(match size {
            None if detr => SizeRule::ShortestEdge { shortest: 800, longest: Some(legacy_max.unwrap_or(1333)) },
            None => SizeRule::Fixed { height: 224, width: 224 },
            Some(n @ Value::Number(_)) if detr => {
                SizeRule::ShortestEdge { shortest: edge(n, "size")?, longest: legacy_max }
            }
            Some(n @ Value::Number(_)) => {
                let side = edge(n, "size")?;
                SizeRule::Fixed { height: side, width: side }
            }
            Some(Value::Object(o)) => match (o.get("height"), o.get("width"), o.get("shortest_edge")) {
                (Some(h), Some(w), _) => {
                    SizeRule::Fixed { height: edge(h, "size.height")?, width: edge(w, "size.width")? }
                }
                (_, _, Some(s)) => SizeRule::ShortestEdge {
                    shortest: edge(s, "size.shortest_edge")?,
                    longest: match o.get("longest_edge").filter(|m| !m.is_null()) {
                        Some(m) => Some(edge(m, "size.longest_edge")?),
                        None => legacy_max,
                    },
                },
                _ => {
                    return Err(TaskError::Processor(format!(
                        "preprocessor_config.json: size = {} names neither height and width nor shortest_edge",
                        Value::Object(o.clone())
                    )));
                }
            },
            Some(other) => {
                return Err(TaskError::Processor(format!(
                    "preprocessor_config.json: size = {other} must be a number or an object"
                )));
            }
        })
    }

    /// One image as (3, height, width) float32, channels first.
    pub fn pixels(&self, img: &Rgb) -> (Vec<f32>, usize, usize) {
        let img = match &self.resize {
            Some((rule, filter)) => {
                let (h, w) = rule.target(img.height, img.width);
                img.resize(w, h, *filter)
            }
            None => img.clone(),
        };
        let (h, w) = (img.height, img.width);
        let mut out = vec![0f32; 3 * h * w];
        for c in 0..3 {
            for i in 0..h * w {
                let raw = f64::from(img.data[i * 3 + c]);
                // transformers: float64 × factor, then float32; normalise in float32.
                let mut x = match self.rescale {
                    Some(f) => (raw * f) as f32,
                    None => raw as f32,
                };
                if let Some((mean, std)) = &self.normalize {
                    x = (x - mean[c]) / std[c];
                }
                out[c * h * w + i] = x;
            }
        }
        (out, h, w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pillow_coefficients_sum_to_one_in_fixed_point() {
        for (inp, out) in [(97, 32), (40, 224), (320, 64), (17, 17)] {
            let (bounds, kk, ks) = coefficients(inp, out, Filter::Bilinear);
            for (i, (_, n)) in bounds.iter().enumerate() {
                let s: i64 = kk[i * ks..i * ks + n].iter().map(|&k| i64::from(k)).sum();
                assert!((s - (1 << PRECISION_BITS)).abs() <= *n as i64, "{inp}->{out} pixel {i}: {s}");
            }
        }
    }

    #[test]
    fn a_flat_image_stays_flat_and_sizes_follow_transformers_rules() {
        let flat = Rgb { width: 9, height: 5, data: vec![77; 9 * 5 * 3] };
        let r = flat.resize(4, 7, Filter::Bicubic);
        assert_eq!((r.width, r.height), (4, 7));
        assert!(r.data.iter().all(|&v| v == 77));
        let rule = SizeRule::ShortestEdge { shortest: 800, longest: Some(1333) };
        assert_eq!(rule.target(480, 640), (800, 1066));
        assert_eq!(rule.target(200, 1000), (267, 1333), "the longer edge caps the size");
        assert_eq!(rule.target(800, 900), (800, 900), "already the size");
    }
}
