//! Mixtures of experts: a router picks each token's experts and weighs them, each expert is a
//! gated MLP, and the weighted outputs are summed. gpt-oss routes the top-k logits through a
//! softmax and runs SwiGLU experts with biases whose gate and up projections are interleaved in
//! one matrix and clamped (stored as MXFP4 in its checkpoints); Qwen3-MoE and Mixtral softmax
//! over all experts, keep the k most probable (renormalised) and run plain SiLU-gated experts.

use candle_core::{D, DType, Device, IndexOp, Module, Tensor};
use candle_nn::{Linear, VarBuilder};

use super::config::{ExpertKind, ModelConfig, MoeConfig, Routing, WeightsFormat};
use super::mxfp4::PackedExperts;
use super::mxfp4::device::DeviceExperts;

/// gpt-oss' expert weights.
#[derive(Debug, Clone)]
enum SwiGluWeights {
    /// Each expert's weight as `(out, in)`: `gate_up` (experts, 2·intermediate, hidden), `down`
    /// (experts, hidden, intermediate); a product is `x · W[e]ᵀ`, whose rows are contiguous dot
    /// products (measured twice as fast at decode as transformers' (in, out) layout).
    Dense { gate_up: Tensor, down: Tensor },
    /// Packed MXFP4 on the host, each expert's rows `(out, in)`, multiplied by the threaded CPU
    /// product.
    Mxfp4 { gate_up: PackedExperts, down: PackedExperts },
    /// Packed MXFP4 on a GPU, multiplied by the engine's CUDA kernels.
    Mxfp4Device { gate_up: DeviceExperts, down: DeviceExperts },
}

/// One SiLU-gated expert, each weight `(out, in)`.
#[derive(Debug, Clone)]
struct SiluExpert {
    gate: Tensor,
    up: Tensor,
    down: Tensor,
}

/// Every expert of a layer.
#[derive(Debug, Clone)]
enum ExpertSet {
    SwiGlu {
        weights: SwiGluWeights,
        /// (experts, 2·intermediate) and (experts, hidden).
        gate_up_bias: Tensor,
        down_bias: Tensor,
        limit: f64,
        alpha: f64,
    },
    SiluGated(Vec<SiluExpert>),
}

/// Tokens from which one expert's product unpacks its weight and uses candle's matmul: below
/// it the packed row-by-row product reads less memory, above it the matmul's blocking wins.
const UNPACK_FROM_TOKENS: usize = 64;

#[derive(Debug, Clone)]
pub struct Experts {
    router: Linear,
    experts: ExpertSet,
    config: MoeConfig,
}

impl Experts {
    /// Loads the router and the experts from `vb` (the layer's `mlp`, or Mixtral's
    /// `block_sparse_moe`).
    pub fn load(c: &ModelConfig, moe: &MoeConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        let (e, h) = (moe.num_experts, c.hidden_size);
        let (experts, router) = match moe.expert {
            ExpertKind::ClampedSwiGlu { limit, alpha } => {
                let experts = Self::load_swiglu(c, moe, &vb, limit, alpha)?;
                // After the experts, so that an expert count that does not match the weights is
                // named by the experts' own tensors.
                let r = vb.pp("router");
                (experts, Linear::new(r.get((e, h), "weight")?, Some(r.get(e, "bias")?)))
            }
            ExpertKind::SiluGated => {
                let experts = Self::load_silu(c, moe, &vb)?;
                let router = vb.pp("gate").get((e, h), "weight").map_err(|err| {
                    candle_core::Error::msg(format!("the router does not match num_experts = {e}: {err}"))
                })?;
                (experts, Linear::new(router, None))
            }
        };
        Ok(Self { router, experts, config: moe.clone() })
    }

