//! A folder of image files as a dataset, as `datasets`' `imagefolder` builder reads one: every
//! image below the split's folder (`DIR/train/...` when it exists, else `DIR` itself) in path
//! order, each row an `image` file cell and, where the images sit in class folders, a `label`
//! (the folder's name).

use std::path::{Path, PathBuf};

use super::{Cell, Record};

/// Image file extensions `datasets` reads as images.
const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff"];

fn is_image(p: &Path) -> bool {
    p.extension().and_then(|e| e.to_str()).is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.')) {
            continue;
        }
        if path.is_dir() {
            walk(&path, out);
        } else if is_image(&path) {
            out.push(path);
        }
    }
}

/// The rows of the image folder at `root` for `split`, or none when it holds no image.
pub(crate) fn rows(root: &Path, split: &str) -> Option<Vec<Record>> {
    if !root.is_dir() {
        return None;
    }
    let dir = if root.join(split).is_dir() { root.join(split) } else { root.to_path_buf() };
    let mut files = Vec::new();
    walk(&dir, &mut files);
    if files.is_empty() {
        return None;
    }
    files.sort();
    let labelled = files.iter().any(|f| f.parent() != Some(dir.as_path()));
    Some(
        files
            .into_iter()
            .map(|f| {
                let mut r = Record::new();
                if labelled {
                    let label = f.parent().and_then(Path::file_name).and_then(|n| n.to_str()).unwrap_or_default();
                    r.insert("label".into(), Cell::Text(label.to_string()));
                }
                r.insert("image".into(), Cell::File { bytes: None, path: Some(f.display().to_string()) });
                r
            })
            .collect(),
    )
}
