#!/usr/bin/env python3
"""Decoders on CPU, energy-star (candle) side by side with Hugging Face transformers.

Times transformers and the local engine on the same model folders, with the same method, and
prints one Markdown table with both sides. The model sets (`--models`, comma-separated):

  scaled            a random-weight GptOssForCausalLM with gpt-oss-20b's per-layer shapes, scaled
                    down in depth, expert count and vocabulary so that it fits a 2-core, 23 GB
                    machine, built here in two folders that hold the same model bit for bit:
                      WORKDIR/mxfp4/      experts as MXFP4 (`*_blocks` / `*_scales`, uint8), every
                                          other tensor bfloat16 -- the layout of the real
                                          openai/gpt-oss checkpoints
                      WORKDIR/dense-f32/  every tensor float32, experts dense as transformers'
                                          save_pretrained writes them (`gate_up_proj` [E, hidden,
                                          2I], `down_proj` [E, I, hidden])
  tiny              tests/fixtures/tiny-gpt-oss and its dense/ (rows "tiny-gpt-oss fixture (MXFP4)"
                    and "tiny-gpt-oss fixture (dense f32)")
  fixtures          every tiny decoder fixture the engine runs: tiny-llama, tiny-gpt-oss (both
                    folders, as `tiny`), tiny-qwen3-moe, tiny-mixtral, tiny-phi3, tiny-gemma3,
                    tiny-gemma3-mm, tiny-smollm3 (rows "tiny-qwen3-moe fixture", ...); one of these
                    names alone selects that fixture. tiny-gemma3-mm's config is
                    Gemma3ForConditionalGeneration, which is what AutoModelForCausalLM gives for it
                    in transformers 5.x: the whole model runs on text-only ids
  scaled-qwen3-moe  optional (not in the default): a random-weight Qwen3MoeForCausalLM with
                    Qwen3-30B-A3B's per-layer shapes, 2 of 48 layers, 16 of 128 experts (top-8 as
                    the real one), vocab 8192 of 151936, float32, in the Hub checkpoints' layout
                    (WORKDIR/qwen3-moe-f32/, built here with transformers' own init and
                    save_pretrained; 0.89 GB). No scaled Mixtral: one Mixtral-8x7B expert is 176 M
                    parameters (0.7 GB float32), too big for this machine at more than one layer

For every selected folder it times transformers (each model in a fresh subprocess), then runs
`cargo bench -p energy-star-engine-local --bench inference` with ENERGY_STAR_BENCH_MODELS=
"LABEL=DIR;..." (crates/engine-local/benches/inference.rs; it prints Markdown rows `| label |
batch | prompt tokens | new tokens | prefill tokens/s | decode tokens/s | load |`) and
ENERGY_STAR_BENCH_DTYPE=DTYPE, and prints one table.

Usage (from anywhere; transformers 5.25 is the one measured, 4.57 also runs the gpt-oss and
llama models; the MXFP4 folders need `accelerate` installed):

  python crates/engine-local/benches/decoders_side_by_side.py \
      [--workdir /tmp/decoders-bench] [--skip-rust | --rust-output FILE] [--threads 2] \
      [--models scaled,fixtures] [--experts grouped_mm] [--dtype float32] [--rebuild] \
      [--reuse-transformers]

  --models LIST          model sets above (default scaled,fixtures)
  --skip-rust            only the Python side (build + transformers); the table's energy-star
                         columns stay empty, and the cargo command that fills them is printed
  --rust-output FILE     read the Rust bench's Markdown rows from FILE instead of running cargo
                         (e.g. a saved `cargo bench ... | tee FILE`)
  --experts LIST         transformers experts implementations to time on the MoE models (gpt-oss,
                         qwen3-moe, mixtral), comma-separated; default grouped_mm, which is
                         transformers 5.x's default for them (the worker checks and logs it);
                         eager is the per-expert loop. Models without experts are timed once,
                         whatever this says (their experts cell is "—"). transformers 4.x has
                         only its own loop, reported as "eager"
  --dtype DTYPE          float32 (default, what docs/benchmarks.md reports) or bfloat16: the
                         dtype transformers loads and runs in, and ENERGY_STAR_BENCH_DTYPE for the
                         Rust bench
  --rebuild              rebuild the scaled models even if an identical build is present
  --reuse-transformers   take the transformers numbers saved by an earlier run
                         (WORKDIR/transformers.json, same dtype) instead of measuring again

Method (both sides): prompts of 32 synthetic token ids, id[b][i] = (i*7 + b*13) % (V-2) + 2 with
V = min(vocab_size, 512) (vocab_size of the text config; the tokenizer is not used), 32 new
tokens, greedy (argmax of the raw logits), EOS ignored, batch 1 and 8 (8 different prompts of
equal length, no padding); per batch one untimed warmup of 2 new tokens, then 3 timed runs and the
median of each figure. prefill tokens/s = batch*32 / (time of the first forward pass over the
prompt + picking the first token); decode tokens/s = batch*31 / (sum of the 31 one-token decode
steps). transformers runs a manual greedy loop: one forward of the prompt into a fresh
DynamicCache(config=...) with logits_to_keep=1 (as generate does), then one forward per new token;
DTYPE weights and activations (float32 by default), eager attention, torch.set_num_threads(THREADS),
set_num_interop_threads(1), torch.inference_mode(). Each transformers model runs in a fresh
subprocess: load = wall time of from_pretrained, peak RSS = the process's VmHWM (its own peak;
getrusage's ru_maxrss would carry the parent's peak across fork + exec) after loading and after
the whole run; both include the interpreter, torch and transformers (about 0.58 GB: "before load"
in the log). Each run also logs the CPU time / wall time it got; on a shared machine, a run well
under THREADS is flagged NOISY at the end. The Rust bench gets RAYON_NUM_THREADS=THREADS and
ENERGY_STAR_BENCH_DTYPE=DTYPE. Exit status 1 when a check fails (non-finite logits, tokens that
differ between runs or between the MXFP4 and dense folders of one model, a missing Rust row, a
Rust bench that reports another dtype than DTYPE or, for a DTYPE other than float32, none).

Output: the log, then the table (also written to WORKDIR/side-by-side.md); transformers numbers in
WORKDIR/transformers.json, cargo's stdout in WORKDIR/rust-bench-output.md.
"""
import argparse
import inspect
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()
ROOT = HERE.parents[3]
FIXTURES = ROOT / "tests" / "fixtures"
FIXTURE = FIXTURES / "tiny-gpt-oss"
QWEN3_FIXTURE = FIXTURES / "tiny-qwen3-moe"
# The tiny decoder fixtures the engine runs, in table order (tiny-gpt-oss gives two rows).
FIXTURE_NAMES = ("tiny-llama", "tiny-gpt-oss", "tiny-qwen3-moe", "tiny-mixtral", "tiny-phi3", "tiny-gemma3",
                 "tiny-gemma3-mm", "tiny-smollm3")

