//! The ResNet backbone of DETR, with frozen batch norms (`x · w/√(var + 1e-5) + (b − mean ·
//! w/√(var + 1e-5))`): a 7×7 stride-2 stem, a 3×3 stride-2 max pool, and four stages of
//! bottleneck blocks (1×1, 3×3 carrying the stride, 1×1 expanding by 4, plus a projected
//! shortcut where the shape changes). Weights as timm names them (facebook/detr-resnet-50's
//! checkpoint: `conv1`, `bn1`, `layer1.0.conv1`, `layer1.0.downsample.0`) or as transformers'
//! own ResNet does (`embedder.embedder.convolution`, `encoder.stages.0.layers.0.layer.0`,
//! `shortcut`).

use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;

use super::layers::Conv;

/// A frozen batch norm as a scale and a shift per channel.
fn frozen_batch_norm(vb: VarBuilder, channels: usize) -> candle_core::Result<(Tensor, Tensor)> {
    let w = vb.get(channels, "weight")?;
    let b = vb.get(channels, "bias")?;
    let mean = vb.get(channels, "running_mean")?;
    let var = vb.get(channels, "running_var")?;
    let scale = (w * (var + 1e-5)?.sqrt()?.recip()?)?;
    let shift = (b - (mean * &scale)?)?;
    Ok((scale, shift))
}

/// A convolution followed by its frozen batch norm, the norm folded into the convolution's
/// weights and a bias at load (`conv(x)·s + t = conv_{w·s}(x) + t`; the sums round
/// differently, within 1e-6 relative).
#[derive(Debug, Clone)]
struct ConvBn {
    conv: Conv,
}

impl ConvBn {
    #[allow(clippy::too_many_arguments)]
    fn load(
        conv: VarBuilder,
        bn: VarBuilder,
        inp: usize,
        out: usize,
        kernel: usize,
        stride: usize,
    ) -> candle_core::Result<Self> {
        let w = conv.get((out, inp, kernel, kernel), "weight")?;
        let (scale, shift) = frozen_batch_norm(bn, out)?;
        let weight = w.broadcast_mul(&scale.reshape((out, 1, 1, 1))?)?;
        Ok(Self { conv: Conv::new(weight, Some(shift), stride, kernel / 2)? })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.conv.forward(x)
    }
}

#[derive(Debug, Clone)]
struct Bottleneck {
    reduce: ConvBn,
    spatial: ConvBn,
    expand: ConvBn,
    shortcut: Option<ConvBn>,
}

impl Bottleneck {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let y = self.reduce.forward(x)?.relu()?;
        let y = self.spatial.forward(&y)?.relu()?;
        let y = self.expand.forward(&y)?;
        let skip = match &self.shortcut {
            Some(s) => s.forward(x)?,
            None => x.clone(),
        };
        (y + skip)?.relu()
    }
}

/// Parameter names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Names {
    Timm,
    Transformers,
}

impl Names {
    fn of(vb: &VarBuilder) -> Self {
        if vb.contains_tensor("embedder.embedder.convolution.weight") && !vb.contains_tensor("conv1.weight") {
            Names::Transformers
        } else {
            Names::Timm
        }
    }
}

/// The backbone's shape: stem width and, per stage, its blocks and bottleneck width (the
/// output is 4× that).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResNetShape {
    pub stem: usize,
    pub depths: Vec<usize>,
    pub widths: Vec<usize>,
}

impl ResNetShape {
    /// timm's ResNet-50 and -101, by the name DETR's config gives.
    pub fn timm(name: &str) -> Option<Self> {
        let depths = match name {
            "resnet50" => vec![3, 4, 6, 3],
            "resnet101" => vec![3, 4, 23, 3],
            _ => return None,
        };
        Some(Self { stem: 64, depths, widths: vec![64, 128, 256, 512] })
    }

    /// The shape the weights have: the stem's width, and per stage its blocks (counted until
    /// one is missing) and its first 1×1 convolution's width. This reads any ResNet-style
    /// backbone, including timm's shrunk ones that a config can only name by a local folder.
    pub fn from_weights(vb: &VarBuilder) -> candle_core::Result<Self> {
        let names = Names::of(vb);
        let out_channels = |name: &str| -> candle_core::Result<usize> { Ok(vb.get_unchecked(name)?.dims()[0]) };
        let stem = out_channels(match names {
            Names::Timm => "conv1.weight",
            Names::Transformers => "embedder.embedder.convolution.weight",
        })?;
        let block = |s: usize, i: usize| match names {
            Names::Timm => format!("layer{}.{i}.conv1.weight", s + 1),
            Names::Transformers => format!("encoder.stages.{s}.layers.{i}.layer.0.convolution.weight"),
        };
        let (mut depths, mut widths) = (Vec::new(), Vec::new());
        for s in 0.. {
            if !vb.contains_tensor(&block(s, 0)) {
                break;
            }
            widths.push(out_channels(&block(s, 0))?);
            depths.push((0..).take_while(|&i| vb.contains_tensor(&block(s, i))).count());
        }
        if depths.is_empty() {
            candle_core::bail!("the backbone's weights hold no ResNet stage ({} is missing)", block(0, 0));
        }
        Ok(Self { stem, depths, widths })
    }

