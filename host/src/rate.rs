//! `energy-star rate`: AI Energy Score's 1-to-5 stars from a results table the user supplies.
//!
//! The method, as the leaderboard states it: within each cohort (a task, and for text
//! generation a model class), the range of GPU energy between the lowest and the highest model
//! is divided into five equal bands; the lowest band gets 5 stars, the highest 1. Here a value
//! E gets `5 − floor(5 · (E − min) / (max − min))`, clamped to 1..=5: bands are half-open
//! [low, high), the top one includes the maximum. A cohort of one model, or of equal values,
//! gets 5 stars. Rows without an energy figure (failed runs) get no stars and are listed.

use std::process::ExitCode;

use crate::cli::RateArgs;

/// `energy-star rate`.
pub fn command(args: &RateArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.table).map_err(|e| anyhow::anyhow!("{}: {e}", args.table.display()))?;
    let (rows, metric) =
        rate_csv(&text, args.metric.as_deref()).map_err(|e| anyhow::anyhow!("{}: {e}", args.table.display()))?;
    let out = to_csv(&rows, &metric);
    for r in rows.iter().filter(|r| r.energy.is_none()) {
        eprintln!("warning: {} has no {metric}: no stars", r.model);
    }
    match &args.output {
        Some(p) => {
            energy_star_results::write_atomic(p, out.as_bytes())?;
            let rated = rows.iter().filter(|r| r.stars.is_some()).count();
            let unrated =
                if rated < rows.len() { format!(" ({} without a figure)", rows.len() - rated) } else { String::new() };
            outln!("rated {rated} of {} models by {metric}{unrated}: {}", rows.len(), p.display())?;
        }
        None => out!("{out}")?,
    }
    Ok(ExitCode::SUCCESS)
}

use std::collections::BTreeMap;

/// One rated row.
#[derive(Debug, Clone, PartialEq)]
pub struct Rated {
    pub model: String,
    pub task: String,
    pub class: String,
    pub energy: Option<f64>,
    pub stars: Option<u8>,
    pub cohort_size: usize,
    pub cohort_min: Option<f64>,
    pub cohort_max: Option<f64>,
}

/// Stars for `e` in a cohort spanning [min, max].
pub fn stars(e: f64, min: f64, max: f64) -> u8 {
    if max <= min {
        return 5;
    }
    let band = (5.0 * (e - min) / (max - min)).floor();
    (5.0 - band).clamp(1.0, 5.0) as u8
}

const MODEL_COLUMNS: &[&str] = &["model", "model_name", "Model", "Models to Add"];
const TASK_COLUMNS: &[&str] = &["task", "Task"];
const CLASS_COLUMNS: &[&str] = &["class", "model_class", "Class"];
/// Energy columns tried in order when none is named: the leaderboard's metric first.
pub const ENERGY_COLUMNS: &[&str] = &["wh_per_1000_queries", "gpu_wh_per_1000_queries", "gpu_energy_wh", "total"];

