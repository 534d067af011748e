//! `energy-star report`, `rate` and `batch` through the real binary: the page and its
//! figures, stars from a table, a model list run and resumed, cluster manifests.

use std::path::Path;

use energy_star_tests::{energy_star, small_offline_run};

/// A small offline optimum run in `cwd/results`.
fn offline_run(cwd: &Path) {
    small_offline_run(cwd, "optimum", 4, &[], &[]).success();
}

#[test]
fn a_run_gets_a_page_with_its_figures_sources_and_warnings() {
    let cwd = tempfile::tempdir().expect("tmp");
    offline_run(cwd.path());
    let r = cwd.path().join("results");
    let out = energy_star(cwd.path(), &["report", r.to_str().expect("utf-8")], &[]).success();
    assert!(out.stdout().contains("report.html"));
    let html = std::fs::read_to_string(r.join("report.html")).expect("html");
    // Self-contained: the figures are inline SVG, the phases shaded on the power chart.
    for id in ["fig-power", "fig-phases"] {
        assert!(html.contains(&format!("id=\"{id}\"")), "{id} missing");
    }
    assert!(
        html.matches("class=\"phase\"").count() >= 5,
        "load_dataset, preprocess_dataset, load_model, prefill, generate shaded"
    );
    assert!(html.contains("<polyline class=\"series\""));
    assert!(!html.contains("src=\"http") && !html.contains("<script"), "nothing fetched");
    // Every figure's source and the run's warnings are on the page.
    assert!(html.contains("estimate-tdp") && html.contains("no: an estimate"));
    assert!(html.contains("n/a: backend.device=cpu: the run used no GPU"));
    assert!(html.contains("not a measurement"));
    for f in ["power.svg", "energy_by_phase.svg"] {
        let svg = std::fs::read_to_string(r.join("figures").join(f)).expect("figure");
        assert!(svg.starts_with("<?xml") && svg.trim_end().ends_with("</svg>"), "{f}");
    }
    // Not a results folder: a clear error.
    let empty = tempfile::tempdir().expect("tmp");
    energy_star(cwd.path(), &["report", empty.path().to_str().expect("utf-8")], &[])
        .fails_with(1, &["is not a results folder"]);
}

/// The `<li>` items of the page's Warnings list.
fn warnings_of(html: &str) -> Vec<&str> {
    let Some((_, rest)) = html.split_once("<h2>Warnings</h2><ul>") else { return Vec::new() };
    let list = rest.split_once("</ul>").map(|(l, _)| l).unwrap_or(rest);
    list.split("<li").filter(|x| !x.is_empty()).collect()
}

#[test]
fn each_backends_page_says_what_its_own_run_measured_and_every_warning_once() {
    // optimum: decode is derived (generate − prefill), and the caption says so.
    let cwd = tempfile::tempdir().expect("tmp");
    offline_run(cwd.path());
    let r = cwd.path().join("results");
    energy_star(cwd.path(), &["report", r.to_str().expect("utf-8")], &[]).success();
    let html = std::fs::read_to_string(r.join("report.html")).expect("html");
    assert!(html.contains("decode is derived: generate − prefill"), "optimum's caption");
    let warnings = warnings_of(&html);
    assert!(!warnings.is_empty(), "an offline run has notices (no NVML, estimates)");
    for (i, w) in warnings.iter().enumerate() {
        assert!(!warnings[i + 1..].contains(w), "listed twice: {w}");
    }

    // pytorch: token counts in its facts give a per-token section; no optimum caption.
    let cwd = tempfile::tempdir().expect("tmp");
    energy_star(
        cwd.path(),
        &[
            "--config-name",
            "text_generation_offline",
            "scenario.num_samples=4",
            "scenario.generate_kwargs.max_new_tokens=4",
            "scenario.generate_kwargs.min_new_tokens=4",
        ],
        &[("BENCHMARK_BACKEND", "pytorch")],
    )
    .success();
    let r = cwd.path().join("results");
    energy_star(cwd.path(), &["report", r.to_str().expect("utf-8")], &[]).success();
    let html = std::fs::read_to_string(r.join("report.html")).expect("html");
    assert!(html.contains("<h2>Per request and per token</h2>"), "per-token section");
    assert!(html.contains("<th>tokens</th><td>") && html.contains("16 output (counted by engine)"), "token counts");
    assert!(html.contains("<th>GPU energy per output token</th><td>n/a: the run has no GPU total</td>"));
    assert!(!html.contains("generate − prefill") && !html.contains("decode is derived"), "no optimum caption");
    let warnings = warnings_of(&html);
    for (i, w) in warnings.iter().enumerate() {
        assert!(!warnings[i + 1..].contains(w), "listed twice: {w}");
    }
}