    fn load_swiglu(
        c: &ModelConfig,
        moe: &MoeConfig,
        vb: &VarBuilder,
        limit: f64,
        alpha: f64,
    ) -> candle_core::Result<ExpertSet> {
        let (e, h, i) = (moe.num_experts, c.hidden_size, moe.expert_intermediate_size);
        let x = vb.pp("experts");
        let weights = match c.weights_format {
            WeightsFormat::Dense => SwiGluWeights::Dense {
                // transformers keeps them as (experts, in, out).
                gate_up: x.get((e, h, 2 * i), "gate_up_proj")?.transpose(1, 2)?.contiguous()?,
                down: x.get((e, i, h), "down_proj")?.transpose(1, 2)?.contiguous()?,
            },
            WeightsFormat::Mxfp4 => {
                let gate_up = packed(&x, "gate_up_proj", (e, 2 * i, h))?;
                let down = packed(&x, "down_proj", (e, h, i))?;
                if vb.device().is_cpu() {
                    SwiGluWeights::Mxfp4 { gate_up, down }
                } else {
                    SwiGluWeights::Mxfp4Device {
                        gate_up: DeviceExperts::upload(&gate_up, vb.device())?,
                        down: DeviceExperts::upload(&down, vb.device())?,
                    }
                }
            }
        };
        Ok(ExpertSet::SwiGlu {
            weights,
            gate_up_bias: x.get((e, 2 * i), "gate_up_proj_bias")?,
            down_bias: x.get((e, h), "down_proj_bias")?,
            limit,
            alpha,
        })
    }

    /// SiLU-gated experts, stored one by one as the Hub's checkpoints do (Qwen3-MoE's
    /// `experts.N.{gate,up,down}_proj`, Mixtral's `experts.N.{w1,w3,w2}`), or stacked as
    /// transformers 5 saves them (`experts.gate_up_proj` (experts, 2·inter, hidden) with gate
    /// rows first, `experts.down_proj` (experts, hidden, inter)).
    fn load_silu(c: &ModelConfig, moe: &MoeConfig, vb: &VarBuilder) -> candle_core::Result<ExpertSet> {
        let (e, h, i) = (moe.num_experts, c.hidden_size, moe.expert_intermediate_size);
        let x = vb.pp("experts");
        if x.contains_tensor("gate_up_proj") {
            let shape_err = |err: candle_core::Error| {
                candle_core::Error::msg(format!(
                    "stacked experts do not match num_experts = {e}, moe_intermediate_size = {i}: {err}"
                ))
            };
            let gate_up = x.get((e, 2 * i, h), "gate_up_proj").map_err(shape_err)?;
            let down = x.get((e, h, i), "down_proj").map_err(shape_err)?;
            return (0..e)
                .map(|j| {
                    let both = gate_up.i(j)?;
                    Ok(SiluExpert { gate: both.narrow(0, 0, i)?, up: both.narrow(0, i, i)?, down: down.i(j)? })
                })
                .collect::<candle_core::Result<Vec<_>>>()
                .map(ExpertSet::SiluGated);
        }
        let (gate, up, down) =
            if x.contains_tensor("0.w1.weight") { ("w1", "w3", "w2") } else { ("gate_proj", "up_proj", "down_proj") };
        let stored = (0..).take_while(|j| x.contains_tensor(&format!("{j}.{gate}.weight"))).count();
        if stored != e {
            candle_core::bail!(
                "the checkpoint holds {stored} experts ({}.N.{gate}.weight) where config.json says num_experts = {e}",
                vb.prefix()
            );
        }
        (0..e)
            .map(|j| {
                let one = x.pp(j);
                Ok(SiluExpert {
                    gate: one.pp(gate).get((i, h), "weight")?,
                    up: one.pp(up).get((i, h), "weight")?,
                    down: one.pp(down).get((h, i), "weight")?,
                })
            })
            .collect::<candle_core::Result<Vec<_>>>()
            .map(ExpertSet::SiluGated)
    }