PROMPT_TOKENS = 32
NEW_TOKENS = 32
RUNS = 3
WARMUP_TOKENS = 2
BATCHES = (1, 8)

# gpt-oss-20b (config.json of openai/gpt-oss-20b) and the scaled model built here.
REAL = dict(layers=24, experts=32, top_k=4, vocab=201088)
SCALED = dict(hidden=2880, inter=2880, layers=2, heads=64, kv_heads=8, head_dim=64, experts=8, top_k=4,
              vocab=8192, sliding_window=128)
SEED = 0
STD = 0.02            # embeddings, q/k/v/o, router and lm_head weights
BIAS_STD = 0.02       # q/k/v/o, router and expert biases
SINK_STD = 0.5
NORM_STD = 0.02       # RMSNorm weights: 1 + NORM_STD * N(0, 1)
# MXFP4 scale = 2^e, e uniform in the range (scale byte = e + 127); with uniform random nibbles
# (RMS 2.93) this gives gate_up outputs of std ~1.5 and keeps the residual stream moderate.
SCALE_EXP = {"gate_up_proj": (-7, -6), "down_proj": (-8, -7)}
BUILD_VERSION = 1

FP4_VALUES = [+0.0, +0.5, +1.0, +1.5, +2.0, +3.0, +4.0, +6.0,
              -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0]

LABEL_SCALED_MXFP4 = "gpt-oss-20b shapes scaled, MXFP4"
LABEL_SCALED_DENSE = "gpt-oss-20b shapes scaled, dense f32"
LABEL_TINY_MXFP4 = "tiny-gpt-oss fixture (MXFP4)"
LABEL_TINY_DENSE = "tiny-gpt-oss fixture (dense f32)"

SCALE_STATEMENT = (f"{SCALED['layers']} of {REAL['layers']} layers, {SCALED['experts']} of {REAL['experts']} experts, "
                   f"vocab {SCALED['vocab']} of {REAL['vocab']}; per-token expert work equals gpt-oss-20b's per layer "
                   f"(top-{SCALED['top_k']} of experts of the real size: hidden {SCALED['hidden']}, "
                   f"intermediate {SCALED['inter']}), attention is the real layer's (64 heads, 8 KV heads, head_dim 64)")

# Qwen3-30B-A3B (config.json of Qwen/Qwen3-30B-A3B) and the optional scaled model built here
# (from the tiny-qwen3-moe fixture's config with these sizes; transformers' own init: normal(0,
# initializer_range 0.02) matrices, RMSNorm weights 1).
REAL_QWEN3 = dict(layers=48, experts=128, top_k=8, vocab=151936)
SCALED_QWEN3 = dict(hidden=2048, moe_inter=768, inter=6144, layers=2, heads=32, kv_heads=4, head_dim=128,
                    experts=16, top_k=8, vocab=8192)
QWEN3_BUILD_VERSION = 1
LABEL_SCALED_QWEN3 = "Qwen3-30B-A3B shapes scaled, f32"
QWEN3_SCALE_STATEMENT = (
    f"{SCALED_QWEN3['layers']} of {REAL_QWEN3['layers']} layers, {SCALED_QWEN3['experts']} of "
    f"{REAL_QWEN3['experts']} experts, vocab {SCALED_QWEN3['vocab']} of {REAL_QWEN3['vocab']}; per-token expert work "
    f"equals Qwen3-30B-A3B's per layer (top-{SCALED_QWEN3['top_k']} of experts of the real size: hidden "
    f"{SCALED_QWEN3['hidden']}, moe_intermediate {SCALED_QWEN3['moe_inter']}), attention is the real layer's "
    f"(32 heads, 4 KV heads, head_dim 128, q/k norms); with 16 experts each gets 8x the real share of a batch's tokens")


def log(*a):
    print(*a, flush=True)


def folder_bytes(d):
    return sum(p.stat().st_size for p in Path(d).rglob("*") if p.is_file())


def gb(n):
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.2f} MB"


# --------------------------------------------------------------------------------------------
# build


def dequant_mxfp4(torch, blocks, scales):
    """blocks uint8 [E, R, G, 16], scales uint8 [E, R, G] -> float32 [E, G*32, R] (transformers'
    layout). Byte j of a block holds element 2j in its low nibble and 2j+1 in its high nibble; each
    element is FP4_VALUES[nibble] * 2^(scale - 127). One expert at a time to bound memory."""
    E, R, G, B = blocks.shape
    lut = torch.tensor(FP4_VALUES, dtype=torch.float32)
    out = torch.empty(E, G * 2 * B, R, dtype=torch.float32)
    for e in range(E):
        b = blocks[e]
        vals = torch.empty(R, G, 2 * B, dtype=torch.float32)
        vals[..., 0::2] = lut[(b & 0x0F).long()]
        vals[..., 1::2] = lut[(b >> 4).long()]
        vals = torch.ldexp(vals, (scales[e].to(torch.int32) - 127)[..., None])
        out[e] = vals.reshape(R, G * 2 * B).t()
    return out


def tensor_shapes(s):
    """Name -> (shape, kind) of every tensor of a GptOssForCausalLM with these sizes, in the
    checkpoints' naming; kind 'experts' marks the MXFP4-able expert weights ([E, out, in])."""
    H, I, E = s["hidden"], s["inter"], s["experts"]
    q, kv = s["heads"] * s["head_dim"], s["kv_heads"] * s["head_dim"]
    t = {"model.embed_tokens.weight": ([s["vocab"], H], "w"), "lm_head.weight": ([s["vocab"], H], "w"),
         "model.norm.weight": ([H], "norm")}
    for n in range(s["layers"]):
        p = f"model.layers.{n}."
        t.update({
            p + "input_layernorm.weight": ([H], "norm"),
            p + "post_attention_layernorm.weight": ([H], "norm"),
            p + "self_attn.q_proj.weight": ([q, H], "w"), p + "self_attn.q_proj.bias": ([q], "b"),
            p + "self_attn.k_proj.weight": ([kv, H], "w"), p + "self_attn.k_proj.bias": ([kv], "b"),
            p + "self_attn.v_proj.weight": ([kv, H], "w"), p + "self_attn.v_proj.bias": ([kv], "b"),
            p + "self_attn.o_proj.weight": ([H, q], "w"), p + "self_attn.o_proj.bias": ([H], "b"),
            p + "self_attn.sinks": ([s["heads"]], "sink"),
            p + "mlp.router.weight": ([E, H], "w"), p + "mlp.router.bias": ([E], "b"),
            p + "mlp.experts.gate_up_proj": ([E, 2 * I, H], "experts"),
            p + "mlp.experts.gate_up_proj_bias": ([E, 2 * I], "b"),
            p + "mlp.experts.down_proj": ([E, H, I], "experts"),
            p + "mlp.experts.down_proj_bias": ([E, H], "b"),
        })
    return t