/// Headless Chromium (Debian's `chromium`) loads the page: it renders, the figures are in
/// the rendered document, and a screenshot of it is not blank.
#[test]
#[ignore = "needs Debian's chromium; .ci/run installs it and runs this test"]
fn the_page_renders_in_headless_chromium() {
    let chromium = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| std::process::Command::new(c).arg("--version").output().is_ok_and(|o| o.status.success()))
        .expect("chromium on PATH");
    let cwd = tempfile::tempdir().expect("tmp");
    offline_run(cwd.path());
    let r = cwd.path().join("results");
    energy_star(cwd.path(), &["report", r.to_str().expect("utf-8")], &[]).success();
    let url = format!("file://{}", r.join("report.html").display());
    let profile = cwd.path().join("chromium-profile");
    let base = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"];
    let user_dir = format!("--user-data-dir={}", profile.display());
    let dom = std::process::Command::new(chromium)
        .args(base)
        .arg(&user_dir)
        .args(["--dump-dom", &url])
        .output()
        .expect("chromium");
    let dom = String::from_utf8_lossy(&dom.stdout);
    for id in ["fig-power", "fig-phases"] {
        assert!(
            dom.contains(&format!("id=\"{id}\"")),
            "{id} not in the rendered DOM:\n{}",
            dom.chars().take(500).collect::<String>()
        );
    }
    assert!(dom.contains("Energy per phase"));
    let shot = cwd.path().join("page.png");
    let st = std::process::Command::new(chromium)
        .args(base)
        .arg(&user_dir)
        .args([&format!("--screenshot={}", shot.display()), "--window-size=1000,1600", &url])
        .output()
        .expect("chromium");
    assert!(shot.exists(), "no screenshot: {}", String::from_utf8_lossy(&st.stderr));
    let png = std::fs::read(&shot).expect("png");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    // A blank page compresses to a few kB; the charts and tables do not.
    assert!(png.len() > 30_000, "screenshot is {} bytes: blank?", png.len());
}

#[test]
fn stars_come_from_five_equal_bands_per_cohort() {
    let cwd = tempfile::tempdir().expect("tmp");
    let table = cwd.path().join("results.csv");
    std::fs::write(&table, "model_name,model_class,task,wh_per_1000_queries\nsmall,A,text_gen,1.0\nmid,A,text_gen,2.9\nbig,A,text_gen,5.0\nhuge,C,text_gen,90\nbroken,A,text_gen,\n").expect("write");
    let out = energy_star(cwd.path(), &["rate", table.to_str().expect("utf-8")], &[]).success();
    let csv = out.stdout();
    // Class A spans 1..5 Wh: 1.0 → 5★, 2.9 → floor(5·1.9/4)=2 → 3★, 5.0 → 1★; C alone → 5★.
    assert!(csv.contains("small,text_gen,A,1,5,3,1,5"), "{csv}");
    assert!(csv.contains("mid,text_gen,A,2.9,3,3,1,5"), "{csv}");
    assert!(csv.contains("big,text_gen,A,5,1,3,1,5"), "{csv}");
    assert!(csv.contains("huge,text_gen,C,90,5,1,90,90"), "{csv}");
    assert!(out.stderr().contains("broken has no wh_per_1000_queries"));
    // Written to a file, the count says how many rows got stars (the row without a figure none).
    let rated = cwd.path().join("rated.csv");
    let out = energy_star(
        cwd.path(),
        &["rate", table.to_str().expect("utf-8"), "--output", rated.to_str().expect("utf-8")],
        &[],
    )
    .success();
    assert!(
        out.stdout().starts_with("rated 4 of 5 models by wh_per_1000_queries (1 without a figure)"),
        "{}",
        out.stdout()
    );
    assert_eq!(std::fs::read_to_string(&rated).expect("rated"), csv);
    std::fs::write(&table, "model,gpu_energy_wh\na,many\n").expect("write");
    energy_star(cwd.path(), &["rate", table.to_str().expect("utf-8")], &[])
        .fails_with(1, &["gpu_energy_wh = \"many\" is not a number"]);
}

