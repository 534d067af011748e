//! `energy-star label RESULTS_DIR|master_results.csv`: AI Energy Score's label (the content of
//! its Label Space: model, task, class, stars within a cohort, GPU energy per 1,000 queries,
//! hardware, date) with energy-star's version and the energy's source, as `label.svg` and
//! `label.png`. The PNG is rendered by resvg with fonts embedded in the binary (DejaVu Sans), so
//! the same label comes out byte for byte on every machine.
//!
//! Stars need a cohort (the leaderboard's five equal bands of the task's and class's range,
//! `rate`'s rule): a table's own rows, or `--cohort master_results.csv` for a results folder;
//! without one the label says "not rated".

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use energy_star_results::records::{
    self, ENERGY_RECORD, EnergyRecord, RUN_RECORD, RUN_STATUS, RunRecord, RunStatus, SUMMARY, SummaryRecord,
};
use energy_star_results::write_atomic;
use energy_star_types::DeviceKind;
use thiserror::Error;

use crate::cli::LabelArgs;
use crate::rate;
use crate::report::svg::esc;

const DEJAVU_SANS: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");
const DEJAVU_SANS_BOLD: &[u8] = include_bytes!("../assets/fonts/DejaVuSans-Bold.ttf");

/// The label's size in CSS pixels (the Label Space's 260 × 364); the PNG is twice that.
pub const WIDTH: u32 = 260;
pub const HEIGHT: u32 = 364;
pub const PNG_SCALE: u32 = 2;

#[derive(Debug, Error)]
pub enum LabelError {
    #[error("{0} is neither a results folder with GPU_ENERGY_SUMMARY.json nor a CSV table")]
    NotALabelSource(PathBuf),
    #[error("cannot read {path}: {why}")]
    Read { path: PathBuf, why: String },
    #[error("{path}: {why}")]
    Table { path: PathBuf, why: String },
    #[error("{path} has {n} rows; say which model with --model-name (models: {models})")]
    WhichModel { path: PathBuf, n: usize, models: String },
    #[error("{path} has no row for model {model:?} (models: {models})")]
    NoSuchModel { path: PathBuf, model: String, models: String },
    #[error("no GPU energy per query to label: {0}")]
    NoFigure(String),
    #[error("rendering the label: {0}")]
    Render(String),
    #[error(transparent)]
    Write(#[from] energy_star_results::ResultsError),
}

/// What the label shows.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelData {
    pub model: String,
    pub task: String,
    pub class: Option<String>,
    /// 1–5 within the cohort; none without a cohort.
    pub stars: Option<u8>,
    /// How many runs the stars are relative to.
    pub cohort_size: Option<usize>,
    pub gpu_wh_per_1000_queries: f64,
    pub hardware: String,
    /// YYYY-MM-DD of the run.
    pub date: String,
    pub energy_source: String,
    pub energy_star_version: String,
}

