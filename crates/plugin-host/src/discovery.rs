//! Finding plugins: the built-ins, then every `*.wasm` of the plugin folders in precedence
//! order; files that cannot be used are set aside with their reasons, never fatal.

use std::path::{Path, PathBuf};

use crate::error::PluginError;
use crate::plugin::{LoadFailure, Plugin, load_plugin};
use crate::runtime::PluginRuntime;
use crate::{Origin, PluginKind};

/// The default drop-in folder (the container's).
pub const DEFAULT_PLUGIN_DIR: &str = "/opt/energy-star/plugins";

/// A plugin built into the binary: its package name and component bytes.
#[derive(Debug, Clone, Copy)]
pub struct Builtin {
    pub package: &'static str,
    pub wasm: &'static [u8],
}

/// A plugin file that is skipped, and why: the tool goes on without it.
#[derive(Debug)]
pub struct BrokenPlugin {
    /// The `.wasm` file, or the folder that could not be read.
    pub path: PathBuf,
    /// Its kind, when the host read that far.
    pub kind: Option<PluginKind>,
    pub error: PluginError,
}

impl BrokenPlugin {
    /// Whether this file may be the plugin of `kind` named `name` that a command asked for:
    /// of that kind (or of unknown kind) and with that file stem.
    pub fn may_be(&self, kind: PluginKind, name: &str) -> bool {
        self.kind.is_none_or(|k| k == kind) && self.path.file_stem().is_some_and(|s| s == name)
    }

    /// Whether this file may be a plugin of `kind` at all.
    pub fn may_be_kind(&self, kind: PluginKind) -> bool {
        self.kind.is_none_or(|k| k == kind)
    }

    /// `path: why`, as warnings and errors show it.
    pub fn describe(&self) -> String {
        format!("{}: {}", self.path.display(), self.error)
    }
}

/// The plugins in effect: built-ins, replaced by same-named drop-ins of higher precedence,
/// and the drop-in files that could not be used.
pub struct PluginSet {
    pub plugins: Vec<Plugin>,
    /// Files skipped, each with its reason: a stale or broken drop-in costs that plugin, never
    /// the tool. [`PluginSet::strict`] turns them into an error.
    pub broken: Vec<BrokenPlugin>,
}

impl PluginSet {
    /// Loads the built-ins, then every `*.wasm` of `dirs` (lowest precedence first). A plugin
    /// replaces an earlier one of the same kind and name. A file that does not load is set
    /// aside in [`PluginSet::broken`], as are two plugins of one kind and name in one folder
    /// (neither is used: which one the user meant is unknown). Only a built-in that does not
    /// load is an error: that is a broken build.
    pub fn discover(rt: &PluginRuntime, builtins: &[Builtin], dirs: &[PathBuf]) -> Result<Self, PluginError> {
        let mut plugins: Vec<Plugin> = Vec::new();
        let mut broken: Vec<BrokenPlugin> = Vec::new();
        for builtin in builtins {
            let p = load_plugin(rt, builtin.wasm, Origin::Builtin(builtin.package)).map_err(|f| f.error)?;
            insert(&mut plugins, p);
        }
        for dir in dirs {
            let files = match wasm_files(dir) {
                Ok(f) => f,
                Err(error) => {
                    broken.push(BrokenPlugin { path: dir.clone(), kind: None, error });
                    continue;
                }
            };
            let mut in_folder: Vec<Plugin> = Vec::new();
            for path in files {
                let loaded = std::fs::read(&path)
                    .map_err(|source| LoadFailure {
                        kind: None,
                        error: PluginError::Read { path: path.clone(), source },
                    })
                    .and_then(|bytes| load_plugin(rt, &bytes, Origin::File(path.clone())));
                match loaded {
                    Ok(p) => in_folder.push(p),
                    Err(f) => broken.push(BrokenPlugin { path, kind: f.kind, error: f.error }),
                }
            }
            for (kind, name, paths) in duplicates(&in_folder) {
                in_folder.retain(|p| !(p.meta.kind == kind && p.meta.name == name));
                for path in &paths {
                    let error = PluginError::DuplicateInFolder {
                        kind: kind.as_str(),
                        name: name.clone(),
                        first: paths[0].clone(),
                        second: paths[1].clone(),
                    };
                    broken.push(BrokenPlugin { path: path.clone(), kind: Some(kind), error });
                }
            }
            for p in in_folder {
                insert(&mut plugins, p);
            }
        }
        plugins.sort_by(|a, b| (a.meta.kind, &a.meta.name).cmp(&(b.meta.kind, &b.meta.name)));
        broken.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(Self { plugins, broken })
    }

