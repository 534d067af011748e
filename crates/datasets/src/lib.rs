//! Datasets for backends: local files (JSONL, JSON, CSV, Parquet), folders of them, and Hugging
//! Face dataset ids in the local hub cache (`datasets--ORG--NAME/snapshots/REV`), where a run has
//! fetched them before it starts (`crates/hub`). Errors name the missing file or column.

use std::path::{Path, PathBuf};

use serde_json::Value;
use thiserror::Error;

mod imagefolder;

use energy_star_hub::select::DATA_EXTENSIONS as EXTENSIONS;
use energy_star_hub::{cached_snapshot, hub_cache, looks_like_hub_id};

/// The offline default's prompt set (`energy-star/prompts`, column `text`): 48 prompts the
/// project wrote, as JSON lines, for the built-in toy model.
pub const PROMPTS_JSONL: &str = include_str!("../assets/prompts.jsonl");
/// The dataset name of [`PROMPTS_JSONL`].
pub const TOY_PROMPTS: &str = "energy-star/prompts";

#[derive(Debug, Error)]
pub enum DatasetError {
    #[error("dataset {name:?}: {why}")]
    NotFound { name: String, why: String },
    #[error("dataset file {path}: {why}")]
    Read { path: PathBuf, why: String },
    #[error("dataset {name:?} has no column {column:?}; its columns are: {available}")]
    NoColumn { name: String, column: String, available: String },
    #[error("dataset {name:?} has {rows} row(s); {wanted} were asked for")]
    TooFew { name: String, rows: usize, wanted: usize },
}

/// What to read.
#[derive(Debug, Clone)]
pub struct DatasetSpec {
    pub name: String,
    pub config: String,
    pub split: String,
    pub columns: Vec<String>,
    pub num_samples: Option<usize>,
}

/// What was read.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetRows {
    pub source: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// One value of a dataset row, typed as far as a task needs: text, or a file's contents as
/// Hugging Face stores an `Image` (or `Audio`) feature (a struct of `bytes` and `path`).
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    /// Strings, and other scalars as their JSON text.
    Text(String),
    /// A file: its bytes when the row holds them; else `path`, resolved against the data
    /// file's folder, says where to read them.
    File {
        bytes: Option<Vec<u8>>,
        path: Option<String>,
    },
}

impl Cell {
    /// The cell as text (what a text column gives a backend): a file cell gives its path.
    pub fn text(&self) -> String {
        match self {
            Cell::Null => String::new(),
            Cell::Text(t) => t.clone(),
            Cell::File { path, .. } => path.clone().unwrap_or_default(),
        }
    }

    /// Empty as optimum-benchmark's filter sees it (`example[column] != ""`): null, or empty
    /// text; a file cell is never empty.
    pub fn is_empty(&self) -> bool {
        match self {
            Cell::Null => true,
            Cell::Text(t) => t.is_empty(),
            Cell::File { .. } => false,
        }
    }

    /// The file's bytes, read from `path` when the row does not hold them.
    pub fn file_bytes(&self) -> Result<std::borrow::Cow<'_, [u8]>, String> {
        match self {
            Cell::File { bytes: Some(b), .. } => Ok(std::borrow::Cow::Borrowed(b)),
            Cell::File { bytes: None, path: Some(p) } | Cell::Text(p) if !p.is_empty() => {
                std::fs::read(p).map(std::borrow::Cow::Owned).map_err(|e| format!("{p}: {e}"))
            }
            Cell::Null => Err("the cell is empty".into()),
            _ => Err("the cell holds neither bytes nor a file path".into()),
        }
    }
}

/// Rows of typed cells.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub source: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

fn ext(p: &Path) -> Option<&str> {
    p.extension().and_then(|e| e.to_str()).filter(|e| EXTENSIONS.contains(e))
}

/// Data files of a dataset folder for a split, in name order, by the rule the Hub fetch uses
/// too ([`energy_star_hub::select::split_data_files`]): files of the split (`train.jsonl`,
/// `train-00000-of-00002.parquet`, `train/0000.parquet`) below the config's folder, the folder
/// itself or `data/`; else, where one of those holds a single data file, that one.
fn split_files(dir: &Path, config: &str, split: &str) -> Vec<PathBuf> {
    let files = energy_star_hub::list_files(dir);
    let paths: Vec<&str> = files.iter().map(String::as_str).collect();
    energy_star_hub::select::split_data_files(&paths, config, split).into_iter().map(|p| dir.join(p)).collect()
}