    /// `x`: (batch, len, hidden) → the same shape.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (b, t, h) = x.dims3()?;
        let flat = x.reshape((b * t, h))?;
        let logits: Vec<Vec<f32>> = self.router.forward(&flat)?.to_dtype(DType::F32)?.to_vec2()?;
        let k = self.config.experts_per_token;
        let routes = match self.config.routing {
            Routing::TopKSoftmax => route(&logits, k),
            Routing::SoftmaxTopK { renormalize } => route_by_probability(&logits, k, renormalize),
        };
        let mut out = flat.zeros_like()?;
        // Experts in ascending order, each adding its tokens' weighted outputs, as transformers
        // does (the order fixes the float sums).
        for expert in 0..self.config.num_experts {
            let (tokens, weights): (Vec<u32>, Vec<f32>) = routes
                .iter()
                .enumerate()
                .filter_map(|(tok, r)| r.iter().find(|(ex, _)| *ex == expert).map(|(_, w)| (tok as u32, *w)))
                .unzip();
            if tokens.is_empty() {
                continue;
            }
            let m = tokens.len();
            let tokens = Tensor::from_vec(tokens, m, x.device())?;
            let rows = flat.index_select(&tokens, 0)?;
            let y = self.expert_forward(expert, &rows)?;
            let weights = Tensor::from_vec(weights, (m, 1), x.device())?.to_dtype(y.dtype())?;
            out = out.index_add(&tokens, &y.broadcast_mul(&weights)?, 0)?;
        }
        out.reshape((b, t, h))
    }

    /// One expert on `rows` (m, hidden).
    fn expert_forward(&self, expert: usize, rows: &Tensor) -> candle_core::Result<Tensor> {
        match &self.experts {
            ExpertSet::SiluGated(all) => {
                let e = &all[expert];
                let gate = rows.matmul(&e.gate.t()?)?;
                let up = rows.matmul(&e.up.t()?)?;
                (candle_nn::ops::silu(&gate)? * up)?.matmul(&e.down.t()?)
            }
            ExpertSet::SwiGlu { weights, gate_up_bias, down_bias, limit, alpha } => {
                let gate_up = swiglu_product(weights, expert, rows, true)?
                    .broadcast_add(&gate_up_bias.i(expert)?.unsqueeze(0)?)?;
                let (m, two_i) = gate_up.dims2()?;
                // Interleaved: gate at even columns, up at odd.
                let pairs = gate_up.reshape((m, two_i / 2, 2))?;
                let gate = pairs.narrow(D::Minus1, 0, 1)?.squeeze(D::Minus1)?.minimum(*limit)?;
                let up = pairs.narrow(D::Minus1, 1, 1)?.squeeze(D::Minus1)?.clamp(-limit, *limit)?;
                let glu = (&gate * candle_nn::ops::sigmoid(&(&gate * *alpha)?)?)?;
                let hidden = ((up + 1.0)? * glu)?;
                swiglu_product(weights, expert, &hidden, false)?.broadcast_add(&down_bias.i(expert)?.unsqueeze(0)?)
            }
        }
    }

    /// Bytes the expert weights take in memory.
    pub fn weight_bytes(&self) -> usize {
        match &self.experts {
            ExpertSet::SwiGlu { weights: SwiGluWeights::Dense { gate_up, down }, .. } => {
                (gate_up.elem_count() + down.elem_count()) * gate_up.dtype().size_in_bytes()
            }
            ExpertSet::SwiGlu { weights: SwiGluWeights::Mxfp4 { gate_up, down }, .. } => {
                gate_up.packed_bytes() + down.packed_bytes()
            }
            ExpertSet::SwiGlu { weights: SwiGluWeights::Mxfp4Device { gate_up, down }, .. } => {
                gate_up.packed_bytes() + down.packed_bytes()
            }
            ExpertSet::SiluGated(all) => all
                .iter()
                .map(|e| {
                    (e.gate.elem_count() + e.up.elem_count() + e.down.elem_count()) * e.gate.dtype().size_in_bytes()
                })
                .sum(),
        }
    }
}