/// Reads a CSV table and rates it. `metric` names the energy column (else the first of
/// [`ENERGY_COLUMNS`] present).
pub fn rate_csv(text: &str, metric: Option<&str>) -> Result<(Vec<Rated>, String), String> {
    let mut rdr = csv::ReaderBuilder::new().flexible(false).from_reader(text.as_bytes());
    let headers = rdr.headers().map_err(|e| format!("the table's header does not read: {e}"))?.clone();
    let find = |names: &[&str]| headers.iter().position(|h| names.contains(&h.trim()));
    let model_i = find(MODEL_COLUMNS).ok_or_else(|| {
        format!(
            "no model column (one of {}); the columns are: {}",
            MODEL_COLUMNS.join(", "),
            headers.iter().collect::<Vec<_>>().join(", ")
        )
    })?;
    let task_i = find(TASK_COLUMNS);
    let class_i = find(CLASS_COLUMNS);
    let (metric_name, energy_i) = match metric {
        Some(m) => (
            m.to_string(),
            headers.iter().position(|h| h.trim() == m).ok_or_else(|| {
                format!("no column {m:?}; the columns are: {}", headers.iter().collect::<Vec<_>>().join(", "))
            })?,
        ),
        None => ENERGY_COLUMNS
            .iter()
            .find_map(|c| headers.iter().position(|h| h.trim() == *c).map(|i| (c.to_string(), i)))
            .ok_or_else(|| {
                format!(
                    "no energy column (one of {}; or name it with --metric); the columns are: {}",
                    ENERGY_COLUMNS.join(", "),
                    headers.iter().collect::<Vec<_>>().join(", ")
                )
            })?,
    };
    let mut rows = Vec::new();
    for (n, rec) in rdr.records().enumerate() {
        let line = n + 2;
        let rec = rec.map_err(|e| format!("row {line}: {e}"))?;
        let cell = |i: Option<usize>| i.and_then(|i| rec.get(i)).map(str::trim).unwrap_or("").to_string();
        let model = cell(Some(model_i));
        if model.is_empty() {
            continue;
        }
        let raw = cell(Some(energy_i));
        let energy = if raw.is_empty()
            || raw.eq_ignore_ascii_case("n/a")
            || raw.eq_ignore_ascii_case("null")
            || raw.eq_ignore_ascii_case("nan")
        {
            None
        } else {
            let v: f64 =
                raw.parse().map_err(|_| format!("row {line} ({model}): {metric_name} = {raw:?} is not a number"))?;
            if !v.is_finite() || v < 0.0 {
                return Err(format!("row {line} ({model}): {metric_name} = {v} must be a finite energy of 0 or more"));
            }
            Some(v)
        };
        let task = cell(task_i);
        rows.push(Rated {
            model,
            task: if task.is_empty() { "text_generation".into() } else { task },
            class: cell(class_i),
            energy,
            stars: None,
            cohort_size: 0,
            cohort_min: None,
            cohort_max: None,
        });
    }
    let mut cohorts: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    for r in &rows {
        if let Some(e) = r.energy {
            cohorts.entry((r.task.clone(), r.class.clone())).or_default().push(e);
        }
    }
    for r in &mut rows {
        if let (Some(e), Some(c)) = (r.energy, cohorts.get(&(r.task.clone(), r.class.clone()))) {
            let min = c.iter().copied().fold(f64::INFINITY, f64::min);
            let max = c.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            r.stars = Some(stars(e, min, max));
            r.cohort_size = c.len();
            r.cohort_min = Some(min);
            r.cohort_max = Some(max);
        }
    }
    Ok((rows, metric_name))
}

/// The rated table as CSV.
pub fn to_csv(rows: &[Rated], metric: &str) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(["model", "task", "class", metric, "stars", "cohort_size", "cohort_min", "cohort_max"]);
    let f = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
    for r in rows {
        let _ = w.write_record([
            r.model.clone(),
            r.task.clone(),
            r.class.clone(),
            f(r.energy),
            r.stars.map(|s| s.to_string()).unwrap_or_default(),
            r.cohort_size.to_string(),
            f(r.cohort_min),
            f(r.cohort_max),
        ]);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_equal_bands_of_the_range() {
        // Range 10..20: bands [10,12) 5★, [12,14) 4★, [14,16) 3★, [16,18) 2★, [18,20] 1★.
        assert_eq!([10.0, 11.99, 12.0, 15.0, 17.99, 18.0, 20.0].map(|e| stars(e, 10.0, 20.0)), [5, 5, 4, 3, 2, 1, 1]);
        assert_eq!(stars(3.0, 3.0, 3.0), 5, "a cohort of equal values");
    }

    #[test]
    fn cohorts_are_task_and_class() {
        let t = "model_name,model_class,task,wh_per_1000_queries\na,A,text_generation,1\nb,A,text_generation,5\nc,B,text_generation,100\nd,A,image_classification,7\ne,A,text_generation,\n";
        let (rows, metric) = rate_csv(t, None).expect("rate");
        assert_eq!(metric, "wh_per_1000_queries");
        let s: Vec<Option<u8>> = rows.iter().map(|r| r.stars).collect();
        // a and b share a cohort (1 and 5 Wh); c and d are alone; e failed (no figure).
        assert_eq!(s, vec![Some(5), Some(1), Some(5), Some(5), None]);
        assert_eq!(rows[0].cohort_size, 2);
        let out = to_csv(&rows, &metric);
        assert!(out.starts_with("model,task,class,wh_per_1000_queries,stars"));
        assert!(out.contains("b,text_generation,A,5,1,2,1,5"));
    }

    #[test]
    fn bad_tables_say_what_is_wrong() {
        assert!(rate_csv("name,x\na,1\n", None).unwrap_err().contains("no model column"));
        assert!(rate_csv("model,x\na,1\n", None).unwrap_err().contains("no energy column"));
        assert!(
            rate_csv("model,gpu_energy_wh\na,lots\n", None)
                .unwrap_err()
                .contains("row 2 (a): gpu_energy_wh = \"lots\" is not a number")
        );
        assert!(rate_csv("model,gpu_energy_wh\na,-1\n", None).unwrap_err().contains("0 or more"));
        assert!(rate_csv("model,gpu_energy_wh\na,1\n", Some("joules")).unwrap_err().contains("no column \"joules\""));
        assert!(rate_csv("model,gpu_energy_wh\na,1,2\n", None).unwrap_err().contains("row 2"));
    }
}