/// Where dataset `name` lives: a data file, a folder, or a snapshot in the hub cache. Checks
/// only that it is there, before a run touches anything; [`locate`] then picks the split's
/// files.
pub fn locate_root(name: &str, env: &impl Fn(&str) -> Option<String>) -> Result<PathBuf, DatasetError> {
    let nf = |why: String| DatasetError::NotFound { name: name.to_string(), why };
    if name.trim().is_empty() {
        return Err(nf("scenario.dataset_name is empty".into()));
    }
    if name == TOY_PROMPTS {
        return Ok(PathBuf::from(TOY_PROMPTS));
    }
    let p = Path::new(name);
    if p.is_file() {
        return if ext(p).is_some() {
            Ok(p.to_path_buf())
        } else {
            Err(nf(format!("{} is not a .jsonl, .json, .csv or .parquet file", p.display())))
        };
    }
    if p.is_dir() {
        return Ok(p.to_path_buf());
    }
    if ext(p).is_some() || !looks_like_hub_id(name) {
        return Err(nf(format!("no such file or folder: {}", p.display())));
    }
    let cache = hub_cache(env);
    cache.as_deref().and_then(|c| cached_snapshot(c, "datasets", name)).ok_or_else(|| {
        nf(format!(
            "not a file or folder, and not in the Hugging Face cache at {} (a run fetches it before it starts; `energy-star fetch --dataset {name}` fetches it ahead), or give a local file",
            cache.map(|c| c.display().to_string()).unwrap_or_else(|| "(no HF_HOME or HOME)".into()),
        ))
    })
}

/// Finds the files for `spec`.
pub fn locate(spec: &DatasetSpec, env: &impl Fn(&str) -> Option<String>) -> Result<Vec<PathBuf>, DatasetError> {
    let nf = |why: String| DatasetError::NotFound { name: spec.name.clone(), why };
    let dir = locate_root(&spec.name, env)?;
    if dir.is_file() {
        return Ok(vec![dir]);
    }
    let files = split_files(&dir, &spec.config, &spec.split);
    if files.is_empty() {
        return Err(nf(format!(
            "{} has no data file for split {:?} (.jsonl, .json, .csv or .parquet)",
            dir.display(),
            spec.split
        )));
    }
    Ok(files)
}

/// Loads the rows of `spec`'s columns as text.
pub fn load(spec: &DatasetSpec, env: &impl Fn(&str) -> Option<String>) -> Result<DatasetRows, DatasetError> {
    if spec.name == TOY_PROMPTS {
        return builtin_prompts(spec);
    }
    let t = load_table(spec, env)?;
    Ok(DatasetRows {
        source: t.source,
        columns: t.columns,
        rows: t.rows.iter().map(|r| r.iter().map(Cell::text).collect()).collect(),
    })
}

/// Loads the rows of `spec`'s columns as typed cells: data files, or a folder of images (each
/// row an `image` file and, for images in class folders, a `label`, as `datasets`' imagefolder
/// reads them).
pub fn load_table(spec: &DatasetSpec, env: &impl Fn(&str) -> Option<String>) -> Result<Table, DatasetError> {
    if spec.name == TOY_PROMPTS {
        let rows = builtin_prompts(spec)?;
        return Ok(Table {
            source: rows.source,
            columns: rows.columns,
            rows: rows.rows.into_iter().map(|r| r.into_iter().map(Cell::Text).collect()).collect(),
        });
    }
    let files = match locate(spec, env) {
        Ok(files) => files,
        Err(e) => match imagefolder::rows(&locate_root(&spec.name, env)?, &spec.split) {
            Some(records) => return select(spec, vec![(PathBuf::from(&spec.name), records)]),
            None => return Err(e),
        },
    };
    let mut read = Vec::new();
    let want = spec.num_samples;
    let mut count = 0;
    for f in &files {
        let records = read_file(f)?;
        count += records.len();
        read.push((f.clone(), records));
        if want.is_some_and(|n| count >= n) {
            break;
        }
    }
    select(spec, read)
}