def make_configs(s):
    """config.json for mxfp4/ and dense-f32/: the fixture's (real gpt-oss fields, both rope forms),
    with the scaled sizes."""
    mx = json.load(open(FIXTURE / "config.json"))
    dense = json.load(open(FIXTURE / "dense" / "config.json"))
    sizes = {
        "hidden_size": s["hidden"], "intermediate_size": s["inter"], "num_hidden_layers": s["layers"],
        "num_attention_heads": s["heads"], "num_key_value_heads": s["kv_heads"], "head_dim": s["head_dim"],
        "num_local_experts": s["experts"], "num_experts_per_tok": s["top_k"], "vocab_size": s["vocab"],
        "sliding_window": s["sliding_window"], "initializer_range": STD,
        "layer_types": ["sliding_attention" if n % 2 == 0 else "full_attention" for n in range(s["layers"])],
    }
    mx.update(sizes, experts_per_token=s["top_k"], dtype="bfloat16")
    dense.update(sizes, dtype="float32")
    for c in (mx, dense):
        # the real gpt-oss-20b rope settings (the fixture already carries them)
        assert c["rope_parameters"]["rope_type"] == "yarn" and c["rope_parameters"]["factor"] == 32.0
        assert c["rope_theta"] == 150000.0 and c["max_position_embeddings"] == 131072
        assert c["rope_scaling"]["truncate"] is False and c["rope_scaling"]["beta_slow"] == 1.0
    return dict(sorted(mx.items())), dense


def build_spec():
    return {"version": BUILD_VERSION, "shapes": SCALED, "seed": SEED, "std": STD, "bias_std": BIAS_STD,
            "sink_std": SINK_STD, "norm_std": NORM_STD, "scale_exp": SCALE_EXP}