/// `x` through gpt-oss expert `expert`'s gate-up (`first`) or down weight.
fn swiglu_product(weights: &SwiGluWeights, expert: usize, x: &Tensor, first: bool) -> candle_core::Result<Tensor> {
    match weights {
        SwiGluWeights::Dense { gate_up, down } => x.matmul(&if first { gate_up } else { down }.i(expert)?.t()?),
        SwiGluWeights::Mxfp4Device { gate_up, down } => if first { gate_up } else { down }.matmul_t(expert, x),
        SwiGluWeights::Mxfp4 { gate_up, down } => {
            let w = if first { gate_up } else { down };
            let m = x.dim(0)?;
            if m >= UNPACK_FROM_TOKENS {
                // One expert unpacked at a time, for this product only.
                let dense = Tensor::from_vec(w.dequantize(expert), (w.rows, w.cols), x.device())?;
                return x.matmul(&dense.to_dtype(x.dtype())?.t()?);
            }
            let xs: Vec<f32> = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
            let y = w.matmul_t(expert, &xs, m);
            Tensor::from_vec(y, (m, w.rows), x.device())?.to_dtype(x.dtype())
        }
    }
}

/// Each token's experts and their weights as Qwen3-MoE and Mixtral route: a float32 softmax
/// over every expert, the `k` most probable (chosen as torch's CPU `topk` chooses them), divided
/// by their sum when `renormalize`.
pub fn route_by_probability(logits: &[Vec<f32>], k: usize, renormalize: bool) -> Vec<Vec<(usize, f32)>> {
    logits
        .iter()
        .map(|row| {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let exps: Vec<f32> = row.iter().map(|x| (x - max).exp()).collect();
            let sum: f32 = exps.iter().sum();
            let probs: Vec<f32> = exps.iter().map(|x| x / sum).collect();
            let top = torch_cpu_topk(&probs, k);
            let kept: f32 = top.iter().map(|&e| probs[e]).sum();
            top.iter().map(|&e| (e, if renormalize { probs[e] / kept } else { probs[e] })).collect()
        })
        .collect()
}

/// Each token's experts and their weights: the `k` largest logits, chosen as torch's CPU
/// `topk` chooses them (which decides exact ties), weighted by a softmax over those `k`.
pub fn route(logits: &[Vec<f32>], k: usize) -> Vec<Vec<(usize, f32)>> {
    logits
        .iter()
        .map(|row| {
            let top = torch_cpu_topk(row, k);
            let max = top.iter().map(|&e| row[e]).fold(f32::NEG_INFINITY, f32::max);
            let exps: Vec<f32> = top.iter().map(|&e| (row[e] - max).exp()).collect();
            let sum: f32 = exps.iter().sum();
            top.iter().zip(exps).map(|(&e, x)| (e, x / sum)).collect()
        })
        .collect()
}

