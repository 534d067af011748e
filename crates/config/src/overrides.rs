//! Hydra-style command-line overrides: `a.b=c` (the key must exist), `+a.b=c` (add a new key),
//! `++a.b=c` (add or replace), `~a.b` / `~a.b=c` (delete). Values are typed as Hydra types them:
//! integers, floats, `true`/`false` in any case, `null`, quoted strings, `[lists]` and
//! `{maps}`; anything else is a string.

use serde_json::{Map, Value};

use super::ConfigError;

/// What an override does.
#[derive(Debug, Clone, PartialEq)]
pub enum OverrideOp {
    Set,
    Add,
    ForceAdd,
    Delete,
}

/// One parsed `key=value` argument.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    pub op: OverrideOp,
    pub path: Vec<String>,
    pub value: Option<Value>,
    /// The argument as typed, for error messages.
    pub text: String,
}

impl Override {
    pub fn key(&self) -> String {
        self.path.join(".")
    }
}

/// Parses one override argument.
pub fn parse(text: &str) -> Result<Override, ConfigError> {
    let bad = |why: String| ConfigError::BadOverride { text: text.to_string(), why };
    let (op, rest) = if let Some(r) = text.strip_prefix("++") {
        (OverrideOp::ForceAdd, r)
    } else if let Some(r) = text.strip_prefix('+') {
        (OverrideOp::Add, r)
    } else if let Some(r) = text.strip_prefix('~') {
        (OverrideOp::Delete, r)
    } else {
        (OverrideOp::Set, text)
    };
    let (key, value) = match rest.split_once('=') {
        Some((k, v)) => (k.trim(), Some(v)),
        None if op == OverrideOp::Delete => (rest.trim(), None),
        None => return Err(bad("expected key=value".into())),
    };
    if key.contains('@') {
        return Err(bad("package overrides (key@package) are not supported".into()));
    }
    let path: Vec<String> = key.split('.').map(str::to_string).collect();
    if path.iter().any(|p| p.is_empty() || !p.chars().all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '/'))) {
        return Err(bad(format!("{key:?} is not a key path (letters, digits, '_', '-' separated by '.')")));
    }
    let value = match value {
        Some(v) => Some(parse_value(v).map_err(bad)?),
        None => None,
    };
    Ok(Override { op, path, value, text: text.to_string() })
}

/// Parses a value with Hydra's typing rules.
pub fn parse_value(text: &str) -> Result<Value, String> {
    let mut p = ValueParser { s: text.trim().as_bytes(), i: 0, src: text.trim() };
    if p.s.is_empty() {
        return Ok(Value::String(String::new()));
    }
    let v = p.element(true)?;
    p.skip_ws();
    if p.i < p.s.len() {
        if p.s[p.i] == b',' {
            return Err(format!(
                "ambiguous value {text:?}: use [a,b] for a list or quote it ('a,b') for a string (sweeps need --multirun, which energy-star does not do)"
            ));
        }
        return Err(format!("unexpected {:?} in value {text:?}", &p.src[p.i..]));
    }
    Ok(v)
}

struct ValueParser<'a> {
    s: &'a [u8],
    i: usize,
    src: &'a str,
}

