//! Random weights for `backend.no_weights: true`: a model built from its `config.json` alone,
//! as optimum-benchmark builds one, so a run needs no weight download. Every tensor is drawn
//! when the model asks for it, from a generator seeded by the seed and the tensor's name, so a
//! model's weights do not depend on the order it loads them in and two runs with one seed hold
//! the same model.
//!
//! The distribution, by name (transformers' `_init_weights` of these models, with a fixed
//! standard deviation): normalisation weights (`*norm*`, `*LayerNorm*`, batch norms' `weight`)
//! 1; biases and batch norms' `running_mean` 0; `running_var` 1; every other tensor normal
//! with mean 0 and standard deviation 0.02 (`initializer_range`). The work a forward pass does
//! is set by the shapes (values move a GPU's power only slightly); answers of such a model are
//! meaningless, and the report says the weights were random.

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use energy_star_engine_local::toy::normal;
use rand::SeedableRng;
use rand::rngs::StdRng;

/// The standard deviation of random weights.
pub const WEIGHT_STD: f32 = 0.02;

/// Tensors made on request.
pub struct RandomWeights {
    pub seed: u64,
}

/// FNV-1a of a tensor's name, mixed with the seed.
fn seed_of(seed: u64, name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64 ^ seed, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// What a tensor of this name starts as.
enum Fill {
    Ones,
    Zeros,
    Normal,
}

fn fill_of(name: &str) -> Fill {
    let last = name.rsplit('.').next().unwrap_or(name);
    let lower = name.to_ascii_lowercase();
    match last {
        "bias" | "beta" | "running_mean" => Fill::Zeros,
        "running_var" | "gamma" => Fill::Ones,
        "weight" if lower.contains("norm") || lower.contains(".bn") || lower.contains("batchnorm") => Fill::Ones,
        "num_batches_tracked" => Fill::Zeros,
        _ => Fill::Normal,
    }
}

impl SimpleBackend for RandomWeights {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _h: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let n = s.elem_count();
        let values: Vec<f32> = match fill_of(name) {
            Fill::Ones => vec![1.0; n],
            Fill::Zeros => vec![0.0; n],
            Fill::Normal => {
                let mut rng = StdRng::seed_from_u64(seed_of(self.seed, name));
                normal(&mut rng, n, WEIGHT_STD)
            }
        };
        Tensor::from_vec(values, s, dev)?.to_dtype(dtype)
    }

    fn get_unchecked(&self, name: &str, _dtype: DType, _dev: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("random weights need the shape of {name}")
    }

    fn contains_tensor(&self, _name: &str) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_depend_on_seed_and_name_not_order_and_follow_the_documented_fills() {
        let w = RandomWeights { seed: 7 };
        let get = |name: &str| {
            w.get(Shape::from((4, 3)), name, candle_nn::Init::Const(0.0), DType::F32, &Device::Cpu)
                .expect("tensor")
                .flatten_all()
                .expect("flat")
                .to_vec1::<f32>()
                .expect("vec")
        };
        let a = get("encoder.layer.0.attention.self.query.weight");
        assert_eq!(a, get("encoder.layer.0.attention.self.query.weight"), "same name, same values");
        assert_ne!(a, get("encoder.layer.0.attention.self.key.weight"));
        assert_ne!(a, {
            let other = RandomWeights { seed: 8 };
            other
                .get(
                    Shape::from((4, 3)),
                    "encoder.layer.0.attention.self.query.weight",
                    candle_nn::Init::Const(0.0),
                    DType::F32,
                    &Device::Cpu,
                )
                .expect("t")
                .flatten_all()
                .expect("f")
                .to_vec1::<f32>()
                .expect("v")
        });
        assert!(a.iter().all(|x| x.abs() < 0.2) && a.iter().any(|x| *x != 0.0));
        assert!(get("embeddings.LayerNorm.weight").iter().all(|x| *x == 1.0));
        assert!(get("classifier.bias").iter().all(|x| *x == 0.0));
        assert!(get("backbone.bn1.running_var").iter().all(|x| *x == 1.0));
    }
}
