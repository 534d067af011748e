//! Repo ids as the Hub spells them, and the URLs `huggingface_hub` builds from them.

use crate::HubError;

/// Models and datasets live apart on the Hub and in the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RepoKind {
    Model,
    Dataset,
}

impl RepoKind {
    /// `model` or `dataset`, as its JSON says it.
    pub fn name(self) -> &'static str {
        match self {
            RepoKind::Model => "model",
            RepoKind::Dataset => "dataset",
        }
    }

    /// The cache's folder prefix (`models--ORG--NAME`) and the API's collection name.
    pub fn plural(self) -> &'static str {
        match self {
            RepoKind::Model => "models",
            RepoKind::Dataset => "datasets",
        }
    }

    /// Where the repo's files are resolved below the endpoint.
    fn url_prefix(self) -> &'static str {
        match self {
            RepoKind::Model => "",
            RepoKind::Dataset => "datasets/",
        }
    }
}

/// One repo at one revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoRef {
    pub kind: RepoKind,
    /// `NAME` or `ORG/NAME`.
    pub id: String,
    /// A branch, a tag or a commit; `main` when none was given.
    pub revision: String,
    /// Whether the revision was given (pinned) rather than the default branch.
    pub pinned: bool,
}

impl RepoRef {
    /// `ORG/NAME[@REVISION]`; an explicit `revision` wins over the `@` suffix only when they
    /// agree (two different pins are an error, not a silent choice).
    pub fn parse(kind: RepoKind, spec: &str, revision: Option<&str>) -> Result<Self, HubError> {
        let (id, at_rev) = match spec.split_once('@') {
            Some((id, rev)) => (id, Some(rev)),
            None => (spec, None),
        };
        let rev = match (at_rev, revision.map(str::trim).filter(|r| !r.is_empty())) {
            (Some(a), Some(b)) if a != b => {
                return Err(HubError::Invalid(format!("{spec} pins revision {a:?} but --revision says {b:?}")));
            }
            (Some(a), _) => Some(a),
            (None, b) => b,
        };
        check_id(id)?;
        if let Some(r) = rev {
            check_revision(id, r)?;
        }
        Ok(Self { kind, id: id.to_string(), revision: rev.unwrap_or("main").to_string(), pinned: rev.is_some() })
    }

    /// `ORG/NAME` as written in the cache's folder name.
    pub fn cache_folder(&self) -> String {
        format!("{}--{}", self.kind.plural(), self.id.replace('/', "--"))
    }

    /// The revision info: commit and file list with sizes and LFS hashes.
    pub(crate) fn revision_url(&self, endpoint: &str) -> String {
        format!("{endpoint}/api/{}/{}/revision/{}?blobs=true", self.kind.plural(), self.id, encode(&self.revision))
    }

    /// A file at a commit (HEAD for its metadata, GET for its bytes, through redirects).
    pub(crate) fn resolve_url(&self, endpoint: &str, commit: &str, file: &str) -> String {
        let path: Vec<String> = file.split('/').map(encode).collect();
        format!("{endpoint}/{}{}/resolve/{}/{}", self.kind.url_prefix(), self.id, encode(commit), path.join("/"))
    }

    /// The repo's page, where a gated model's licence is accepted.
    pub(crate) fn page(&self) -> String {
        format!("{}{}", self.kind.url_prefix(), self.id)
    }

    /// Whether the revision is a full commit id (then a complete snapshot needs no network).
    pub fn revision_is_commit(&self) -> bool {
        is_commit(&self.revision)
    }
}

pub(crate) fn is_commit(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn check_id(id: &str) -> Result<(), HubError> {
    let bad = |why: &str| {
        HubError::Invalid(format!("{id:?} is not a Hugging Face repo id ({why}); ids are NAME or ORG/NAME"))
    };
    let parts: Vec<&str> = id.split('/').collect();
    if id.is_empty() || parts.len() > 2 || parts.iter().any(|p| p.is_empty()) {
        return Err(bad("one or two non-empty parts separated by /"));
    }
    for p in parts {
        if !p.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) {
            return Err(bad("letters, digits, '-', '_' and '.' only"));
        }
        if p.starts_with(['-', '.']) || p.ends_with(['-', '.']) || p.contains("--") || p.contains("..") {
            return Err(bad("no leading or trailing '-' or '.', no '--' or '..'"));
        }
    }
    Ok(())
}

fn check_revision(id: &str, rev: &str) -> Result<(), HubError> {
    // A revision names one folder in the cache (`refs/REV`, `snapshots/COMMIT`).
    let ok = !rev.is_empty()
        && rev != "."
        && !rev.contains("..")
        && rev.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(HubError::Invalid(format!(
            "revision {rev:?} of {id} is not a branch, tag or commit energy-star can pin (letters, digits, '-', '_', '.'; no '/')"
        )))
    }
}

/// Percent-encodes one path segment (RFC 3986 unreserved characters pass).
fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_revisions_and_urls() {
        let r = RepoRef::parse(RepoKind::Model, "openai/gpt-oss-20b@abc", None).expect("parses");
        assert_eq!((r.id.as_str(), r.revision.as_str(), r.pinned), ("openai/gpt-oss-20b", "abc", true));
        assert_eq!(r.cache_folder(), "models--openai--gpt-oss-20b");
        let d = RepoRef::parse(RepoKind::Dataset, "EnergyStarAI/text_generation", None).expect("parses");
        assert_eq!((d.revision.as_str(), d.pinned), ("main", false));
        assert_eq!(
            d.resolve_url("http://h", "c0ffee", "data/train 1.parquet"),
            "http://h/datasets/EnergyStarAI/text_generation/resolve/c0ffee/data/train%201.parquet"
        );
        assert_eq!(
            d.revision_url("http://h"),
            "http://h/api/datasets/EnergyStarAI/text_generation/revision/main?blobs=true"
        );
        assert!(RepoRef::parse(RepoKind::Model, "a/b@x", Some("y")).is_err());
        assert!(RepoRef::parse(RepoKind::Model, "a/b@x", Some("x")).is_ok());
        for bad in ["", "a/b/c", "a//b", "../x", "a/b c", "org/-x", "a/b@../x", "a/b@"] {
            assert!(RepoRef::parse(RepoKind::Model, bad, None).is_err(), "{bad}");
        }
    }
}