/// `energy-star label`.
pub fn command(args: &LabelArgs) -> anyhow::Result<ExitCode> {
    let target = crate::results_target(args.target.clone());
    let data = gather(&target, args.model_name.as_deref(), args.cohort.as_deref(), args.class.as_deref())?;
    let out = args.output.clone().unwrap_or_else(|| if target.is_dir() { target.clone() } else { PathBuf::from(".") });
    let svg = svg(&data);
    let png = png(&svg)?;
    write_atomic(&out.join("label.svg"), svg.as_bytes())?;
    write_atomic(&out.join("label.png"), &png)?;
    outln!("label: {} and {}", out.join("label.svg").display(), out.join("label.png").display())?;
    if data.stars.is_none() {
        eprintln!(
            "energy-star: the label is not rated: stars need a cohort (--cohort master_results.csv of the same task and class)"
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn date_of(unix_s: f64) -> String {
    energy_star_results::utc_stamp(unix_s).chars().take(10).collect()
}

/// The label's content, from a results folder or a table row.
pub fn gather(
    target: &Path,
    model: Option<&str>,
    cohort: Option<&Path>,
    class: Option<&str>,
) -> Result<LabelData, LabelError> {
    if target.is_dir() && target.join(SUMMARY).is_file() {
        from_results(target, model, cohort, class)
    } else if target.is_file() {
        from_table(target, model)
    } else {
        Err(LabelError::NotALabelSource(target.to_path_buf()))
    }
}

fn read<T: serde::de::DeserializeOwned>(dir: &Path, name: &str) -> Result<Option<T>, LabelError> {
    records::read_record(&dir.join(name)).map_err(|e| LabelError::Read { path: dir.join(name), why: e.to_string() })
}

fn hardware_of(meter: Option<&EnergyRecord>) -> (String, String) {
    let Some(m) = meter else { return ("unknown (no energy_meter.json)".into(), "unknown".into()) };
    let gpus: Vec<&str> = m.devices.iter().filter(|d| d.kind == DeviceKind::Gpu).map(|d| d.name.as_str()).collect();
    let hardware = match gpus.as_slice() {
        [] => format!(
            "no GPU ({})",
            m.devices.iter().find(|d| d.kind == DeviceKind::Cpu).map(|d| d.name.as_str()).unwrap_or("CPU")
        ),
        [one] => (*one).to_string(),
        many if many.iter().all(|g| *g == many[0]) => format!("{} × {}", many.len(), many[0]),
        many => many.join(", "),
    };
    let source = m.source_of(DeviceKind::Gpu).map(|s| s.as_str().to_string()).unwrap_or_else(|| "no GPU".into());
    (hardware, source)
}

fn from_results(
    dir: &Path,
    model: Option<&str>,
    cohort: Option<&Path>,
    class: Option<&str>,
) -> Result<LabelData, LabelError> {
    let summary: SummaryRecord = read(dir, SUMMARY)?.ok_or_else(|| LabelError::NotALabelSource(dir.to_path_buf()))?;
    let record: Option<RunRecord> = read(dir, RUN_RECORD)?;
    let status: Option<RunStatus> = read(dir, RUN_STATUS)?;
    let meter: Option<EnergyRecord> = read(dir, ENERGY_RECORD)?;
    let details = summary.details().map_err(|why| LabelError::Read { path: dir.join(SUMMARY), why })?;
    let total = summary.total.ok_or_else(|| {
        LabelError::NoFigure(match (&details.gpu_absent_reason, details.complete) {
            (Some(why), _) => format!("the run used no GPU ({why})"),
            (None, false) => format!("the run is incomplete ({})", details.incomplete_reasons.join("; ")),
            _ => "the summary has no GPU total".into(),
        })
    })?;
    let queries = record.as_ref().and_then(|r| r.facts.as_ref()).and_then(|f| f.requests).map(|r| r.succeeded);
    let queries = queries
        .filter(|n| *n > 0)
        .ok_or_else(|| LabelError::NoFigure("the run record has no successful query count".into()))?;
    let wh_per_1000 = total / queries as f64 * 1000.0;
    let model = model
        .map(str::to_string)
        .or_else(|| record.as_ref().and_then(|r| r.plan.models.first().cloned()))
        .unwrap_or_else(|| "unknown model".into());
    let task = std::fs::read_to_string(dir.join("effective_config.yaml"))
        .ok()
        .and_then(|t| serde_norway::from_str::<serde_json::Value>(&t).ok())
        .and_then(|c| c.pointer("/backend/task").and_then(|v| v.as_str()).map(str::to_string))
        .unwrap_or_else(|| "unknown task".into());
    let (hardware, energy_source) = hardware_of(meter.as_ref());
    let (stars, cohort_size) = match cohort {
        Some(path) => {
            let (stars, n) = rate_in_cohort(path, &task, class, wh_per_1000)?;
            (Some(stars), Some(n))
        }
        None => (None, None),
    };
    Ok(LabelData {
        model,
        task,
        class: class.map(str::to_string),
        stars,
        cohort_size,
        gpu_wh_per_1000_queries: wh_per_1000,
        hardware,
        date: status
            .and_then(|s| s.finished_unix_s.or(Some(s.started_unix_s)))
            .map(date_of)
            .unwrap_or_else(|| "unknown".into()),
        energy_source,
        energy_star_version: env!("CARGO_PKG_VERSION").into(),
    })
}

/// Stars for `wh` among the cohort's rows of the same task (and class, when given), with this
/// run counted in the range.
fn rate_in_cohort(path: &Path, task: &str, class: Option<&str>, wh: f64) -> Result<(u8, usize), LabelError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| LabelError::Read { path: path.to_path_buf(), why: e.to_string() })?;
    let (rows, _) = rate::rate_csv(&text, None).map_err(|why| LabelError::Table { path: path.to_path_buf(), why })?;
    let same_task = |r: &&rate::Rated| r.task.is_empty() || r.task.replace('_', "-") == task.replace('_', "-");
    let peers: Vec<f64> = rows
        .iter()
        .filter(same_task)
        .filter(|r| class.is_none_or(|c| r.class == c))
        .filter_map(|r| r.energy)
        .chain([wh])
        .collect();
    let (min, max) = peers.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(*v), b.max(*v)));
    Ok((rate::stars(wh, min, max), peers.len()))
}