/// `spec`'s columns of the records read, checked, cut to `num_samples`.
fn select(spec: &DatasetSpec, read: Vec<(PathBuf, Vec<Record>)>) -> Result<Table, DatasetError> {
    let mut rows = Vec::new();
    let want = spec.num_samples;
    for (_, records) in &read {
        if let Some(first) = records.first() {
            for c in &spec.columns {
                if !first.contains_key(c) {
                    let mut available: Vec<&str> = first.keys().map(String::as_str).collect();
                    available.sort();
                    return Err(DatasetError::NoColumn {
                        name: spec.name.clone(),
                        column: c.clone(),
                        available: available.join(", "),
                    });
                }
            }
        }
        for r in records {
            rows.push(spec.columns.iter().map(|c| r.get(c).cloned().unwrap_or(Cell::Null)).collect::<Vec<_>>());
            if want.is_some_and(|n| rows.len() >= n) {
                break;
            }
        }
        if want.is_some_and(|n| rows.len() >= n) {
            break;
        }
    }
    if let Some(n) = want
        && rows.len() < n
    {
        return Err(DatasetError::TooFew { name: spec.name.clone(), rows: rows.len(), wanted: n });
    }
    Ok(Table {
        source: read.iter().map(|(f, _)| f.display().to_string()).collect::<Vec<_>>().join(", "),
        columns: spec.columns.clone(),
        rows,
    })
}

/// The project's own prompt set, built into the binary.
fn builtin_prompts(spec: &DatasetSpec) -> Result<DatasetRows, DatasetError> {
    let records: Vec<Record> = PROMPTS_JSONL
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok()?.as_object().cloned())
        .map(|o| json_record(o, Path::new(".")))
        .collect();
    for c in &spec.columns {
        if c != "text" {
            return Err(DatasetError::NoColumn {
                name: spec.name.clone(),
                column: c.clone(),
                available: "text".into(),
            });
        }
    }
    let n = spec.num_samples.unwrap_or(records.len());
    if n > records.len() {
        return Err(DatasetError::TooFew { name: spec.name.clone(), rows: records.len(), wanted: n });
    }
    Ok(DatasetRows {
        source: "built-in prompt set (crates/datasets/assets/prompts.jsonl)".into(),
        columns: spec.columns.clone(),
        rows: records
            .iter()
            .take(n)
            .map(|r| spec.columns.iter().map(|c| r.get(c).map(Cell::text).unwrap_or_default()).collect())
            .collect(),
    })
}

type Record = std::collections::BTreeMap<String, Cell>;

/// A JSON value as a cell: an object with `bytes` or `path` (an image as `datasets` writes it
/// to JSON) is a file whose path is resolved against `base`, the data file's folder.
fn json_cell(v: Value, base: &Path) -> Cell {
    match v {
        Value::Null => Cell::Null,
        Value::String(s) => Cell::Text(s),
        Value::Object(o) if o.contains_key("path") || o.contains_key("bytes") => Cell::File {
            bytes: None,
            path: o.get("path").and_then(Value::as_str).map(|p| base.join(p).display().to_string()),
        },
        other => Cell::Text(other.to_string()),
    }
}

fn json_record(o: serde_json::Map<String, Value>, base: &Path) -> Record {
    o.into_iter().map(|(k, v)| (k, json_cell(v, base))).collect()
}

fn read_file(path: &Path) -> Result<Vec<Record>, DatasetError> {
    let base = path.parent().unwrap_or(Path::new("."));
    if ext(path) == Some("parquet") {
        return read_parquet(path, base).map_err(|why| DatasetError::Read { path: path.to_path_buf(), why });
    }
    Ok(read_json_like(path)?.into_iter().map(|r| json_record(r, base)).collect())
}