#[test]
fn a_model_list_runs_into_one_table_and_resumes() {
    let cwd = tempfile::tempdir().expect("tmp");
    let list = cwd.path().join("models.csv");
    // The toy model runs; the second id is not in any cache, so its run fails and is recorded.
    std::fs::write(&list, ",Models to Add,Priority (1=hi),Class,Task,Reasoning State,Chat Template\n0,energy-star/toy-llama,1,A,text_gen,Off,\n1,https://huggingface.co/absent/model,2,A,text_gen,Off,\n").expect("write");
    let out = cwd.path().join("batch");
    let args = [
        "batch",
        list.to_str().expect("utf-8"),
        "--output-dir",
        out.to_str().expect("utf-8"),
        "--config-name",
        "text_generation_offline",
        "--num-prompts",
        "4",
        "--",
        "scenario.warmup_runs=0",
        "scenario.input_shapes.batch_size=4",
    ];
    let home = cwd.path().to_str().expect("utf-8");
    let run =
        energy_star(cwd.path(), &args, &[("BENCHMARK_BACKEND", "pytorch"), ("HF_HOME", home), ("HF_HUB_OFFLINE", "1")]);
    assert_eq!(run.code(), Some(1), "one model failed: {}", run.stderr());
    let master = std::fs::read_to_string(out.join("master_results.csv")).expect("master");
    let mut rdr = csv_rows(&master);
    let header = rdr.remove(0);
    assert_eq!(header[..4], ["model_name", "model_class", "task", "reasoning_state"]);
    let col = |name: &str| header.iter().position(|h| h == name).expect("column");
    let toy = rdr.iter().find(|r| r[0] == "energy-star/toy-llama").expect("toy row");
    assert_eq!(toy[col("successful_prompts")], "4");
    assert_eq!(toy[col("total_completion_tokens")], "40", "reasoning off: 10 new tokens × 4");
    assert_eq!(toy[col("complete")], "true");
    assert!(toy[col("error_message")].is_empty());
    assert!(toy[col("gpu_energy_wh")].is_empty(), "no GPU: empty, not 0");
    let absent = rdr.iter().find(|r| r[0] == "absent/model").expect("absent row");
    assert!(absent[col("error_message")].contains("absent/model"), "{:?}", absent);
    assert!(out.join("logs/absent-model-off.log").exists());
    // Resume: the finished model is skipped, the failed one is tried again.
    let again =
        energy_star(cwd.path(), &args, &[("BENCHMARK_BACKEND", "pytorch"), ("HF_HOME", home), ("HF_HUB_OFFLINE", "1")]);
    assert!(again.stderr().contains("energy-star/toy-llama (off) is done already; skipped"), "{}", again.stderr());
    assert!(again.stdout().contains("1 run, 1 skipped"), "{}", again.stdout());
    // --collect rebuilds the same table from the folders.
    let c = energy_star(
        cwd.path(),
        &["batch", list.to_str().expect("utf-8"), "--output-dir", out.to_str().expect("utf-8"), "--collect"],
        &[],
    )
    .fails_with(1, &[]);
    assert!(c.stdout().contains("2 runs collected (1 failed or incomplete), 0 missing"), "{}", c.stdout());
    let collected = std::fs::read_to_string(out.join("master_results.csv")).expect("master");
    assert!(collected.contains("energy-star/toy-llama,A,text_gen,off,4,4"), "{collected}");
}

fn csv_rows(text: &str) -> Vec<Vec<String>> {
    text.lines().map(split_csv_line).collect()
}

/// Enough CSV for these tables (quoted cells may hold commas).
fn split_csv_line(l: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    for c in l.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(String::new()),
            c => out.last_mut().expect("cell").push(c),
        }
    }
    out
}