fn from_table(path: &Path, model: Option<&str>) -> Result<LabelData, LabelError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| LabelError::Read { path: path.to_path_buf(), why: e.to_string() })?;
    let (rows, metric) =
        rate::rate_csv(&text, None).map_err(|why| LabelError::Table { path: path.to_path_buf(), why })?;
    let models = || rows.iter().map(|r| r.model.as_str()).collect::<Vec<_>>().join(", ");
    let row = match model {
        Some(m) => rows.iter().find(|r| r.model == m).ok_or_else(|| LabelError::NoSuchModel {
            path: path.to_path_buf(),
            model: m.into(),
            models: models(),
        })?,
        None if rows.len() == 1 => &rows[0],
        None => return Err(LabelError::WhichModel { path: path.to_path_buf(), n: rows.len(), models: models() }),
    };
    let energy = row.energy.ok_or_else(|| LabelError::NoFigure(format!("{}'s {metric} is empty", row.model)))?;
    // The table's other columns, by header, for the row's date, source and folder.
    let mut rdr = csv::Reader::from_reader(text.as_bytes());
    let headers =
        rdr.headers().map_err(|e| LabelError::Table { path: path.to_path_buf(), why: e.to_string() })?.clone();
    let col = |rec: &csv::StringRecord, name: &str| {
        headers.iter().position(|h| h == name).and_then(|i| rec.get(i)).map(str::to_string)
    };
    let rec = rdr
        .records()
        .filter_map(Result::ok)
        .find(|r| ["model_name", "model"].iter().any(|c| col(r, c).as_deref() == Some(row.model.as_str())));
    let meter: Option<EnergyRecord> = rec
        .as_ref()
        .and_then(|r| col(r, "results_dir"))
        .filter(|d| !d.is_empty())
        .and_then(|d| records::read_record(&Path::new(&d).join(ENERGY_RECORD)).ok().flatten());
    let (hardware, source_from_meter) = match &meter {
        Some(m) => hardware_of(Some(m)),
        None => ("not in the table (no results_dir with energy_meter.json)".into(), "unknown".into()),
    };
    let energy_source =
        rec.as_ref().and_then(|r| col(r, "gpu_energy_source")).filter(|s| !s.is_empty()).unwrap_or(source_from_meter);
    let date = rec
        .as_ref()
        .and_then(|r| col(r, "timestamp"))
        .and_then(|t| t.parse::<f64>().ok())
        .map(date_of)
        .unwrap_or_else(|| "unknown".into());
    let wh_per_1000 = if metric == "gpu_energy_wh" || metric == "total" {
        return Err(LabelError::NoFigure(format!(
            "{} has {metric} but no per-query column (wh_per_1000_queries)",
            path.display()
        )));
    } else {
        energy
    };
    Ok(LabelData {
        model: row.model.clone(),
        task: if row.task.is_empty() { "unknown task".into() } else { row.task.clone() },
        class: Some(row.class.clone()).filter(|c| !c.is_empty()),
        stars: row.stars,
        cohort_size: Some(row.cohort_size),
        gpu_wh_per_1000_queries: wh_per_1000,
        hardware,
        date,
        energy_source,
        energy_star_version: env!("CARGO_PKG_VERSION").into(),
    })
}