/// JSONL, JSON and CSV files as JSON objects.
fn read_json_like(path: &Path) -> Result<Vec<serde_json::Map<String, Value>>, DatasetError> {
    let err = |why: String| DatasetError::Read { path: path.to_path_buf(), why };
    match ext(path) {
        Some("jsonl") => {
            let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
            text.lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
                .map(|(n, l)| match serde_json::from_str::<Value>(l) {
                    Ok(Value::Object(o)) => Ok(o),
                    Ok(_) => Err(err(format!("line {} is not a JSON object", n + 1))),
                    Err(e) => Err(err(format!("line {}: {e}", n + 1))),
                })
                .collect()
        }
        Some("json") => {
            let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
            match serde_json::from_str::<Value>(&text) {
                Ok(Value::Array(items)) => items
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| match v {
                        Value::Object(o) => Ok(o),
                        _ => Err(err(format!("item {i} is not an object"))),
                    })
                    .collect(),
                // `datasets` also reads {"data": [...]}-style files through `field=`; take the
                // only list of objects if there is exactly one.
                Ok(Value::Object(o)) => {
                    let lists: Vec<&Vec<Value>> = o.values().filter_map(Value::as_array).collect();
                    match lists.as_slice() {
                        [one] => Ok(one.iter().filter_map(|v| v.as_object().cloned()).collect()),
                        _ => Err(err("expected a list of objects".into())),
                    }
                }
                // A file of JSON lines with a .json name.
                Err(_) => text
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .enumerate()
                    .map(|(n, l)| match serde_json::from_str::<Value>(l) {
                        Ok(Value::Object(o)) => Ok(o),
                        _ => Err(err(format!("neither a JSON document nor JSON lines (line {})", n + 1))),
                    })
                    .collect(),
                Ok(_) => Err(err("expected a list of objects".into())),
            }
        }
        Some("csv") => {
            let mut r = csv::Reader::from_path(path).map_err(|e| err(e.to_string()))?;
            let headers: Vec<String> =
                r.headers().map_err(|e| err(e.to_string()))?.iter().map(str::to_string).collect();
            r.records()
                .map(|rec| {
                    let rec = rec.map_err(|e| err(e.to_string()))?;
                    Ok(headers.iter().cloned().zip(rec.iter().map(|f| Value::String(f.to_string()))).collect())
                })
                .collect()
        }
        _ => Err(err("unsupported file type".into())),
    }
}

fn read_parquet(path: &Path, base: &Path) -> Result<Vec<Record>, String> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let reader = SerializedFileReader::new(file).map_err(|e| format!("not a readable Parquet file: {e}"))?;
    let rows = reader.get_row_iter(None).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for row in rows {
        let row = row.map_err(|e| format!("{e} (energy-star reads uncompressed and snappy Parquet)"))?;
        out.push(row.get_column_iter().map(|(name, field)| (name.clone(), parquet_cell(field, base))).collect());
    }
    Ok(out)
}