fn emit(kind: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let cwd = tempfile::tempdir().expect("tmp");
    let list = cwd.path().join("models.csv");
    std::fs::write(
        &list,
        "model,class,reasoning\nopenai/gpt-oss-20b,B,on\nHuggingFaceTB/SmolLM2-1.7B-Instruct,A,off\n",
    )
    .expect("write");
    let out = cwd.path().join("out");
    energy_star(
        cwd.path(),
        &[
            "batch",
            list.to_str().expect("utf-8"),
            "--output-dir",
            out.to_str().expect("utf-8"),
            "--emit",
            kind,
            "--image",
            "registry.example/energy_star:1.0",
            "--hf-cache-claim",
            "hf-cache",
            "--num-prompts",
            "1000",
        ],
        &[("BENCHMARK_BACKEND", "pytorch")],
    )
    .success();
    (cwd, out)
}

/// The structure every Job must have, checked always; the full Kubernetes schema check is the
/// ignored test below (it needs `kubernetes-validate`, which .ci/run installs).
#[test]
fn kubernetes_jobs_request_gpus_and_mount_results() {
    let (_cwd, out) = emit("k8s");
    let mut files: Vec<_> = std::fs::read_dir(out.join("k8s")).expect("k8s").flatten().map(|e| e.path()).collect();
    files.sort();
    assert_eq!(files.len(), 2);
    for f in &files {
        let text = std::fs::read_to_string(f).expect("yaml");
        let job: serde_json::Value = serde_norway::from_str(&text).expect("YAML");
        assert_eq!((job["apiVersion"].as_str(), job["kind"].as_str()), (Some("batch/v1"), Some("Job")));
        let name = job["metadata"]["name"].as_str().expect("name");
        assert!(
            name.len() <= 63 && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{name}"
        );
        let c = &job["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["image"], "registry.example/energy_star:1.0");
        assert_eq!(c["resources"]["limits"]["nvidia.com/gpu"], "1");
        assert_eq!(job["spec"]["template"]["spec"]["restartPolicy"], "Never");
        assert_eq!(job["spec"]["backoffLimit"], 0);
        let args: Vec<&str> = c["args"].as_array().expect("args").iter().filter_map(|a| a.as_str()).collect();
        assert_eq!(args[..2], ["--config-name", "text_generation"]);
        assert!(args.contains(&"scenario.num_samples=1000"));
        assert!(args.iter().any(|a| a.starts_with("/results/individual_runs/")));
        assert!(
            c["env"]
                .as_array()
                .expect("env")
                .iter()
                .any(|e| e["name"] == "BENCHMARK_BACKEND" && e["value"] == "pytorch")
        );
        let mounts: Vec<&str> =
            c["volumeMounts"].as_array().expect("mounts").iter().filter_map(|m| m["mountPath"].as_str()).collect();
        assert_eq!(mounts, ["/results", "/home/user/.cache/huggingface"]);
    }
}

#[test]
#[ignore = "needs kubernetes-validate (pip); .ci/run installs it and runs this test"]
fn kubernetes_jobs_pass_the_kubernetes_schema() {
    let (_cwd, out) = emit("k8s");
    let tool = std::env::var("KUBERNETES_VALIDATE").unwrap_or_else(|_| "kubernetes-validate".into());
    for f in std::fs::read_dir(out.join("k8s")).expect("k8s").flatten() {
        let o = std::process::Command::new(&tool)
            .args(["--strict", "-k", "1.30.0"])
            .arg(f.path())
            .output()
            .expect("run kubernetes-validate");
        assert!(
            o.status.success(),
            "{}: {}{}",
            f.path().display(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn the_slurm_array_runs_one_model_per_task() {
    let (_cwd, out) = emit("slurm");
    let script = std::fs::read_to_string(out.join("slurm/energy_star_array.sbatch")).expect("script");
    assert!(script.contains("#SBATCH --array=0-1%1") && script.contains("#SBATCH --gres=gpu:1"));
    assert!(script.contains("export BENCHMARK_BACKEND=pytorch"));
    let lines = std::fs::read_to_string(out.join("slurm/energy_star_array.args")).expect("args");
    let lines: Vec<&str> = lines.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(
        lines[0].starts_with("run --config-name text_generation --results-dir ")
            && lines[0].contains("backend.model=openai/gpt-oss-20b")
            && lines[0].contains("++scenario.reasoning=True")
    );
    // bash reads the script.
    let st = std::process::Command::new("bash")
        .args(["-n"])
        .arg(out.join("slurm/energy_star_array.sbatch"))
        .status()
        .expect("bash");
    assert!(st.success());
}