impl ValueParser<'_> {
    fn skip_ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn element(&mut self, top: bool) -> Result<Value, String> {
        self.skip_ws();
        match self.s.get(self.i) {
            Some(b'[') => self.list(),
            Some(b'{') => self.map(),
            Some(b'\'') | Some(b'"') => self.quoted().map(Value::String),
            Some(_) => Ok(primitive(self.bare(top)?.trim())),
            None => Err(format!("value {:?} ends too early", self.src)),
        }
    }

    /// An unquoted run up to a structural character.
    fn bare(&mut self, top: bool) -> Result<&str, String> {
        let start = self.i;
        let mut depth = 0usize; // inside ${...} interpolations, structure characters are text
        while self.i < self.s.len() {
            let c = self.s[self.i];
            if c == b'$' && self.s.get(self.i + 1) == Some(&b'{') {
                depth += 1;
                self.i += 2;
                continue;
            }
            if depth > 0 {
                if c == b'}' {
                    depth -= 1;
                }
                self.i += 1;
                continue;
            }
            if c == b',' || (!top && matches!(c, b']' | b'}' | b':')) || matches!(c, b'[' | b'{') {
                break;
            }
            self.i += 1;
        }
        std::str::from_utf8(&self.s[start..self.i]).map_err(|e| e.to_string())
    }

    fn quoted(&mut self) -> Result<String, String> {
        let q = self.s[self.i];
        self.i += 1;
        let mut out = Vec::new();
        while self.i < self.s.len() {
            let c = self.s[self.i];
            if c == b'\\' && self.s.get(self.i + 1) == Some(&q) {
                out.push(q);
                self.i += 2;
                continue;
            }
            if c == q {
                self.i += 1;
                return String::from_utf8(out).map_err(|e| e.to_string());
            }
            out.push(c);
            self.i += 1;
        }
        Err(format!("unterminated quote in {:?}", self.src))
    }

    fn list(&mut self) -> Result<Value, String> {
        self.i += 1;
        let mut items = Vec::new();
        self.skip_ws();
        if self.s.get(self.i) == Some(&b']') {
            self.i += 1;
            return Ok(Value::Array(items));
        }
        loop {
            items.push(self.element(false)?);
            self.skip_ws();
            match self.s.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(format!("unterminated list in {:?}", self.src)),
            }
        }
    }

    fn map(&mut self) -> Result<Value, String> {
        self.i += 1;
        let mut map = Map::new();
        self.skip_ws();
        if self.s.get(self.i) == Some(&b'}') {
            self.i += 1;
            return Ok(Value::Object(map));
        }
        loop {
            self.skip_ws();
            let key = match self.s.get(self.i) {
                Some(b'\'') | Some(b'"') => self.quoted()?,
                _ => self.bare(false)?.trim().to_string(),
            };
            self.skip_ws();
            if self.s.get(self.i) != Some(&b':') {
                return Err(format!("expected ':' after key {key:?} in {:?}", self.src));
            }
            self.i += 1;
            let v = self.element(false)?;
            map.insert(key, v);
            self.skip_ws();
            match self.s.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(Value::Object(map));
                }
                _ => return Err(format!("unterminated map in {:?}", self.src)),
            }
        }
    }
}

/// Types an unquoted value: null, bool, int, float, else string.
fn primitive(t: &str) -> Value {
    let lower = t.to_ascii_lowercase();
    match lower.as_str() {
        "null" => return Value::Null,
        "true" => return Value::Bool(true),
        "false" => return Value::Bool(false),
        _ => {}
    }
    let digits = t.replace('_', "");
    let is_int = {
        let d = digits.strip_prefix(['+', '-']).unwrap_or(&digits);
        !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())
    };
    if is_int && let Ok(i) = digits.parse::<i64>() {
        return Value::from(i);
    }
    let looks_float = digits.bytes().any(|b| b.is_ascii_digit())
        && digits.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    if looks_float
        && let Ok(f) = digits.parse::<f64>()
        && f.is_finite()
    {
        return Value::from(f);
    }
    Value::String(t.to_string())
}

/// Keys whose maps take any key (optimum-benchmark types them `Dict[str, Any]`), so a plain
/// `a.b=c` may add to them as Hydra allows.
const OPEN_MAPS: &[&str] = &[
    "generate_kwargs",
    "forward_kwargs",
    "call_kwargs",
    "reasoning_params",
    "input_shapes",
    "numactl_kwargs",
    "model_kwargs",
    "processor_kwargs",
    "env_set",
];

/// Applies one override to `root`.
pub fn apply(root: &mut Value, o: &Override) -> Result<(), ConfigError> {
    let key = o.key();
    let (last, parents) = o.path.split_last().expect("parse rejects empty keys");
    // Walk to the parent, creating maps only where adding is allowed.
    let mut node = root;
    for (depth, part) in parents.iter().enumerate() {
        let creating = matches!(o.op, OverrideOp::Add | OverrideOp::ForceAdd);
        let Some(map) = node.as_object_mut() else {
            return Err(ConfigError::NotAMap { key: o.path[..depth].join(".") });
        };
        if !map.contains_key(part) {
            if !creating {
                return Err(no_key(o, &key));
            }
            map.insert(part.clone(), Value::Object(Map::new()));
        }
        node = map.get_mut(part).expect("inserted above");
    }
    let parent_open = parents.last().is_some_and(|p| OPEN_MAPS.contains(&p.as_str()));
    let Some(map) = node.as_object_mut() else {
        return Err(ConfigError::NotAMap { key: parents.join(".") });
    };
    match o.op {
        OverrideOp::Set => {
            if !map.contains_key(last) && !parent_open {
                return Err(no_key(o, &key));
            }
            map.insert(last.clone(), o.value.clone().unwrap_or(Value::Null));
        }
        OverrideOp::Add => {
            if map.contains_key(last) {
                return Err(ConfigError::BadOverride {
                    text: o.text.clone(),
                    why: format!("{key} already exists; use {key}=... to change it or ++{key}=... to force"),
                });
            }
            map.insert(last.clone(), o.value.clone().unwrap_or(Value::Null));
        }
        OverrideOp::ForceAdd => {
            map.insert(last.clone(), o.value.clone().unwrap_or(Value::Null));
        }
        OverrideOp::Delete => {
            let Some(current) = map.get(last) else { return Err(no_key(o, &key)) };
            if let Some(expected) = &o.value
                && current != expected
            {
                return Err(ConfigError::BadOverride {
                    text: o.text.clone(),
                    why: format!("{key} is {current}, not {expected}"),
                });
            }
            map.shift_remove(last);
        }
    }
    Ok(())
}