/// A Parquet value as a cell: Hugging Face's `Image`/`Audio` features are a struct of `bytes`
/// (binary) and `path` (string).
fn parquet_cell(field: &parquet::record::Field, base: &Path) -> Cell {
    use parquet::record::Field;
    match field {
        Field::Null => Cell::Null,
        Field::Str(s) => Cell::Text(s.clone()),
        Field::Bool(b) => Cell::Text(b.to_string()),
        Field::Int(i) => Cell::Text(i.to_string()),
        Field::Long(i) => Cell::Text(i.to_string()),
        Field::Double(d) => Cell::Text(Value::from(*d).to_string()),
        Field::Float(f) => Cell::Text(Value::from(f64::from(*f)).to_string()),
        Field::Bytes(b) => Cell::File { bytes: Some(b.data().to_vec()), path: None },
        Field::Group(g) => {
            let mut bytes = None;
            let mut file = None;
            let mut is_file = false;
            for (name, f) in g.get_column_iter() {
                match (name.as_str(), f) {
                    ("bytes", Field::Bytes(b)) => (bytes, is_file) = (Some(b.data().to_vec()), true),
                    ("bytes", Field::Null) | ("path", Field::Null) => is_file = true,
                    ("path", Field::Str(p)) => (file, is_file) = (Some(p.clone()), true),
                    _ => {}
                }
            }
            if !is_file {
                return Cell::Text(field.to_string());
            }
            // A path beside the bytes names where they came from; alone, a file to read.
            let path = match (&bytes, file) {
                (None, Some(p)) => Some(base.join(p).display().to_string()),
                (_, p) => p,
            };
            Cell::File { bytes, path }
        }
        other => Cell::Text(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, columns: &[&str], n: Option<usize>) -> DatasetSpec {
        DatasetSpec {
            name: name.into(),
            config: String::new(),
            split: "train".into(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            num_samples: n,
        }
    }

    fn none(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn local_files_of_each_kind() {
        let d = tempfile::tempdir().expect("tmp");
        std::fs::write(d.path().join("a.jsonl"), "{\"text\": \"one\", \"n\": 1}\n\n{\"text\": \"two\", \"n\": 2}\n")
            .expect("w");
        std::fs::write(d.path().join("b.json"), r#"[{"text": "one"}, {"text": "two"}, {"text": null}]"#).expect("w");
        std::fs::write(d.path().join("c.csv"), "text,label\n\"one, with comma\",0\ntwo,1\n").expect("w");
        let p = |f: &str| d.path().join(f).display().to_string();
        assert_eq!(
            load(&spec(&p("a.jsonl"), &["text", "n"], None), &none).expect("jsonl").rows,
            vec![vec!["one", "1"], vec!["two", "2"]]
        );
        assert_eq!(
            load(&spec(&p("b.json"), &["text"], Some(2)), &none).expect("json").rows,
            vec![vec!["one"], vec!["two"]]
        );
        assert_eq!(load(&spec(&p("c.csv"), &["text"], None), &none).expect("csv").rows[0], vec!["one, with comma"]);
        let err = load(&spec(&p("a.jsonl"), &["prompt"], None), &none).unwrap_err().to_string();
        assert!(err.contains("no column \"prompt\"") && err.contains("n, text"), "{err}");
        let err = load(&spec(&p("a.jsonl"), &["text"], Some(5)), &none).unwrap_err().to_string();
        assert!(err.contains("2 row(s); 5 were asked for"), "{err}");
        assert!(
            load(&spec(&p("missing.jsonl"), &["text"], None), &none)
                .unwrap_err()
                .to_string()
                .contains("no such file or folder")
        );
    }

    #[test]
    fn hub_cache_dataset_split_files() {
        let home = tempfile::tempdir().expect("tmp");
        let snap = home.path().join("hub/datasets--EnergyStarAI--text_generation/snapshots/r1/data");
        std::fs::create_dir_all(&snap).expect("mkdir");
        std::fs::write(snap.join("train-00000-of-00002.jsonl"), "{\"text\": \"a\"}\n").expect("w");
        std::fs::write(snap.join("train-00001-of-00002.jsonl"), "{\"text\": \"b\"}\n").expect("w");
        std::fs::write(snap.join("test.jsonl"), "{\"text\": \"t\"}\n").expect("w");
        let h = home.path().display().to_string();
        let env = |k: &str| (k == "HF_HOME").then(|| h.clone());
        let rows = load(&spec("EnergyStarAI/text_generation", &["text"], None), &env).expect("cache");
        assert_eq!(rows.rows, vec![vec!["a"], vec!["b"]]);
        let mut s = spec("EnergyStarAI/text_generation", &["text"], None);
        s.split = "validation".into();
        assert!(load(&s, &env).unwrap_err().to_string().contains("no data file for split \"validation\""));
        // A missing id says how to fetch it; a missing path is named as a path, never as an id.
        let id = load(&spec("org/absent", &["text"], None), &env).unwrap_err().to_string();
        assert!(id.contains("energy-star fetch --dataset org/absent"), "{id}");
        for path in ["/data/absent", "./absent", "data/prompts/absent", "absent.jsonl"] {
            let err = load(&spec(path, &["text"], None), &env).unwrap_err().to_string();
            assert!(
                err.contains(&format!("no such file or folder: {path}")) && !err.contains("energy-star fetch"),
                "{err}"
            );
        }
    }

    fn fixture(p: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures").join(p)
    }

    #[test]
    fn image_columns_as_datasets_writes_them_read_back_as_files() {
        // images.parquet was written by `datasets` 5.2 with an Image feature: a struct of the
        // file's bytes and its name.
        let s = spec(&fixture("images/images.parquet").display().to_string(), &["image", "label", "file"], None);
        let t = load_table(&s, &none).expect("parquet");
        assert_eq!(t.rows.len(), 7);
        for row in &t.rows {
            let name = row[2].text();
            assert_eq!(
                row[0].file_bytes().expect("bytes").as_ref(),
                std::fs::read(fixture("images").join(&name)).expect("file")
            );
            assert_eq!(row[0].text(), name, "the struct's path");
            assert!(!row[0].is_empty());
        }
        assert_eq!(t.rows.iter().map(|r| r[1].text()).collect::<Vec<_>>(), ["0", "1", "2", "0", "1", "2", "0"]);
        // The text view of the same table (what `load` gives a text column) is the path.
        assert_eq!(load(&s, &none).expect("rows").rows[0][0], "rgb-97x61.png");
    }

    #[test]
    fn an_image_folder_is_a_dataset_with_labels_from_class_folders() {
        let d = tempfile::tempdir().expect("tmp");
        for (class, file) in [("cat", "b.png"), ("cat", "a.jpg"), ("dog", "c.webp")] {
            std::fs::create_dir_all(d.path().join("train").join(class)).expect("mkdir");
            std::fs::write(d.path().join("train").join(class).join(file), file).expect("w");
        }
        std::fs::write(d.path().join("train/cat/notes.txt"), "not an image").expect("w");
        std::fs::write(d.path().join("train/cat/.hidden.png"), "hidden").expect("w");
        let t = load_table(&spec(&d.path().display().to_string(), &["image", "label"], None), &none).expect("folder");
        let got: Vec<(String, String)> = t
            .rows
            .iter()
            .map(|r| (String::from_utf8(r[0].file_bytes().expect("read").into_owned()).expect("utf-8"), r[1].text()))
            .collect();
        let want = [("a.jpg", "cat"), ("b.png", "cat"), ("c.webp", "dog")].map(|(a, b)| (a.to_string(), b.to_string()));
        assert_eq!(got, want);
        let err = load_table(&spec(&d.path().display().to_string(), &["img"], None), &none).unwrap_err().to_string();
        assert!(err.contains("no column \"img\"") && err.contains("image, label"), "{err}");
        // JSON rows may name image files relative to themselves.
        std::fs::write(d.path().join("rows.jsonl"), "{\"image\": {\"path\": \"train/dog/c.webp\"}}\n").expect("w");
        let t = load_table(&spec(&d.path().join("rows.jsonl").display().to_string(), &["image"], None), &none)
            .expect("jsonl");
        assert_eq!(t.rows[0][0].file_bytes().expect("read").as_ref(), b"c.webp");
    }

    #[test]
    fn parquet_files_are_read() {
        use parquet::data_type::ByteArrayType;
        use parquet::file::properties::WriterProperties;
        use parquet::file::writer::SerializedFileWriter;
        use parquet::schema::parser::parse_message_type;
        use std::sync::Arc;
        let d = tempfile::tempdir().expect("tmp");
        let path = d.path().join("train.parquet");
        let schema = Arc::new(parse_message_type("message s { REQUIRED BYTE_ARRAY text (UTF8); }").expect("schema"));
        let file = std::fs::File::create(&path).expect("create");
        let props = Arc::new(WriterProperties::builder().set_compression(parquet::basic::Compression::SNAPPY).build());
        let mut w = SerializedFileWriter::new(file, schema, props).expect("writer");
        let mut rg = w.next_row_group().expect("row group");
        let mut col = rg.next_column().expect("col").expect("some");
        let values: Vec<parquet::data_type::ByteArray> =
            ["first prompt", "second prompt"].iter().map(|s| (*s).into()).collect();
        col.typed::<ByteArrayType>().write_batch(&values, None, None).expect("write");
        col.close().expect("close col");
        rg.close().expect("close rg");
        w.close().expect("close");
        let rows = load(&spec(&d.path().display().to_string(), &["text"], None), &none).expect("parquet");
        assert_eq!(rows.rows, vec![vec!["first prompt"], vec!["second prompt"]]);
    }
}