/// At most `n` characters, with an ellipsis when cut.
fn fit(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_string() } else { s.chars().take(n - 1).collect::<String>() + "…" }
}

/// A five-pointed star centred at (cx, cy) with outer radius r.
fn star_points(cx: f64, cy: f64, r: f64) -> String {
    (0..10)
        .map(|i| {
            let rad = if i % 2 == 0 { r } else { r * 0.42 };
            let a = std::f64::consts::PI * (i as f64) / 5.0 - std::f64::consts::FRAC_PI_2;
            format!("{:.2},{:.2}", cx + rad * a.cos(), cy + rad * a.sin())
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The label as SVG (fonts named, not embedded: the PNG renderer has them; a browser falls back
/// to its sans-serif).
pub fn svg(d: &LabelData) -> String {
    let (w, h) = (WIDTH, HEIGHT);
    let font = r#"font-family="DejaVu Sans, sans-serif""#;
    let mut s = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}"><rect width="{w}" height="{h}" rx="10" fill="#ffffff" stroke="#1b4d3e" stroke-width="3"/><rect x="1.5" y="1.5" width="{}" height="46" rx="9" fill="#1b4d3e"/><text x="{}" y="31" {font} font-size="19" font-weight="bold" fill="#ffffff" text-anchor="middle">AI Energy Score</text>"##,
        w - 3,
        w / 2
    );
    let line = |s: &mut String, y: u32, size: u32, bold: bool, text: &str| {
        s.push_str(&format!(
            r##"<text x="{}" y="{y}" {font} font-size="{size}"{} fill="#1a1a1a" text-anchor="middle">{}</text>"##,
            w / 2,
            if bold { r#" font-weight="bold""# } else { "" },
            esc(text)
        ));
    };
    line(&mut s, 74, 13, true, &fit(&d.model, 30));
    let class = d.class.as_deref().map(|c| format!(" · class {c}")).unwrap_or_default();
    line(&mut s, 94, 11, false, &fit(&format!("{}{class}", d.task), 38));
    match d.stars {
        Some(n) => {
            for i in 0..5u8 {
                let fill = if i < n { "#f2b01e" } else { "#d9d9d9" };
                s.push_str(&format!(
                    r##"<polygon class="star" points="{}" fill="{fill}" stroke="#8a6d12" stroke-width="0.8"/>"##,
                    star_points(f64::from(w) / 2.0 + (f64::from(i) - 2.0) * 38.0, 136.0, 16.0)
                ));
            }
            let cohort = d.cohort_size.map(|c| format!(" of {c} runs")).unwrap_or_default();
            line(&mut s, 168, 9, false, &format!("{n} of 5 stars within the cohort{cohort}"));
        }
        None => {
            line(&mut s, 140, 13, false, "not rated");
            line(&mut s, 160, 9, false, "stars need a cohort of the same task and class");
        }
    }
    s.push_str(&format!(r##"<line x1="20" x2="{}" y1="184" y2="184" stroke="#1b4d3e" stroke-width="1"/>"##, w - 20));
    line(&mut s, 222, 30, true, &format!("{:.2} Wh", d.gpu_wh_per_1000_queries));
    line(&mut s, 242, 11, false, "GPU energy per 1,000 queries");
    s.push_str(&format!(r##"<line x1="20" x2="{}" y1="258" y2="258" stroke="#1b4d3e" stroke-width="1"/>"##, w - 20));
    line(&mut s, 280, 10, false, &fit(&format!("Hardware: {}", d.hardware), 44));
    line(&mut s, 298, 10, false, &format!("Date: {}", d.date));
    line(&mut s, 316, 10, false, &fit(&format!("Energy source: {}", d.energy_source), 44));
    line(&mut s, 346, 8, false, &format!("measured with energy-star {}", d.energy_star_version));
    s.push_str("</svg>");
    s
}

/// The label rendered at [`PNG_SCALE`] with the embedded fonts.
pub fn png(svg_text: &str) -> Result<Vec<u8>, LabelError> {
    use resvg::{tiny_skia, usvg};
    let mut db = usvg::fontdb::Database::new();
    db.load_font_data(DEJAVU_SANS.to_vec());
    db.load_font_data(DEJAVU_SANS_BOLD.to_vec());
    db.set_sans_serif_family("DejaVu Sans");
    let options = usvg::Options { fontdb: Arc::new(db), ..usvg::Options::default() };
    let tree = usvg::Tree::from_str(svg_text, &options).map_err(|e| LabelError::Render(e.to_string()))?;
    let mut pixmap = tiny_skia::Pixmap::new(WIDTH * PNG_SCALE, HEIGHT * PNG_SCALE)
        .ok_or_else(|| LabelError::Render("cannot allocate the image".into()))?;
    let scale = PNG_SCALE as f32;
    resvg::render(&tree, tiny_skia::Transform::from_scale(scale, scale), &mut pixmap.as_mut());
    pixmap.encode_png().map_err(|e| LabelError::Render(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> LabelData {
        LabelData {
            model: "openai/gpt-oss-20b".into(),
            task: "text-generation".into(),
            class: Some("B".into()),
            stars: Some(4),
            cohort_size: Some(12),
            gpu_wh_per_1000_queries: 1.234,
            hardware: "NVIDIA H100 80GB HBM3".into(),
            date: "2026-12-03".into(),
            energy_source: "nvml-energy-counter".into(),
            energy_star_version: "0.2.0".into(),
        }
    }

    #[test]
    fn a_run_is_rated_within_its_cohorts_task_and_class_counting_itself() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("cohort.csv");
        std::fs::write(
            &csv,
            "model_name,model_class,task,wh_per_1000_queries\na,B,text_generation,1.0\nb,B,text_generation,3.0\nc,A,text_generation,100\nd,B,image_classification,50\n",
        )
        .unwrap();
        // Class B text generation spans 1.0-3.0 and this run's 1.2: the top band, 5 stars, of 3.
        assert_eq!(rate_in_cohort(&csv, "text-generation", Some("B"), 1.2).unwrap(), (5, 3));
        // A run above the cohort's range widens it and gets 1 star.
        assert_eq!(rate_in_cohort(&csv, "text_generation", Some("B"), 9.0).unwrap(), (1, 3));
        // Without a class, every text-generation row counts.
        assert_eq!(rate_in_cohort(&csv, "text_generation", None, 1.2).unwrap().1, 4);
    }

    #[test]
    fn the_label_shows_its_content_and_renders_the_same_twice() {
        let s = svg(&data());
        for want in [
            "openai/gpt-oss-20b",
            "text-generation · class B",
            "1.23 Wh",
            "GPU energy per 1,000 queries",
            "NVIDIA H100",
            "2026-12-03",
            "nvml-energy-counter",
            "energy-star 0.2.0",
        ] {
            assert!(s.contains(want), "{want} missing");
        }
        assert_eq!(s.matches(r##"class="star" points"##).count(), 5);
        assert_eq!(s.matches("#f2b01e").count(), 4, "four filled stars");
        let a = png(&s).unwrap();
        assert_eq!(a, png(&s).unwrap(), "deterministic");
        assert_eq!(&a[1..4], b"PNG");
        let unrated = svg(&LabelData { stars: None, ..data() });
        assert!(unrated.contains("not rated") && !unrated.contains(r#"class="star""#));
        assert!(fit("a-very-long-model-name-that-does-not-fit", 10).ends_with('…'));
    }
}