fn no_key(o: &Override, key: &str) -> ConfigError {
    match o.op {
        OverrideOp::Delete => ConfigError::NothingToDelete { text: o.text.clone(), key: key.to_string() },
        _ => ConfigError::NoSuchKey { text: o.text.clone(), key: key.to_string() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn v(t: &str) -> Value {
        parse_value(t).expect(t)
    }

    #[test]
    fn values_are_typed_as_hydra_types_them() {
        assert_eq!(v("10"), json!(10));
        assert_eq!(v("-3"), json!(-3));
        assert_eq!(v("1_000"), json!(1000));
        assert_eq!(v("0.5"), json!(0.5));
        assert_eq!(v("1e-3"), json!(0.001));
        assert_eq!(v("True"), json!(true));
        assert_eq!(v("FALSE"), json!(false));
        assert_eq!(v("null"), Value::Null);
        assert_eq!(v("openai/gpt-oss-20b"), json!("openai/gpt-oss-20b"));
        assert_eq!(v("'10'"), json!("10"));
        assert_eq!(v("\"a,b\""), json!("a,b"));
        assert_eq!(v("[0, 1, 2]"), json!([0, 1, 2]));
        assert_eq!(v("[a, 'b c', [1]]"), json!(["a", "b c", [1]]));
        assert_eq!(v("{a: 1, b: [x]}"), json!({"a": 1, "b": ["x"]}));
        assert_eq!(v("${name}"), json!("${name}"));
        assert_eq!(v(""), json!(""));
        assert_eq!(v("/results"), json!("/results"));
    }

    #[test]
    fn bad_values_are_errors() {
        assert!(parse_value("0,1").unwrap_err().contains("ambiguous"));
        assert!(parse_value("[1, 2").is_err());
        assert!(parse_value("'abc").is_err());
        assert!(parse_value("{a 1}").is_err());
    }

    #[test]
    fn forms_of_override() {
        assert_eq!(parse("a.b=1").expect("set").op, OverrideOp::Set);
        assert_eq!(parse("+a.b=1").expect("add").op, OverrideOp::Add);
        assert_eq!(parse("++a.b=1").expect("force").op, OverrideOp::ForceAdd);
        let d = parse("~a.b").expect("delete");
        assert_eq!((d.op, d.value), (OverrideOp::Delete, None));
        assert!(parse("novalue").is_err());
        assert!(parse("a..b=1").is_err());
        assert!(parse("=1").is_err());
    }

    #[test]
    fn apply_respects_hydra_rules() {
        let mut cfg = json!({"backend": {"model": "x"}, "scenario": {"generate_kwargs": {}}});
        apply(&mut cfg, &parse("backend.model=y").expect("p")).expect("set existing");
        assert_eq!(cfg["backend"]["model"], "y");
        let err = apply(&mut cfg, &parse("backend.modle=y").expect("p")).unwrap_err();
        assert!(err.to_string().contains("+backend.modle=y"), "{err}");
        apply(&mut cfg, &parse("scenario.generate_kwargs.max_new_tokens=16").expect("p")).expect("open map");
        assert_eq!(cfg["scenario"]["generate_kwargs"]["max_new_tokens"], 16);
        apply(&mut cfg, &parse("+backend.seed=1").expect("p")).expect("add");
        assert!(apply(&mut cfg, &parse("+backend.seed=2").expect("p")).is_err());
        apply(&mut cfg, &parse("++backend.seed=3").expect("p")).expect("force");
        assert_eq!(cfg["backend"]["seed"], 3);
        apply(&mut cfg, &parse("++new.deep.key=1").expect("p")).expect("force creates");
        assert_eq!(cfg["new"]["deep"]["key"], 1);
        apply(&mut cfg, &parse("~backend.seed").expect("p")).expect("delete");
        assert!(cfg["backend"].get("seed").is_none());
        let twice = apply(&mut cfg, &parse("~backend.seed").expect("p")).unwrap_err().to_string();
        assert!(
            twice.contains("no key backend.seed, so there is nothing to delete") && !twice.contains("+~"),
            "{twice}"
        );
        let below = apply(&mut cfg, &parse("~absent.key").expect("p")).unwrap_err().to_string();
        assert!(below.contains("nothing to delete"), "{below}");
        assert!(apply(&mut cfg, &parse("backend.model.x=1").expect("p")).is_err());
    }
}