def existing_build(workdir):
    """build.json of an identical earlier build whose files are all there, else None."""
    marker = workdir / "build.json"
    if not marker.exists():
        return None
    try:
        old = json.load(open(marker))
    except ValueError:
        return None
    files = [workdir / d / f for d in ("mxfp4", "dense-f32") for f in
             ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json")]
    if old.get("spec") == json.loads(json.dumps(build_spec())) and all(f.exists() for f in files):
        return old
    return None


def build(workdir):
    """Builds WORKDIR/mxfp4 and WORKDIR/dense-f32 (run in a subprocess of its own, so that the
    4 GB it holds is given back before anything is measured)."""
    mxd, dnd = workdir / "mxfp4", workdir / "dense-f32"
    marker = workdir / "build.json"
    spec = build_spec()
    import torch
    from safetensors.torch import save_file

    t0 = time.perf_counter()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    for d in (mxd, dnd):
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
    if marker.exists():
        marker.unlink()
    g = torch.Generator().manual_seed(SEED)
    shapes = tensor_shapes(SCALED)
    mx_sd, dense_sd = {}, {}
    params = 0
    for name in sorted(shapes):
        shape, kind = shapes[name]
        if kind == "experts":
            E, R, C = shape
            lo, hi = SCALE_EXP["gate_up_proj" if name.endswith("gate_up_proj") else "down_proj"]
            blocks = torch.randint(0, 256, (E, R, C // 32, 16), generator=g, dtype=torch.uint8)
            scales = (torch.randint(lo, hi + 1, (E, R, C // 32), generator=g, dtype=torch.int32) + 127).to(torch.uint8)
            mx_sd[name + "_blocks"], mx_sd[name + "_scales"] = blocks, scales
            dense_sd[name] = dequant_mxfp4(torch, blocks, scales)  # [E, in, out]
            params += E * R * C
            continue
        if kind == "norm":
            x = 1.0 + NORM_STD * torch.randn(shape, generator=g)
        elif kind == "sink":
            x = SINK_STD * torch.randn(shape, generator=g)
        elif kind == "b":
            x = BIAS_STD * torch.randn(shape, generator=g)
        else:
            x = STD * torch.randn(shape, generator=g)
        x = x.to(torch.bfloat16)  # as the real checkpoints store them; exact in float32
        mx_sd[name] = x
        dense_sd[name] = x.to(torch.float32)
        params += x.numel()
    # Our decoder must agree with transformers' own (first expert of every expert tensor).
    try:
        from transformers.integrations.mxfp4 import convert_moe_packed_tensors
        for name in dense_sd:
            if name + "_blocks" in mx_sd:
                ref = convert_moe_packed_tensors(mx_sd[name + "_blocks"][:1], mx_sd[name + "_scales"][:1],
                                                 dtype=torch.float32)
                assert torch.equal(ref[0], dense_sd[name][0]), name
        log("MXFP4 decode checked against transformers' convert_moe_packed_tensors")
    except ImportError as e:
        log(f"(transformers' MXFP4 decoder not importable, not cross-checked: {e})")
    for k in dense_sd:
        assert dense_sd[k].dtype == torch.float32 and torch.isfinite(dense_sd[k]).all(), k
    save_file(mx_sd, str(mxd / "model.safetensors"), metadata={"format": "pt"})
    del mx_sd
    save_file(dense_sd, str(dnd / "model.safetensors"), metadata={"format": "pt"})
    del dense_sd
    mx_cfg, dense_cfg = make_configs(SCALED)
    json.dump(mx_cfg, open(mxd / "config.json", "w"), indent=2)
    json.dump(dense_cfg, open(dnd / "config.json", "w"), indent=2)
    for d in (mxd, dnd):
        for f in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
            shutil.copy(FIXTURE / f, d / f)
        os.chmod(d / "model.safetensors", 0o644)
    # Write the 2.4 GB out now: kernel writeback running during the first measurements took a
    # core away from them (seen here as CPU busy 1.0 of 2 and 5x slower batch-1 runs).
    os.sync()
    info = {"spec": spec, "params": params, "bytes": {"mxfp4": folder_bytes(mxd), "dense-f32": folder_bytes(dnd)},
            "build_s": time.perf_counter() - t0}
    json.dump(info, open(marker, "w"), indent=2)
    log(f"built {mxd} and {dnd} in {info['build_s']:.1f} s")
    return info


def count_params(s):
    """(total, active per token) parameters of the model with sizes s."""
    H, I, E, k = s["hidden"], s["inter"], s["experts"], s["top_k"]
    q, kv = s["heads"] * s["head_dim"], s["kv_heads"] * s["head_dim"]
    attn = H * q + q + 2 * (H * kv + kv) + q * H + H + s["heads"] + 2 * H + E * H + E
    expert = H * 2 * I + 2 * I + I * H + H
    emb = 2 * s["vocab"] * H + H
    return emb + s["layers"] * (attn + E * expert), emb + s["layers"] * (attn + k * expert)


def qwen3_spec():
    return {"version": QWEN3_BUILD_VERSION, "shapes": SCALED_QWEN3, "seed": SEED}


def qwen3_dir(workdir):
    return workdir / "qwen3-moe-f32"


def existing_qwen3_build(workdir):
    """qwen3-moe.json of an identical earlier build whose files are all there, else None."""
    marker, d = workdir / "qwen3-moe.json", qwen3_dir(workdir)
    if not marker.exists():
        return None
    try:
        old = json.load(open(marker))
    except ValueError:
        return None
    files = [d / f for f in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                             "generation_config.json")]
    if old.get("spec") == json.loads(json.dumps(qwen3_spec())) and all(f.exists() for f in files):
        return old
    return None


def build_qwen3(workdir):
    """Builds WORKDIR/qwen3-moe-f32: the tiny-qwen3-moe fixture's config with Qwen3-30B-A3B's
    per-layer sizes (every layer sparse), transformers' own random init under torch.manual_seed,
    written by save_pretrained (transformers 5.25 writes the Hub layout: one gate/up/down_proj per
    expert)."""
    import torch
    from safetensors import safe_open
    import transformers
    from transformers import AutoConfig, AutoModelForCausalLM
    transformers.utils.logging.disable_progress_bar()
    s, d, marker = SCALED_QWEN3, qwen3_dir(workdir), workdir / "qwen3-moe.json"
    t0 = time.perf_counter()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    if marker.exists():
        marker.unlink()
    cfg = AutoConfig.from_pretrained(QWEN3_FIXTURE)
    for k, v in {"hidden_size": s["hidden"], "moe_intermediate_size": s["moe_inter"], "intermediate_size": s["inter"],
                 "num_hidden_layers": s["layers"], "max_window_layers": s["layers"], "num_attention_heads": s["heads"],
                 "num_key_value_heads": s["kv_heads"], "head_dim": s["head_dim"], "num_experts": s["experts"],
                 "num_experts_per_tok": s["top_k"], "vocab_size": s["vocab"], "mlp_only_layers": [],
                 "decoder_sparse_step": 1, "norm_topk_prob": True, "tie_word_embeddings": False}.items():
        setattr(cfg, k, v)
    torch.manual_seed(SEED)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    model.save_pretrained(str(d))
    del model
    for f in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        shutil.copy(QWEN3_FIXTURE / f, d / f)
    for f in d.glob("*.safetensors"):
        os.chmod(f, 0o644)
    written = json.load(open(d / "config.json"))
    assert written.get("num_local_experts", written.get("num_experts")) == s["experts"], written
    assert written["num_hidden_layers"] == s["layers"] and written["mlp_only_layers"] == [], written
    params = 0
    for f in sorted(d.glob("*.safetensors")):
        with safe_open(str(f), "pt") as st:
            for k in st.keys():
                x = st.get_tensor(k)
                assert x.dtype == torch.float32 and torch.isfinite(x).all(), k
                params += x.numel()
    os.sync()
    info = {"spec": qwen3_spec(), "params": params, "bytes": folder_bytes(d), "build_s": time.perf_counter() - t0}
    json.dump(info, open(marker, "w"), indent=2)
    log(f"built {d} in {info['build_s']:.1f} s")
    return info


def count_params_qwen3(s):
    """(total, active per token) parameters of the Qwen3-MoE with sizes s (all layers sparse)."""
    H, I, E, k = s["hidden"], s["moe_inter"], s["experts"], s["top_k"]
    q, kv = s["heads"] * s["head_dim"], s["kv_heads"] * s["head_dim"]
    attn = H * q + 2 * H * kv + q * H + 2 * s["head_dim"] + 2 * H + E * H
    expert = 3 * H * I
    emb = 2 * s["vocab"] * H + H
    return emb + s["layers"] * (attn + E * expert), emb + s["layers"] * (attn + k * expert)


# --------------------------------------------------------------------------------------------
# model sets


def is_moe(folder):
    """Whether the config in folder (or its text_config) has routed experts."""
    c = json.load(open(Path(folder) / "config.json"))
    for cc in (c, c.get("text_config") or {}):
        if any((cc.get(k) or 0) > 0 for k in ("num_local_experts", "num_experts", "n_routed_experts")):
            return True
    return False


def fixture_models(names):
    """(label, folder) of the named tiny fixtures, in FIXTURE_NAMES order."""
    out = []
    for name in FIXTURE_NAMES:
        if name not in names:
            continue
        if name == "tiny-gpt-oss":
            out += [(LABEL_TINY_MXFP4, str(FIXTURE)), (LABEL_TINY_DENSE, str(FIXTURE / "dense"))]
        else:
            out.append((f"{name} fixture", str(FIXTURES / name)))
    return out


# --------------------------------------------------------------------------------------------
# transformers worker (one model, fresh process)


def prompt_ids(batch, vocab):
    v = min(vocab, 512)
    return [[(i * 7 + b * 13) % (v - 2) + 2 for i in range(PROMPT_TOKENS)] for b in range(batch)]


def peak_rss_bytes():
    """This process's peak resident set size. VmHWM of /proc/self/status (the high-water mark of
    this process's own address space, fresh at exec) rather than getrusage's ru_maxrss: on Linux
    ru_maxrss survives fork + execve, so a child would report its parent's peak (the 4 GB of the
    build) until it grew past it."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def worker(folder, experts_impl, threads, dtype):
    """Times one model folder; experts_impl "-" = a model without experts (no experts_implementation
    passed)."""
    import torch
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    import transformers
    from transformers import AutoModelForCausalLM, DynamicCache
    transformers.utils.logging.disable_progress_bar()
    tf5 = int(transformers.__version__.split(".")[0]) >= 5
    rss_before = peak_rss_bytes()
    loadavg = open("/proc/loadavg").read().split()[:3] if os.path.exists("/proc/loadavg") else None
    want = getattr(torch, dtype)
    kw = {"dtype": want, "attn_implementation": "eager"}
    moe = experts_impl != "-"
    if tf5:
        kw.update(use_kernels=False)
        if moe:
            kw.update(experts_implementation=experts_impl)
    elif moe and experts_impl != "eager":
        raise SystemExit(f"transformers {transformers.__version__} has no experts_implementation={experts_impl}")
    t = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(folder, **kw)
    load_s = time.perf_counter() - t
    rss_load = peak_rss_bytes()
    loaded_dtypes = {}
    for n, p in model.named_parameters():
        key = "experts" if ".mlp.experts." in n and not n.endswith("_bias") else "other"
        loaded_dtypes.setdefault(key, set()).add(str(p.dtype).replace("torch.", ""))
    cast = None
    if any(p.is_floating_point() and p.dtype != want for p in model.parameters()):
        # transformers 4.x's CPU MXFP4 path dequantizes to bfloat16 whatever dtype was asked for;
        # lossless to widen (every value is an FP4 code times a power of two).
        cast = f"cast to {dtype} after loading"
        model.to(want)
    model.eval()
    cfg = model.config
    text_cfg = cfg.get_text_config(decoder=True) if hasattr(cfg, "get_text_config") else cfg
    # the experts implementation transformers picks when none is asked for (5.x: grouped_mm where
    # the model's experts support it)
    default_experts = None
    if tf5 and moe:
        try:
            default_experts = model.get_correct_experts_implementation(None)
        except Exception as e:  # private API; the table only notes it
            default_experts = f"? ({type(e).__name__})"
    # transformers 5.25 renamed forward's `past_key_values` to `cache` (the old name still works, with a warning)
    cache_kw = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    impl = {"attn": getattr(cfg, "_attn_implementation", None),
            "experts": (getattr(cfg, "_experts_implementation", None) if tf5 else "eager (4.x loop)") if moe else None,
            "default_experts": default_experts}

    def run(ids, n_new):
        inp = torch.tensor(ids, dtype=torch.long)
        with torch.inference_mode():
            try:
                cache = DynamicCache(config=cfg)
            except TypeError:
                cache = DynamicCache()
            c_start, w_start = time.process_time(), time.perf_counter()
            t0 = time.perf_counter()
            out = model(input_ids=inp, **{cache_kw: cache}, use_cache=True, logits_to_keep=1)
            logits = out.logits[:, -1, :]
            nxt = logits.argmax(-1)
            prefill = time.perf_counter() - t0
            finite = bool(torch.isfinite(logits).all())
            toks, steps = [nxt], []
            for _ in range(n_new - 1):
                t0 = time.perf_counter()
                out = model(input_ids=nxt[:, None], **{cache_kw: cache}, use_cache=True, logits_to_keep=1)
                logits = out.logits[:, -1, :]
                nxt = logits.argmax(-1)
                steps.append(time.perf_counter() - t0)
                finite = finite and bool(torch.isfinite(logits).all())
                toks.append(nxt)
            cpu = (time.process_time() - c_start) / (time.perf_counter() - w_start)
            return prefill, steps, torch.stack(toks, 1).tolist(), finite, cpu

    res = {"transformers": transformers.__version__, "torch": torch.__version__, "threads": threads,
           "dtype": dtype, "class": type(model).__name__, "impl": impl, "loaded_dtypes": {k: sorted(v) for k, v in loaded_dtypes.items()}, "cast": cast,
           "load_s": load_s, "loadavg_at_start": loadavg, "rss_before_load": rss_before, "rss_after_load": rss_load, "batches": {}}
    for batch in BATCHES:
        ids = prompt_ids(batch, text_cfg.vocab_size)
        run(ids, WARMUP_TOKENS)
        pre, dec, cpus, tokens, finite = [], [], [], None, True
        deterministic = True
        for _ in range(RUNS):
            p, steps, toks, fin, cpu = run(ids, NEW_TOKENS)
            cpus.append(cpu)
            pre.append(batch * PROMPT_TOKENS / p)
            dec.append(batch * len(steps) / sum(steps))
            finite = finite and fin
            if tokens is None:
                tokens = toks
            deterministic = deterministic and toks == tokens
        res["batches"][str(batch)] = {
            "prefill_tps": statistics.median(pre), "decode_tps": statistics.median(dec),
            "prefill_all": pre, "decode_all": dec, "cpu_per_wall": cpus, "finite": finite, "deterministic": deterministic,
            "tokens": tokens}
    res["rss_peak"] = peak_rss_bytes()
    return res


# --------------------------------------------------------------------------------------------
# Rust side


def rust_env_value(models):
    return ";".join(f"{m[0]}={m[1]}" for m in models)


def run_rust(models, threads, dtype, save_to):
    env = dict(os.environ, ENERGY_STAR_BENCH_MODELS=rust_env_value(models), RAYON_NUM_THREADS=str(threads),
               ENERGY_STAR_BENCH_DTYPE=dtype)
    cmd = ["cargo", "bench", "-p", "energy-star-engine-local", "--bench", "inference"]
    log(f"\n$ ENERGY_STAR_BENCH_MODELS={env['ENERGY_STAR_BENCH_MODELS']!r} RAYON_NUM_THREADS={threads} "
        f"ENERGY_STAR_BENCH_DTYPE={dtype} {' '.join(cmd)}   (in {ROOT})")
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    lines = []
    for line in p.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        lines.append(line)
    rc = p.wait()
    text = "".join(lines)
    Path(save_to).write_text(text)
    log(f"(cargo bench: exit {rc}, {time.perf_counter() - t0:.0f} s; its stdout saved to {save_to})")
    if rc != 0:
        log("cargo bench failed; the energy-star columns will be empty where no row was printed")
    return text


def _cells(line):
    s = line.strip()
    if not (s.startswith("|") and s.endswith("|")):
        return None
    return [c.strip() for c in s[1:-1].split("|")]


def _num(cell):
    m = re.search(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?", cell or "")
    return float(m.group()) if m else None


def _bytes_of(cell):
    m = re.search(r"([\d.]+)\s*([KMGT]i?B|B)\b", cell or "")
    if not m:
        return None
    mult = {"B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12, "KiB": 1024, "MiB": 1024 ** 2, "GiB": 1024 ** 3,
            "TiB": 1024 ** 4}[m.group(2)]
    return float(m.group(1)) * mult


def rust_dtype(text):
    """The dtype the Rust bench says it ran in (a line `dtype: NAME` before its table), or None
    from a bench that does not say (one that predates ENERGY_STAR_BENCH_DTYPE: float32)."""
    m = re.search(r"^dtype:\s*(\S+)", text, re.M)
    return m.group(1) if m else None


def parse_rust(text, labels):
    """-> {(label, batch): {"prefill", "decode", "load", "rss"}} from the bench's Markdown rows.
    Columns are taken by name from the latest header row (one followed by |---|); a row without a
    batch that mentions peak RSS applies to every batch of its model."""
    out, rss_by_label = {}, {}
    header = None
    lines = text.splitlines()
    for i, line in enumerate(lines):
        cells = _cells(line)
        if cells is None:
            continue
        nxt = _cells(lines[i + 1]) if i + 1 < len(lines) else None
        if nxt and all(re.fullmatch(r":?-{3,}:?", c) for c in nxt if c):
            header = [c.lower() for c in cells]
            continue
        if all(re.fullmatch(r":?-{3,}:?", c) for c in cells if c):
            continue
        label = cells[0]
        if label not in labels:
            continue
        row = dict(zip(header, cells)) if header else {}

        def col(*words):
            for h, v in row.items():
                if all(w in h for w in words):
                    return v
            return None
        rss_cell = col("rss")
        if rss_cell is None:
            for j, c in enumerate(cells):  # e.g. "| label | peak RSS | 812 MB |"
                if "rss" in c.lower():
                    rss_cell = c if _bytes_of(c) else (cells[j + 1] if j + 1 < len(cells) else None)
        batch = col("batch") if row else (cells[1] if len(cells) >= 6 else None)
        b = int(_num(batch)) if _num(batch) is not None else None
        if b is None:
            if rss_cell is not None:
                rss_by_label[label] = _bytes_of(rss_cell)
            continue
        pre = col("prefill") if row else cells[4]
        dec = col("decode") if row else cells[5]
        load = col("load") if row else (cells[6] if len(cells) > 6 else None)
        out[(label, b)] = {"prefill": _num(pre), "decode": _num(dec), "load": _num(load),
                           "rss": _bytes_of(rss_cell) if rss_cell else None}
    for (label, b), r in out.items():
        if r["rss"] is None and label in rss_by_label:
            r["rss"] = rss_by_label[label]
    return out


# --------------------------------------------------------------------------------------------
# table


def fmt(x, nd=0):
    if x is None:
        return "—"
    return f"{x:.{nd}f}"


def ratio(a, b):
    return f"{a / b:.2f}×" if a is not None and b else "—"


def table(models, tf, rust, experts_list, key):
    any_moe = any(moe for _, _, moe in models)
    head = ["model", "batch"] + (["transformers experts"] if any_moe else []) + [
        "energy-star prefill tok/s", "transformers prefill tok/s", "prefill ratio",
        "energy-star decode tok/s", "transformers decode tok/s", "decode ratio",
        "energy-star load", "transformers load", "energy-star peak RSS", "transformers peak RSS (load / run)"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, _, moe in models:
        for b in BATCHES:
            r = rust.get((label, b), {})
            for ex in (experts_list if moe else ["-"]):
                t = tf.get(key(label, ex))
                tb = t["batches"][str(b)] if t else {}
                tp, td = tb.get("prefill_tps"), tb.get("decode_tps")
                cells = [label, str(b)] + ([ex if moe else "—"] if any_moe else []) + [
                    fmt(r.get("prefill")), fmt(tp), ratio(r.get("prefill"), tp),
                    fmt(r.get("decode"), 1), fmt(td, 1), ratio(r.get("decode"), td),
                    (f"{r['load']:.2f} s" if r.get("load") is not None else "—"),
                    (f"{t['load_s']:.2f} s" if t else "—"),
                    (gb(r["rss"]) if r.get("rss") else "—"),
                    (f"{gb(t['rss_after_load'])} / {gb(t['rss_peak'])}" if t else "—")]
                rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


# --------------------------------------------------------------------------------------------

MODEL_SETS = ("scaled", "scaled-qwen3-moe", "tiny", "fixtures") + FIXTURE_NAMES
DTYPE_ALIASES = {"f32": "float32", "fp32": "float32", "bf16": "bfloat16"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", default="/tmp/decoders-bench")
    ap.add_argument("--skip-rust", action="store_true", help="only build and time transformers")
    ap.add_argument("--rust-output", help="read the Rust bench's rows from this file instead of running cargo")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--experts", default="grouped_mm",
                    help="transformers 5.x experts implementations for the MoE models, comma-separated "
                         "(default grouped_mm, transformers' own default; eager = its per-expert loop)")
    ap.add_argument("--models", default="scaled,fixtures",
                    help=f"comma-separated model sets: {', '.join(MODEL_SETS)} (default scaled,fixtures)")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                    help="transformers' weights and activations, and ENERGY_STAR_BENCH_DTYPE for the Rust bench")
    ap.add_argument("--rebuild", action="store_true", help="rebuild the scaled models")
    ap.add_argument("--reuse-transformers", action="store_true",
                    help="use WORKDIR/transformers.json from an earlier run (same dtype) instead of measuring; "
                         "models it lacks are measured")
    ap.add_argument("--worker", nargs=3, metavar=("FOLDER", "EXPERTS", "OUT_JSON"), help=argparse.SUPPRESS)
    ap.add_argument("--build-only", nargs="?", const="gpt-oss", choices=["gpt-oss", "qwen3-moe"],
                    help=argparse.SUPPRESS)
    a = ap.parse_args()

    if a.build_only:
        workdir = Path(a.workdir).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        (build if a.build_only == "gpt-oss" else build_qwen3)(workdir)
        return

    if a.worker:
        folder, ex, out = a.worker
        json.dump(worker(folder, ex, a.threads, a.dtype), open(out, "w"))
        return

    t_start = time.perf_counter()
    workdir = Path(a.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    which = [m.strip() for m in a.models.split(",") if m.strip()]
    unknown = [m for m in which if m not in MODEL_SETS]
    if unknown:
        sys.exit(f"unknown model set(s) {unknown}; known: {', '.join(MODEL_SETS)}")
    experts_list = [e.strip() for e in a.experts.split(",") if e.strip()]
    import transformers  # noqa: F401  (version for the log; workers import their own)
    tf_version = transformers.__version__
    if int(tf_version.split(".")[0]) < 5:
        log(f"transformers {tf_version}: no experts_implementation; timing its own expert loop as 'eager'")
        experts_list = ["eager"]

    pairs = []  # (label, folder) entries, then deduplicated and tagged MoE / not
    if "scaled" in which:
        info = None if a.rebuild else existing_build(workdir)
        if info is not None:
            log(f"gpt-oss model folders present in {workdir} (build.json matches); not rebuilding (--rebuild to force)")
        else:
            log(f"building the scaled gpt-oss model in {workdir} ...")
            p = subprocess.run([sys.executable, str(HERE), "--workdir", str(workdir), "--build-only", "gpt-oss"])
            info = existing_build(workdir)
            if p.returncode != 0 or info is None:
                sys.exit(f"build failed (exit {p.returncode})")
        total, active = count_params(SCALED)
        assert info["params"] == total, (info["params"], total)
        rtotal, ractive = count_params(dict(SCALED, layers=REAL["layers"], experts=REAL["experts"], vocab=REAL["vocab"]))
        log(f"\nscaled gpt-oss model: {total / 1e6:.1f} M parameters ({active / 1e6:.1f} M active per token); "
            f"gpt-oss-20b by the same count: {rtotal / 1e9:.2f} B ({ractive / 1e9:.2f} B active)")
        log(f"  {workdir / 'mxfp4'}: {gb(info['bytes']['mxfp4'])} on disk "
            f"({info['bytes']['mxfp4']} bytes; experts MXFP4 uint8, every other tensor bfloat16)")
        log(f"  {workdir / 'dense-f32'}: {gb(info['bytes']['dense-f32'])} on disk "
            f"({info['bytes']['dense-f32']} bytes; every tensor float32)")
        log(f"  scale: {SCALE_STATEMENT}")
        pairs += [(LABEL_SCALED_MXFP4, str(workdir / "mxfp4")), (LABEL_SCALED_DENSE, str(workdir / "dense-f32"))]
    if "scaled-qwen3-moe" in which:
        info = None if a.rebuild else existing_qwen3_build(workdir)
        if info is not None:
            log(f"Qwen3-MoE model folder present in {qwen3_dir(workdir)} (qwen3-moe.json matches); not rebuilding")
        else:
            log(f"building the scaled Qwen3-MoE model in {qwen3_dir(workdir)} ...")
            p = subprocess.run([sys.executable, str(HERE), "--workdir", str(workdir), "--build-only", "qwen3-moe"],
                               env=dict(os.environ, TRANSFORMERS_VERBOSITY="error"))
            info = existing_qwen3_build(workdir)
            if p.returncode != 0 or info is None:
                sys.exit(f"build failed (exit {p.returncode})")
        total, active = count_params_qwen3(SCALED_QWEN3)
        assert info["params"] == total, (info["params"], total)
        rtotal, ractive = count_params_qwen3(dict(SCALED_QWEN3, layers=REAL_QWEN3["layers"],
                                                  experts=REAL_QWEN3["experts"], vocab=REAL_QWEN3["vocab"]))
        log(f"\nscaled Qwen3-MoE model: {total / 1e6:.1f} M parameters ({active / 1e6:.1f} M active per token); "
            f"Qwen3-30B-A3B by the same count: {rtotal / 1e9:.2f} B ({ractive / 1e9:.2f} B active)")
        log(f"  {qwen3_dir(workdir)}: {gb(info['bytes'])} on disk ({info['bytes']} bytes; every tensor float32)")
        log(f"  scale: {QWEN3_SCALE_STATEMENT}")
        pairs.append((LABEL_SCALED_QWEN3, str(qwen3_dir(workdir))))
    names = set()
    if "tiny" in which:
        names.add("tiny-gpt-oss")
    if "fixtures" in which:
        names.update(FIXTURE_NAMES)
    names.update(m for m in which if m in FIXTURE_NAMES)
    pairs += fixture_models(names)
    models, seen = [], set()
    for label, folder in pairs:
        if label not in seen:
            seen.add(label)
            models.append((label, folder, is_moe(folder)))
    labels = {m[0] for m in models}
    log("\nmodels: " + "; ".join(f"{label}{' (MoE)' if moe else ''}" for label, _, moe in models))

    def key(label, ex):
        return f"{label}|{ex}|{a.dtype}"

    runs = [(label, folder, ex) for label, folder, moe in models for ex in (experts_list if moe else ["-"])]

    # ---- transformers
    tf_json = workdir / "transformers.json"
    saved = {}
    if tf_json.exists():
        try:
            saved = json.load(open(tf_json))
        except ValueError:
            saved = {}
    t_py = time.perf_counter()
    tf = {}
    if a.reuse_transformers:
        tf = {key(label, ex): saved[key(label, ex)] for label, _, ex in runs if key(label, ex) in saved}
        log(f"\ntransformers numbers from {tf_json}: {len(tf)} of {len(runs)} model/experts entries"
            + ("" if len(tf) == len(runs) else "; measuring the others"))
    for label, folder, ex in runs:
        if key(label, ex) in tf:
            continue
        out = workdir / "worker.json"
        if out.exists():
            out.unlink()
        log(f"\n== transformers {tf_version}: {label} ({folder}), {a.dtype}, eager attention, "
            + (f"experts {ex}" if ex != "-" else "no experts") + f", {a.threads} threads")
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, str(HERE), "--threads", str(a.threads), "--dtype", a.dtype,
                            "--worker", folder, ex, str(out)], env=dict(os.environ, TRANSFORMERS_VERBOSITY="error"))
        if p.returncode != 0 or not out.exists():
            log(f"   FAILED (exit {p.returncode})")
            continue
        r = json.load(open(out))
        out.unlink()
        tf[key(label, ex)] = r
        log(f"   {r['class']} loaded in {r['load_s']:.2f} s; parameter dtypes {r['loaded_dtypes']}"
            + (f", {r['cast']}" if r["cast"] else "") + f"; implementations {r['impl']}")
        log(f"   load average at start {r.get('loadavg_at_start')}; peak RSS: {gb(r['rss_before_load'])} "
            f"before load (python + torch + transformers), "
            f"{gb(r['rss_after_load'])} after load, {gb(r['rss_peak'])} after the run")
        for b in BATCHES:
            x = r["batches"][str(b)]
            log(f"   batch {b}: prefill {x['prefill_tps']:.0f} tok/s, decode {x['decode_tps']:.1f} tok/s "
                f"(runs: {', '.join(f'{v:.0f}' for v in x['prefill_all'])} / "
                f"{', '.join(f'{v:.1f}' for v in x['decode_all'])}; CPU busy "
                f"{', '.join(f'{v:.2f}' for v in x['cpu_per_wall'])} of {a.threads} cores); finite {x['finite']}, "
                f"same tokens in all {RUNS} runs {x['deterministic']}")
        x1, x8 = r["batches"]["1"], r["batches"]["8"]
        log(f"   first 8 generated ids, prompt 0: batch 1 {x1['tokens'][0][:8]}, "
            f"batch 8 row 0 {x8['tokens'][0][:8]}"
            + ("" if x1["tokens"][0] == x8["tokens"][0] else "  (batch 1 and batch 8 row 0 differ)"))
        log(f"   ({time.perf_counter() - t0:.0f} s)")
    saved.update(tf)
    json.dump(saved, open(tf_json, "w"), indent=1)
    py_s = time.perf_counter() - t_py

    # ---- checks: all measured, finite, deterministic, MXFP4 folder == dense folder (same model bit for bit)
    problems = [f"no transformers numbers for {label!r}" + (f" (experts {ex})" if ex != "-" else "")
                for label, _, ex in runs if key(label, ex) not in tf]
    for k, r in tf.items():
        for b, x in r["batches"].items():
            if not x["finite"]:
                problems.append(f"{k} batch {b}: non-finite logits")
            if not x["deterministic"]:
                problems.append(f"{k} batch {b}: greedy tokens differ between runs")
    noisy = []
    for k, r in tf.items():
        name = k.rsplit("|", 2)[0] + ("" if k.split("|")[-2] == "-" else f", experts {k.split('|')[-2]}")
        for b, x in r["batches"].items():
            for what in ("prefill_all", "decode_all"):
                v = x[what]
                if min(v) > 0 and max(v) / min(v) > 1.5:
                    noisy.append(f"{name} batch {b} {what[:-4]}: runs {', '.join(f'{y:.1f}' for y in v)}")
            starved = [c for c in x.get("cpu_per_wall", []) if c < 0.75 * r["threads"]]
            if starved and r["threads"] > 1:
                noisy.append(f"{name} batch {b}: CPU busy "
                             f"{', '.join(f'{c:.2f}' for c in x['cpu_per_wall'])} of {r['threads']} cores")
    for ex in experts_list:
        for mx, dn in ((LABEL_SCALED_MXFP4, LABEL_SCALED_DENSE), (LABEL_TINY_MXFP4, LABEL_TINY_DENSE)):
            if key(mx, ex) in tf and key(dn, ex) in tf:
                for b in BATCHES:
                    same = tf[key(mx, ex)]["batches"][str(b)]["tokens"] == tf[key(dn, ex)]["batches"][str(b)]["tokens"]
                    log(f"transformers ({ex}) greedy tokens, {mx} vs {dn}, batch {b}: "
                        + ("identical" if same else "DIFFER"))
                    if not same:
                        problems.append(f"{mx} vs {dn} ({ex}) batch {b}: tokens differ")
    if len(experts_list) > 1:
        for label, _, moe in models:
            toks = {ex: tf[key(label, ex)]["batches"]["1"]["tokens"] for ex in experts_list if key(label, ex) in tf}
            if moe and len({json.dumps(v) for v in toks.values()}) > 1:
                log(f"note: {label}: greedy tokens (batch 1) differ between experts implementations {list(toks)}")

    # ---- Rust
    rust, rust_text = {}, None
    if a.rust_output:
        rust_text = Path(a.rust_output).read_text()
        rust = parse_rust(rust_text, labels)
        log(f"\nenergy-star rows read from {a.rust_output}: {len(rust)}")
    elif not a.skip_rust:
        rust_text = run_rust(models, a.threads, a.dtype, workdir / "rust-bench-output.md")
        rust = parse_rust(rust_text, labels)
    else:
        log(f"\n(--skip-rust) to fill the energy-star columns later:\n  ENERGY_STAR_BENCH_MODELS="
            f"'{rust_env_value(models)}' RAYON_NUM_THREADS={a.threads} ENERGY_STAR_BENCH_DTYPE={a.dtype} "
            f"cargo bench -p energy-star-engine-local --bench inference | tee {workdir / 'rust-bench-output.md'}\n"
            f"  then rerun this script with the same --models/--dtype and --reuse-transformers "
            f"--rust-output {workdir / 'rust-bench-output.md'}")
    rust_dt = None
    if rust_text is not None:
        said = rust_dtype(rust_text)
        rust_dt = DTYPE_ALIASES.get(said, said) if said else None
        if rust_dt is None and a.dtype != "float32":
            problems.append(f"the Rust bench does not say its dtype (no `dtype: ...` line): this inference.rs "
                            f"ignores ENERGY_STAR_BENCH_DTYPE and ran float32, not {a.dtype}")
        elif rust_dt is not None and rust_dt != a.dtype:
            problems.append(f"the Rust bench ran {said}, transformers {a.dtype}")
        for label, _, _ in models:
            for b in BATCHES:
                if (label, b) not in rust:
                    problems.append(f"no energy-star row for {label!r} batch {b}")

    # ---- table
    md = table(models, tf, rust, experts_list, key)
    any_tf = next(iter(tf.values()), None)
    moe_labels = [label for label, _, moe in models if moe]
    defaults = sorted({str(r["impl"].get("default_experts")) for r in tf.values()
                       if r["impl"].get("default_experts")})
    notes = [
        f"transformers {any_tf['transformers'] if any_tf else tf_version}, torch "
        f"{any_tf['torch'] if any_tf else '?'}, {a.threads} threads, {a.dtype} weights and activations, eager attention"
        + (f"; energy-star {rust_dt or 'float32'}" if rust_text is not None else ""),
    ]
    if moe_labels:
        notes.append(
            "transformers experts implementation per row on the MoE models (gpt-oss, Qwen3-MoE, Mixtral)"
            + (f"; the one transformers picks when none is asked for: {', '.join(defaults)}" if defaults else "")
            + "; models without experts: —")
    if any(label in (LABEL_SCALED_MXFP4, LABEL_TINY_MXFP4) for label in labels):
        notes.append(
            "MXFP4 rows: transformers (no `kernels` MXFP4 kernels on CPU) dequantizes the experts at load "
            + (f"to bfloat16 whatever dtype is asked (transformers 4.x), cast here to {a.dtype}"
               if any(r.get("cast") for r in tf.values()) else f"to the requested dtype, {a.dtype}")
            + ", so it runs the same dense model as the dense rows; energy-star keeps the experts packed "
            "(4.25 bits per weight) and multiplies them packed")
    if "tiny-gemma3-mm fixture" in labels:
        notes.append("tiny-gemma3-mm: transformers runs the whole Gemma3ForConditionalGeneration (what "
                     "AutoModelForCausalLM gives for its config) on text-only ids")
    if "scaled" in which:
        notes.append(f"gpt-oss scaled model: {SCALE_STATEMENT}")
    if "scaled-qwen3-moe" in which:
        notes.append(f"Qwen3-MoE scaled model: {QWEN3_SCALE_STATEMENT}")
    notes += [
        f"{PROMPT_TOKENS} prompt tokens, {NEW_TOKENS} new tokens (prefill + {NEW_TOKENS - 1} decode steps), greedy, "
        f"median of {RUNS} runs after a {WARMUP_TOKENS}-token warmup; ratio = energy-star / transformers",
        "transformers peak RSS = VmHWM of a fresh process after from_pretrained / after all runs (includes "
        "python, torch and transformers)",
    ]
    log("\n" + md + "\n\n" + "\n".join(f"- {n}" for n in notes))
    (workdir / "side-by-side.md").write_text(md + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n")
    log(f"\n(table saved to {workdir / 'side-by-side.md'}; transformers side {py_s:.0f} s, "
        f"total {time.perf_counter() - t_start:.0f} s)")
    if noisy:
        log("\nNOISY (3 runs more than 1.5x apart, or this process got less than 3/4 of its cores: another "
            "process was probably using them; the median hides one bad run, not two; rerun on a quiet "
            "machine):\n  " + "\n  ".join(noisy))
    if problems:
        log("\nPROBLEMS:\n  " + "\n  ".join(problems))
        sys.exit(1)


if __name__ == "__main__":
    main()