/// The indices torch's CPU `topk(largest=True, sorted=True)` returns. For few experts (k·64 >
/// n, every MoE config here) torch runs libstdc++'s `std::nth_element` on (value, index) pairs
/// compared by value alone, then sorts the first k − 1: among equal logits the survivor
/// depends on where the others sit, not on its index, and a model whose router rows tie (as
/// copies do) routes differently under any other rule. Emulated step by step: introselect's
/// median-of-three partitioning, then insertion sort.
pub fn torch_cpu_topk(values: &[f32], k: usize) -> Vec<usize> {
    let n = values.len();
    let k = k.min(n);
    if k == 0 {
        return Vec::new();
    }
    // torch's comparator: NaN first, then larger first.
    let before = |a: (f32, usize), b: (f32, usize)| (a.0.is_nan() && !b.0.is_nan()) || a.0 > b.0;
    let mut q: Vec<(f32, usize)> = values.iter().copied().zip(0..).collect();
    if k * 64 <= n {
        // torch takes a partial sort here, which is stable in effect for our purposes; no MoE
        // config in the local engine reaches this branch.
        q.sort_by(|a, b| {
            if before(*a, *b) {
                std::cmp::Ordering::Less
            } else if before(*b, *a) {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        });
        return q[..k].iter().map(|p| p.1).collect();
    }
    let nth = k - 1;
    let (mut first, mut last) = (0usize, n);
    let mut depth = 2 * (usize::BITS - 1 - n.leading_zeros()) as usize;
    while last - first > 3 {
        if depth == 0 {
            // libstdc++ switches to heap_select here, which random logits never reach; a
            // stable sort keeps the result a true top-k.
            q[first..last].sort_by(|a, b| {
                if before(*a, *b) {
                    std::cmp::Ordering::Less
                } else if before(*b, *a) {
                    std::cmp::Ordering::Greater
                } else {
                    std::cmp::Ordering::Equal
                }
            });
            break;
        }
        depth -= 1;
        let mid = first + (last - first) / 2;
        move_median_to_first(&mut q, first, first + 1, mid, last - 1, before);
        let cut = unguarded_partition(&mut q, first + 1, last, first, before);
        if cut <= nth {
            first = cut;
        } else {
            last = cut;
        }
    }
    insertion_sort(&mut q, first, last, before);
    insertion_sort(&mut q, 0, nth, before);
    q[..k].iter().map(|p| p.1).collect()
}

type Before = fn((f32, usize), (f32, usize)) -> bool;

fn move_median_to_first(q: &mut [(f32, usize)], result: usize, a: usize, b: usize, c: usize, before: Before) {
    let m = if before(q[a], q[b]) {
        if before(q[b], q[c]) {
            b
        } else if before(q[a], q[c]) {
            c
        } else {
            a
        }
    } else if before(q[a], q[c]) {
        a
    } else if before(q[b], q[c]) {
        c
    } else {
        b
    };
    q.swap(result, m);
}

fn unguarded_partition(
    q: &mut [(f32, usize)],
    mut first: usize,
    mut last: usize,
    pivot: usize,
    before: Before,
) -> usize {
    loop {
        while before(q[first], q[pivot]) {
            first += 1;
        }
        last -= 1;
        while before(q[pivot], q[last]) {
            last -= 1;
        }
        if first >= last {
            return first;
        }
        q.swap(first, last);
        first += 1;
    }
}

/// libstdc++'s `__insertion_sort` on `q[first..last]`.
fn insertion_sort(q: &mut [(f32, usize)], first: usize, last: usize, before: Before) {
    if first == last {
        return;
    }
    for i in first + 1..last {
        let val = q[i];
        if before(val, q[first]) {
            q.copy_within(first..i, first + 1);
            q[first] = val;
        } else {
            let mut j = i;
            while before(val, q[j - 1]) {
                q[j] = q[j - 1];
                j -= 1;
            }
            q[j] = val;
        }
    }
}

/// Reads `NAME_blocks` and `NAME_scales` as stored (u8) and checks them against the config.
fn packed(vb: &VarBuilder, name: &str, shape: (usize, usize, usize)) -> candle_core::Result<PackedExperts> {
    let raw = |suffix: &str| -> candle_core::Result<(Vec<u8>, Vec<usize>)> {
        let t = vb.get_unchecked_dtype(&format!("{name}_{suffix}"), DType::U8)?;
        let dims = t.dims().to_vec();
        Ok((t.to_device(&Device::Cpu)?.flatten_all()?.to_vec1()?, dims))
    };
    let (blocks, blocks_shape) = raw("blocks")?;
    let (scales, scales_shape) = raw("scales")?;
    PackedExperts::new(name, blocks, &blocks_shape, scales, &scales_shape, shape).map_err(candle_core::Error::msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// All experts unpacked, in the dense layout (experts, out, in).
    fn unpacked(w: &PackedExperts, device: &Device, dtype: DType) -> candle_core::Result<Tensor> {
        let all: Vec<f32> = (0..w.experts).flat_map(|e| w.dequantize(e)).collect();
        Tensor::from_vec(all, (w.experts, w.rows, w.cols), device)?.to_dtype(dtype)
    }

    #[test]
    fn routing_softmaxes_the_top_k() {
        let r = route(&[vec![3.0, 1.0, 0.0, -1.0]], 2);
        assert_eq!(r[0].iter().map(|(e, _)| *e).collect::<Vec<_>>(), vec![0, 1]);
        let w0 = 1.0 / (1.0 + (-2f32).exp());
        assert!((r[0][0].1 - w0).abs() < 1e-6 && (r[0][1].1 - (1.0 - w0)).abs() < 1e-6, "{:?}", r[0]);
    }

    #[test]
    fn probability_routing_keeps_the_most_probable_and_renormalises_when_asked() {
        let logits = vec![vec![0.0f32, 2.0, 1.0, -1.0]];
        let z: f32 = [0.0f32, 2.0, 1.0, -1.0].iter().map(|x| (x - 2.0).exp()).sum();
        let p = |x: f32| (x - 2.0).exp() / z;
        let plain = route_by_probability(&logits, 2, false);
        assert_eq!(plain[0].iter().map(|r| r.0).collect::<Vec<_>>(), vec![1, 2]);
        assert!((plain[0][0].1 - p(2.0)).abs() < 1e-6 && (plain[0][1].1 - p(1.0)).abs() < 1e-6);
        let renormalised = route_by_probability(&logits, 2, true);
        let sum = p(2.0) + p(1.0);
        assert!((renormalised[0][0].1 - p(2.0) / sum).abs() < 1e-6, "{renormalised:?}");
        // Renormalised top-k of a softmax is the softmax of the top-k logits (Mixtral's two forms).
        let topk_first = route(&logits, 2);
        assert!((topk_first[0][0].1 - renormalised[0][0].1).abs() < 1e-6);
    }

    /// torch 2.15's CPU topk on four experts, two of them tied, one other above them
    /// (tests/fixtures/tiny-gpt-oss/README.md): the kept expert is not always the lower index.
    #[test]
    fn ties_are_broken_as_torchs_cpu_topk_breaks_them() {
        for ((a, b), (above, kept)) in [
            ((0, 1), (2, 1)),
            ((0, 1), (3, 1)),
            ((0, 2), (1, 2)),
            ((0, 2), (3, 2)),
            ((0, 3), (1, 3)),
            ((0, 3), (2, 3)),
            ((1, 2), (0, 1)),
            ((1, 2), (3, 2)),
            ((1, 3), (0, 1)),
            ((1, 3), (2, 3)),
            ((2, 3), (0, 2)),
            ((2, 3), (1, 3)),
        ] {
            let mut row = vec![-1.0f32; 4];
            row[a] = 0.5;
            row[b] = 0.5;
            row[above] = 2.0;
            assert_eq!(torch_cpu_topk(&row, 2), vec![above, kept], "tie ({a}, {b}), {above} above");
        }
        // Without ties it is the sorted top k; NaN sorts first, as in torch.
        assert_eq!(torch_cpu_topk(&[0.1, 0.9, 0.5, 0.7, 0.3, 0.8], 4), vec![1, 5, 3, 2]);
        assert_eq!(torch_cpu_topk(&[0.1, f32::NAN, 0.5], 2), vec![1, 2]);
    }

    /// The fixture's MXFP4 experts unpack to exactly its dense checkpoint's tensors.
    #[test]
    fn unpacked_mxfp4_experts_equal_the_dense_checkpoints_tensors() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny-gpt-oss");
        let packed_st = candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).expect("mxfp4");
        let dense_st =
            candle_core::safetensors::load(dir.join("dense/model.safetensors"), &Device::Cpu).expect("dense");
        for (name, rows_cols) in [("gate_up_proj", (64usize, 64usize)), ("down_proj", (64, 32))] {
            let raw = |suffix: &str| {
                let t = &packed_st[&format!("model.layers.0.mlp.experts.{name}_{suffix}")];
                (t.flatten_all().expect("flat").to_vec1::<u8>().expect("u8"), t.dims().to_vec())
            };
            let ((b, bs), (sc, ss)) = (raw("blocks"), raw("scales"));
            let w = PackedExperts::new(name, b, &bs, sc, &ss, (4, rows_cols.0, rows_cols.1)).expect("packed");
            let got = unpacked(&w, &Device::Cpu, DType::F32).expect("unpacked");
            // The checkpoint's (experts, in, out), as the engine holds it: (experts, out, in).
            let want = &dense_st[&format!("model.layers.0.mlp.experts.{name}")].transpose(1, 2).expect("t");
            assert_eq!(got.dims(), want.dims(), "{name}");
            let diff: f32 =
                (got - want).expect("sub").abs().expect("abs").max_all().expect("max").to_scalar().expect("s");
            assert_eq!(diff, 0.0, "{name}");
        }
    }
}