    /// Fails closed (`--strict-plugins`, for CI): any broken plugin file is an error.
    pub fn strict(self) -> Result<Self, PluginError> {
        if self.broken.is_empty() {
            return Ok(self);
        }
        Err(PluginError::Broken {
            files: self.broken.iter().map(BrokenPlugin::describe).collect::<Vec<_>>().join("\n  "),
        })
    }

    /// The broken files that may be a plugin of `kind` named `name`.
    pub fn broken_candidates(&self, kind: PluginKind, name: &str) -> impl Iterator<Item = &BrokenPlugin> {
        self.broken.iter().filter(move |b| b.may_be(kind, name))
    }

    pub fn of_kind(&self, kind: PluginKind) -> impl Iterator<Item = &Plugin> {
        self.plugins.iter().filter(move |p| p.meta.kind == kind)
    }

    pub fn find(&self, kind: PluginKind, name: &str) -> Option<&Plugin> {
        self.of_kind(kind).find(|p| p.meta.name == name)
    }
}

fn insert(plugins: &mut Vec<Plugin>, mut p: Plugin) {
    if let Some(i) = plugins.iter().position(|q| q.meta.kind == p.meta.kind && q.meta.name == p.meta.name) {
        let old = plugins.remove(i);
        p.meta.replaces = old.meta.replaces;
        p.meta.replaces.push(old.meta.origin);
    }
    plugins.push(p);
}

/// (kind, name, files) of every plugin that more than one file of a folder provides.
fn duplicates(in_folder: &[Plugin]) -> Vec<(PluginKind, String, Vec<PathBuf>)> {
    let mut out: Vec<(PluginKind, String, Vec<PathBuf>)> = Vec::new();
    for p in in_folder {
        let Origin::File(path) = &p.meta.origin else { continue };
        match out.iter_mut().find(|(k, n, _)| *k == p.meta.kind && *n == p.meta.name) {
            Some((_, _, paths)) => paths.push(path.clone()),
            None => out.push((p.meta.kind, p.meta.name.clone(), vec![path.clone()])),
        }
    }
    out.retain(|(_, _, paths)| paths.len() > 1);
    out
}

/// `*.wasm` files of a folder in name order; a missing folder has none.
fn wasm_files(dir: &Path) -> Result<Vec<PathBuf>, PluginError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(PluginError::ReadDir { path: dir.to_path_buf(), source }),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| PluginError::ReadDir { path: dir.to_path_buf(), source })?;
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "wasm") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Plugin folders in precedence order, lowest first: the default folder, then
/// `ENERGY_STAR_PLUGIN_PATH` (colon-separated, earlier entries win), then `--plugin-dir` (earlier wins).
pub fn plugin_dirs(cli_dirs: &[PathBuf], env_path: Option<&str>, default_dir: Option<&Path>) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = default_dir {
        dirs.push(d.to_path_buf());
    }
    if let Some(path) = env_path {
        let mut env_dirs: Vec<PathBuf> = path.split(':').filter(|s| !s.is_empty()).map(PathBuf::from).collect();
        env_dirs.reverse();
        dirs.extend(env_dirs);
    }
    dirs.extend(cli_dirs.iter().rev().cloned());
    // A folder named twice is scanned once, at its highest precedence.
    let mut seen = Vec::new();
    for d in dirs.into_iter().rev() {
        if !seen.contains(&d) {
            seen.push(d);
        }
    }
    seen.reverse();
    seen
}
