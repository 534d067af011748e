//! CPU throughput of the task engine's forward pass: samples per second at batch 1 and 8, random
//! weights (`no_weights`) built from each folder's config.json, synthetic inputs of a fixed
//! shape, printed as Markdown rows (`| label | batch | input | samples/s | load |`).
//!
//! Run by `benches/tasks_side_by_side.py`, which writes the real models' configs and times
//! transformers on the same shapes; alone: `ENERGY_STAR_BENCH_TASKS="LABEL=DIR=TASK=SHAPE;..."
//! cargo bench -p energy-star-tasks --bench forward`, where SHAPE is a token count for text
//! tasks (e.g. `256`) or HEIGHTxWIDTH for images (`224x224`), and `ENERGY_STAR_BENCH_RUNS`
//! the timed runs per batch (default 3; the median is printed).

use std::path::PathBuf;
use std::time::Instant;

use energy_star_tasks::{Prepared, PreparedImage, Task, TaskModel, TaskModelSpec};

enum Shape {
    Tokens(usize),
    Pixels(usize, usize),
}

impl Shape {
    fn parse(s: &str) -> Shape {
        match s.split_once('x') {
            Some((h, w)) => Shape::Pixels(h.parse().expect("height"), w.parse().expect("width")),
            None => Shape::Tokens(s.parse().expect("token count")),
        }
    }

    fn describe(&self) -> String {
        match self {
            Shape::Tokens(n) => format!("{n} tokens"),
            Shape::Pixels(h, w) => format!("{h}×{w} px"),
        }
    }
}

/// `batch` rows of this shape: token ids `(i·7 + b·13) mod 1000 + 1000` (ordinary WordPiece ids,
/// no padding), or pixels of a smooth pattern in the normalised range.
fn inputs(shape: &Shape, batch: usize) -> Prepared {
    match *shape {
        Shape::Tokens(n) => Prepared::Text(
            (0..batch)
                .map(|b| {
                    let ids: Vec<u32> = (0..n).map(|i| ((i * 7 + b * 13) % 1000 + 1000) as u32).collect();
                    tokenizers::Encoding::new(
                        ids,
                        vec![0; n],
                        vec![String::new(); n],
                        vec![None; n],
                        vec![(0, 0); n],
                        vec![0; n],
                        vec![1; n],
                        Vec::new(),
                        Default::default(),
                    )
                })
                .collect(),
        ),
        Shape::Pixels(h, w) => Prepared::Images(
            (0..batch)
                .map(|b| PreparedImage {
                    pixels: (0..3 * h * w).map(|i| (((i + b * 31) % 251) as f32 / 125.0) - 1.0).collect(),
                    height: h,
                    width: w,
                    valid: (h, w),
                    original: (h, w),
                })
                .collect(),
        ),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn bench(label: &str, dir: &str, task: Task, shape: &Shape, runs: usize) {
    let spec = TaskModelSpec {
        model: dir.to_string(),
        task,
        device: "cpu".into(),
        dtype: "float32".into(),
        random_weights: Some(42),
    };
    let t = Instant::now();
    let model = TaskModel::open(&spec, &|_: &str| None).unwrap_or_else(|e| panic!("{label}: {e}"));
    let load_s = t.elapsed().as_secs_f64();
    for batch in [1usize, 8] {
        let prepared = inputs(shape, batch);
        // One untimed pass warms caches and the thread pool.
        model.run(&prepared, 0..batch).expect("warmup");
        model.synchronize().expect("sync");
        let mut rates = Vec::with_capacity(runs);
        for _ in 0..runs {
            let t = Instant::now();
            model.run(&prepared, 0..batch).expect("forward");
            model.synchronize().expect("sync");
            rates.push(batch as f64 / t.elapsed().as_secs_f64());
        }
        println!("| {label} | {batch} | {} | {:.2} | {load_s:.2} s |", shape.describe(), median(rates));
    }
}

fn main() {
    let Ok(plan) = std::env::var("ENERGY_STAR_BENCH_TASKS") else {
        eprintln!(
            "ENERGY_STAR_BENCH_TASKS is not set: run crates/tasks/benches/tasks_side_by_side.py, which writes the models' configs and sets it"
        );
        return;
    };
    let runs = std::env::var("ENERGY_STAR_BENCH_RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(3);
    println!("| model | batch | input | samples/s | load |");
    println!("|---|---|---|---|---|");
    for entry in plan.split(';').filter(|e| !e.trim().is_empty()) {
        let parts: Vec<&str> = entry.split('=').collect();
        let [label, dir, task, shape] = parts[..] else { panic!("{entry}: LABEL=DIR=TASK=SHAPE") };
        let task = Task::from_name(task).unwrap_or_else(|| panic!("{task}: not a task"));
        assert!(PathBuf::from(dir).join("config.json").is_file(), "{dir} has no config.json");
        bench(label, dir, task, &Shape::parse(shape), runs);
    }
}