    /// Channels of the last stage's output.
    pub fn out_channels(&self) -> usize {
        self.widths.last().copied().unwrap_or(0) * 4
    }
}

#[derive(Debug, Clone)]
pub struct ResNet {
    stem: ConvBn,
    stages: Vec<Vec<Bottleneck>>,
}

impl ResNet {
    /// Loads from `vb` (the backbone's module: timm's `model`, or transformers' ResNet model).
    pub fn load(shape: &ResNetShape, vb: VarBuilder) -> candle_core::Result<Self> {
        let names = Names::of(&vb);
        let stem = match names {
            Names::Timm => ConvBn::load(vb.pp("conv1"), vb.pp("bn1"), 3, shape.stem, 7, 2)?,
            Names::Transformers => {
                let e = vb.pp("embedder.embedder");
                ConvBn::load(e.pp("convolution"), e.pp("normalization"), 3, shape.stem, 7, 2)?
            }
        };
        let mut stages = Vec::with_capacity(shape.depths.len());
        let mut inp = shape.stem;
        for (s, (&depth, &width)) in shape.depths.iter().zip(&shape.widths).enumerate() {
            let out = width * 4;
            let mut blocks = Vec::with_capacity(depth);
            for i in 0..depth {
                let stride = if i == 0 && s > 0 { 2 } else { 1 };
                let block_in = if i == 0 { inp } else { out };
                let needs_shortcut = i == 0 && (block_in != out || stride != 1);
                blocks.push(match names {
                    Names::Timm => {
                        let b = vb.pp(format!("layer{}.{i}", s + 1));
                        Bottleneck {
                            reduce: ConvBn::load(b.pp("conv1"), b.pp("bn1"), block_in, width, 1, 1)?,
                            spatial: ConvBn::load(b.pp("conv2"), b.pp("bn2"), width, width, 3, stride)?,
                            expand: ConvBn::load(b.pp("conv3"), b.pp("bn3"), width, out, 1, 1)?,
                            shortcut: if needs_shortcut {
                                Some(ConvBn::load(
                                    b.pp("downsample.0"),
                                    b.pp("downsample.1"),
                                    block_in,
                                    out,
                                    1,
                                    stride,
                                )?)
                            } else {
                                None
                            },
                        }
                    }
                    Names::Transformers => {
                        let b = vb.pp(format!("encoder.stages.{s}.layers.{i}"));
                        let conv = |j: usize, inp: usize, out: usize, k: usize, st: usize| {
                            let l = b.pp(format!("layer.{j}"));
                            ConvBn::load(l.pp("convolution"), l.pp("normalization"), inp, out, k, st)
                        };
                        Bottleneck {
                            reduce: conv(0, block_in, width, 1, 1)?,
                            spatial: conv(1, width, width, 3, stride)?,
                            expand: conv(2, width, out, 1, 1)?,
                            shortcut: if needs_shortcut {
                                let sc = b.pp("shortcut");
                                Some(ConvBn::load(
                                    sc.pp("convolution"),
                                    sc.pp("normalization"),
                                    block_in,
                                    out,
                                    1,
                                    stride,
                                )?)
                            } else {
                                None
                            },
                        }
                    }
                });
            }
            stages.push(blocks);
            inp = out;
        }
        Ok(Self { stem, stages })
    }

    /// The last stage's feature map: (batch, 4·width, H/32, W/32).
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let x = self.stem.forward(x)?.relu()?;
        let mut x = max_pool_3x3_s2(&x)?;
        for stage in &self.stages {
            for block in stage {
                x = block.forward(&x)?;
            }
        }
        Ok(x)
    }
}

/// 3×3 max pooling, stride 2, padding 1 (padding never wins: it is −∞).
fn max_pool_3x3_s2(x: &Tensor) -> candle_core::Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let neg = Tensor::full(f32::NEG_INFINITY, (b, c, 1, w), x.device())?.to_dtype(x.dtype())?;
    let x = Tensor::cat(&[&neg, x, &neg], 2)?;
    let neg = Tensor::full(f32::NEG_INFINITY, (b, c, h + 2, 1), x.device())?.to_dtype(x.dtype())?;
    let x = Tensor::cat(&[&neg, &x, &neg], 3)?;
    x.max_pool2d_with_stride(3, 2)
}
