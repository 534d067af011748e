#!/usr/bin/env python3
"""The five forward tasks on CPU, energy-star (candle) side by side with Hugging Face transformers.

Writes the configs of the models AI Energy Score's task configs name, at their real shapes, and
times one forward pass of each at batch 1 and 8 on both sides, with random weights (what
`backend.no_weights: true`, set by those configs, runs), the same synthetic inputs and the same
threads. Prints one Markdown table (also WORKDIR/side-by-side.md).

  model                          task                   config (as the Hub's config.json)
  google/vit-base-patch16-224    image-classification   ViT-base/16, 224 px, 1000 labels
  lvwerra/distilbert-imdb        text-classification    DistilBERT-base, 2 labels
  deepset/electra-base-squad2    question-answering     ELECTRA-base discriminator + QA head
  sentence-transformers/         sentence-similarity    BERT, 6 layers, hidden 384 (MiniLM-L6)
    all-MiniLM-L6-v2
  facebook/detr-resnet-50        object-detection       DETR, timm ResNet-50, 100 queries,
                                                        91 labels, at 800 × 1066 px (a 4:3
                                                        image at the processor's shortest
                                                        edge 800)

Inputs: token ids (i*7 + b*13) % 1000 + 1000 (ordinary WordPiece ids), no padding, 256 tokens for
DistilBERT (a truncated movie review), 192 for ELECTRA (a SQuAD question + context), 32 for MiniLM
(a sentence pair tokenized together, as optimum-benchmark's preprocessing does); pixels
((i + b*31) % 251) / 125 - 1 in channels-first float32. Both sides: float32, torch / rayon
threads = --threads (default 2), torch.set_num_interop_threads(1), torch.inference_mode(),
transformers' default attention (sdpa), one untimed warmup pass per batch size, then RUNS timed
passes (default 3; 2 for DETR, 30 for MiniLM) and the median of batch / wall time. Each
transformers model runs in a fresh subprocess; load = from_config wall time (random init) on that
side, the model build from config.json with seeded random weights on ours.

Usage: python crates/tasks/benches/tasks_side_by_side.py [--workdir /tmp/tasks-bench]
           [--threads 2] [--models vit,distilbert,electra,minilm,detr] [--skip-rust]
The Rust side is `cargo bench -p energy-star-tasks --bench forward` with ENERGY_STAR_BENCH_TASKS
set to the folders written here (crates/tasks/benches/forward.rs).
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()
ROOT = HERE.parents[3]

MODELS = {
    "vit": dict(label="ViT-base/16 (google/vit-base-patch16-224)", task="image-classification", shape="224x224"),
    "distilbert": dict(label="DistilBERT-base (lvwerra/distilbert-imdb)", task="text-classification", shape="256"),
    "electra": dict(label="ELECTRA-base (deepset/electra-base-squad2)", task="question-answering", shape="192"),
    "minilm": dict(label="MiniLM-L6 (sentence-transformers/all-MiniLM-L6-v2)", task="sentence-similarity", shape="32"),
    "detr": dict(label="DETR-R50 (facebook/detr-resnet-50)", task="object-detection", shape="800x1066"),
}


def write_configs(workdir: Path, names):
    import transformers as T
    made = {}
    for name in names:
        d = workdir / name
        d.mkdir(parents=True, exist_ok=True)
        if name == "vit":
            c = T.ViTConfig(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                            image_size=224, patch_size=16, num_labels=1000,
                            architectures=["ViTForImageClassification"])
        elif name == "distilbert":
            c = T.DistilBertConfig(dim=768, n_layers=6, n_heads=12, hidden_dim=3072, vocab_size=30522, num_labels=2,
                                   architectures=["DistilBertForSequenceClassification"])
        elif name == "electra":
            c = T.ElectraConfig(vocab_size=30522, embedding_size=768, hidden_size=768, num_hidden_layers=12,
                                num_attention_heads=12, intermediate_size=3072, max_position_embeddings=512,
                                architectures=["ElectraForQuestionAnswering"])
        elif name == "minilm":
            c = T.BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                             intermediate_size=1536, max_position_embeddings=512, architectures=["BertModel"])
        elif name == "detr":
            c = T.DetrConfig(use_pretrained_backbone=False, num_labels=91, architectures=["DetrForObjectDetection"])
        c.save_pretrained(d)
        made[name] = d
    return made


WORKER = r'''
import json, statistics, sys, time
import torch, transformers as T
name, folder, task, shape, threads, runs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
torch.set_num_threads(threads); torch.set_num_interop_threads(1); torch.manual_seed(0)
config = T.AutoConfig.from_pretrained(folder)
auto = {"image-classification": T.AutoModelForImageClassification, "text-classification": T.AutoModelForSequenceClassification,
        "question-answering": T.AutoModelForQuestionAnswering, "sentence-similarity": T.AutoModel,
        "object-detection": T.AutoModelForObjectDetection}[task]
t = time.perf_counter(); model = auto.from_config(config, dtype=torch.float32).eval(); load_s = time.perf_counter() - t
def inputs(b):
    if "x" in shape:
        h, w = map(int, shape.split("x"))
        i = torch.arange(3 * h * w)
        px = torch.stack([(((i + k * 31) % 251).float() / 125.0 - 1.0).reshape(3, h, w) for k in range(b)])
        out = {"pixel_values": px}
        if task == "object-detection":
            out["pixel_mask"] = torch.ones(b, h, w, dtype=torch.long)
        return out
    n = int(shape)
    ids = torch.tensor([[(i * 7 + k * 13) % 1000 + 1000 for i in range(n)] for k in range(b)])
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
rows = []
with torch.inference_mode():
    for b in (1, 8):
        x = inputs(b)
        model(**x)
        rates = []
        for _ in range(runs):
            t = time.perf_counter(); model(**x); rates.append(b / (time.perf_counter() - t))
        rows.append({"batch": b, "samples_per_s": statistics.median(rates)})
print(json.dumps({"name": name, "load_s": load_s, "attn": getattr(config, "_attn_implementation", None), "rows": rows,
                  "transformers": T.__version__, "torch": torch.__version__}))
'''


def time_transformers(name, folder, threads, runs):
    spec = MODELS[name]
    out = subprocess.run([sys.executable, "-c", WORKER, name, str(folder), spec["task"], spec["shape"], str(threads),
                          str(runs)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def time_rust(folders, threads, runs_of):
    plan = ";".join(f"{name}={folders[name]}={MODELS[name]['task']}={MODELS[name]['shape']}" for name in folders)
    rows = {}
    # DETR's timed runs are fewer: each takes seconds. One cargo call per run count.
    for runs in sorted(set(runs_of.values())):
        subset = ";".join(p for p in plan.split(";") if runs_of[p.split("=")[0]] == runs)
        env = dict(os.environ, ENERGY_STAR_BENCH_TASKS=subset, ENERGY_STAR_BENCH_RUNS=str(runs),
                   RAYON_NUM_THREADS=str(threads))
        out = subprocess.run(["cargo", "bench", "-q", "-p", "energy-star-tasks", "--bench", "forward"], cwd=ROOT,
                             env=env, capture_output=True, text=True, check=True)
        for line in out.stdout.splitlines():
            m = re.match(r"\| (\w+) \| (\d+) \| [^|]+ \| ([\d.]+) \| ([\d.]+) s \|", line)
            if m:
                rows[(m.group(1), int(m.group(2)))] = (float(m.group(3)), float(m.group(4)))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", default="/tmp/tasks-bench")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--skip-rust", action="store_true")
    args = ap.parse_args()
    names = [n for n in args.models.split(",") if n]
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        sys.exit(f"unknown models {unknown}; known: {', '.join(MODELS)}")
    workdir = Path(args.workdir)
    folders = write_configs(workdir, names)
    # Fewer timed runs where one takes seconds (DETR), more where one takes milliseconds (MiniLM,
    # whose median of 3 moves by half between runs on a shared machine).
    runs_of = {n: {"detr": 2, "minilm": 10 * args.runs}.get(n, args.runs) for n in names}
    py = {}
    for n in names:
        t = time.time()
        py[n] = time_transformers(n, folders[n], args.threads, runs_of[n])
        print(f"transformers {n}: {py[n]['rows']} (load {py[n]['load_s']:.2f} s, {time.time() - t:.0f} s)", file=sys.stderr)
    rust = {} if args.skip_rust else time_rust(folders, args.threads, runs_of)
    first = py[names[0]]
    lines = [
        f"transformers {first['transformers']}, torch {first['torch']}, attention {first['attn']}; "
        f"{args.threads} threads each side, float32, random weights",
        "",
        "| model (task) | input | batch | energy-star samples/s | transformers samples/s | ratio |",
        "|---|---|---|---|---|---|",
    ]
    for n in names:
        spec = MODELS[n]
        shape = spec["shape"]
        described = f"{shape.replace('x', '×')} px" if "x" in shape else f"{shape} tokens"
        for row in py[n]["rows"]:
            b = row["batch"]
            ours = rust.get((n, b))
            ratio = f"{ours[0] / row['samples_per_s']:.2f}×" if ours else "—"
            ours_s = f"{ours[0]:.2f}" if ours else "—"
            lines.append(f"| {spec['label']} ({spec['task']}) | {described} | {b} | {ours_s} | {row['samples_per_s']:.2f} | {ratio} |")
    table = "\n".join(lines)
    (workdir / "side-by-side.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
