//! A model's chat template, rendered as transformers renders it.
//!
//! transformers' `apply_chat_template` runs the template in a sandboxed Jinja2 environment with
//! `trim_blocks` and `lstrip_blocks`, loop controls, its own `tojson` (Python's `json.dumps`,
//! non-ASCII kept), `raise_exception` and `strftime_now`, and the tokenizer's special tokens,
//! `messages`, `add_generation_prompt` and every extra keyword argument in the context; then it
//! tokenizes the text without adding special tokens. minijinja with minijinja-contrib's
//! Python-method compatibility (`.strip()`, `.split()`, `.startswith()`, `.items()`, ...) runs
//! the same templates.
//!
//! The template comes from `chat_template.jinja` beside the tokenizer, else
//! `tokenizer_config.json`'s `chat_template` (a string, or a list of named templates of which
//! "default" is used). `strftime_now` reads the clock, or `SOURCE_DATE_EPOCH` when set, so that
//! runs and tests are reproducible; it formats in UTC (transformers uses local time).

use std::collections::BTreeMap;
use std::path::Path;

use minijinja::value::{Kwargs, Value};
use minijinja::{Environment, Error, ErrorKind};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

/// A chat template and where it came from.
#[derive(Debug, Clone)]
pub struct ChatTemplate {
    pub source: String,
    /// `chat_template.jinja`, or `tokenizer_config.json` (with the template's name if a list).
    pub origin: String,
    /// The tokenizer's special tokens by role (`bos_token`, `eos_token`, ...), as the template
    /// sees them.
    special_tokens: BTreeMap<String, String>,
}

/// The outcome of rendering: the text, and the keyword arguments the template never reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub text: String,
    pub unused_kwargs: Vec<String>,
}

impl ChatTemplate {
    /// Finds the template of the tokenizer in `dir`; `Ok(None)` when the model has none.
    pub fn find(dir: &Path) -> Result<Option<Self>, String> {
        let config_path = dir.join("tokenizer_config.json");
        let config: Json = match std::fs::read_to_string(&config_path) {
            Ok(t) => {
                serde_json::from_str(&t).map_err(|e| format!("{} is not valid JSON: {e}", config_path.display()))?
            }
            Err(_) => Json::Null,
        };
        let special_tokens = special_tokens(&config);
        let jinja = dir.join("chat_template.jinja");
        if jinja.is_file() {
            let source = std::fs::read_to_string(&jinja).map_err(|e| format!("{}: {e}", jinja.display()))?;
            return Ok(Some(Self { source, origin: "chat_template.jinja".into(), special_tokens }));
        }
        let (source, origin) = match config.get("chat_template") {
            None | Some(Json::Null) => return Ok(None),
            Some(Json::String(s)) => (s.clone(), "tokenizer_config.json".to_string()),
            Some(Json::Array(named)) => {
                let pick = named.iter().find(|t| t.get("name").and_then(Json::as_str) == Some("default"));
                let names: Vec<&str> = named.iter().filter_map(|t| t.get("name").and_then(Json::as_str)).collect();
                let t = pick.and_then(|t| t.get("template")).and_then(Json::as_str).ok_or_else(|| {
                    format!("tokenizer_config.json has chat templates named {names:?} but none named \"default\"")
                })?;
                (t.to_string(), "tokenizer_config.json (template \"default\")".to_string())
            }
            Some(other) => {
                return Err(format!("tokenizer_config.json's chat_template is neither text nor a list: {other}"));
            }
        };
        Ok(Some(Self { source, origin, special_tokens }))
    }

    /// A template given as text, with `special_tokens` (role → token) in its context.
    pub fn from_source(source: &str, origin: &str, special_tokens: BTreeMap<String, String>) -> Self {
        Self { source: source.to_string(), origin: origin.to_string(), special_tokens }
    }

    /// SHA-256 of the template text, hex: what a report records.
    pub fn sha256(&self) -> String {
        Sha256::digest(self.source.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Renders `messages` (a list of `{role, content, ...}`) with `add_generation_prompt` and
    /// `kwargs` in the context. `now_unix_s` is what `strftime_now` formats.
    pub fn render(
        &self,
        messages: &Json,
        add_generation_prompt: bool,
        kwargs: &serde_json::Map<String, Json>,
        now_unix_s: i64,
    ) -> Result<Rendered, String> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", move |format: String| strftime(&format, now_unix_s));
        env.add_filter("tojson", tojson);
        // transformers' `{% generation %}` marks assistant text for training masks; it renders
        // its body unchanged.
        let source = without_generation_tags(&self.source);
        let template = env
            .template_from_named_str("chat_template", &source)
            .map_err(|e| format!("the chat template ({}) does not parse: {}", self.origin, describe(&e)))?;
        let mut context = serde_json::Map::new();
        for (k, v) in &self.special_tokens {
            context.insert(k.clone(), Json::String(v.clone()));
        }
        context.insert("messages".into(), normalized(messages));
        context.insert("add_generation_prompt".into(), Json::Bool(add_generation_prompt));
        context.entry("tools").or_insert(Json::Null);
        context.entry("documents").or_insert(Json::Null);
        for (k, v) in kwargs {
            context.insert(k.clone(), v.clone());
        }
        let text = template
            .render(Value::from_serialize(&context))
            .map_err(|e| format!("the chat template ({}) failed: {}", self.origin, describe(&e)))?;
        let read = template.undeclared_variables(false);
        let unused_kwargs = kwargs.keys().filter(|k| !read.contains(k.as_str())).cloned().collect();
        Ok(Rendered { text, unused_kwargs })
    }
}

/// The template without `{% generation %}` / `{% endgeneration %}` tags (any whitespace-control
/// spelling), which minijinja does not know.
fn without_generation_tags(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(start) = rest.find("{%") {
        let Some(len) = rest[start..].find("%}") else { break };
        let tag = &rest[start + 2..start + len];
        let word = tag.trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace());
        out.push_str(&rest[..start]);
        if word != "generation" && word != "endgeneration" {
            out.push_str(&rest[start..start + len + 2]);
        }
        rest = &rest[start + len + 2..];
    }
    out.push_str(rest);
    out
}

/// Messages as transformers 5 hands them to a template: keys whose value is null dropped, and
/// an assistant's reasoning under both names templates read (`thinking`, gpt-oss';
/// `reasoning_content`, Qwen's), whichever the caller used.
fn normalized(messages: &Json) -> Json {
    let Json::Array(list) = messages else { return messages.clone() };
    Json::Array(
        list.iter()
            .map(|m| {
                let Json::Object(fields) = m else { return m.clone() };
                let mut out: serde_json::Map<String, Json> =
                    fields.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), v.clone())).collect();
                let reasoning = out.get("thinking").or_else(|| out.get("reasoning_content")).cloned();
                if let Some(r) = reasoning {
                    out.entry("thinking").or_insert_with(|| r.clone());
                    out.entry("reasoning_content").or_insert(r);
                }
                Json::Object(out)
            })
            .collect(),
    )
}

/// The `<|...|>` markers in `text`: the special-token spelling of gpt-oss, Qwen, SmolLM and
/// Llama 3 templates, each of which must be one token of the model's tokenizer.
pub fn marker_tokens(text: &str) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("<|") {
        let after = &rest[start + 2..];
        match after.find("|>") {
            Some(end) if !after[..end].contains(char::is_whitespace) && !after[..end].contains("<|") => {
                let token = &rest[start..start + 2 + end + 2];
                if !out.contains(&token) {
                    out.push(token);
                }
                rest = &after[end + 2..];
            }
            _ => rest = after,
        }
    }
    out
}

/// The moment `strftime_now` shows: `SOURCE_DATE_EPOCH` when set, else the clock.
pub fn template_now(env: &impl Fn(&str) -> Option<String>) -> Result<i64, String> {
    match env("SOURCE_DATE_EPOCH") {
        Some(s) => s.trim().parse().map_err(|_| format!("SOURCE_DATE_EPOCH={s:?} is not a whole number of seconds")),
        None => Ok(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)),
    }
}

/// `bos_token`, `eos_token`, ... from tokenizer_config.json: a string or an AddedToken object.
fn special_tokens(config: &Json) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for key in ["bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token", "mask_token"] {
        let token = match config.get(key) {
            Some(Json::String(s)) => Some(s.clone()),
            Some(Json::Object(o)) => o.get("content").and_then(Json::as_str).map(str::to_string),
            _ => None,
        };
        if let Some(t) = token {
            out.insert(key.to_string(), t);
        }
    }
    out
}

/// An error with its cause chain and the template line, as one line.
fn describe(e: &Error) -> String {
    let mut s = match (e.kind(), e.detail()) {
        (ErrorKind::InvalidOperation, Some(d)) => d.to_string(),
        _ => e.to_string(),
    };
    if let Some(line) = e.line() {
        s.push_str(&format!(" (template line {line})"));
    }
    s
}

fn raise_exception(message: String) -> Result<Value, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, message))
}

/// Python's `json.dumps(value, ensure_ascii=False, indent=indent)`, as transformers' filter.
fn tojson(value: Value, kwargs: Kwargs) -> Result<Value, Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    let _: Option<bool> = kwargs.get("ensure_ascii")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    kwargs.assert_all_used()?;
    let json: Json =
        serde_json::to_value(&value).map_err(|e| Error::new(ErrorKind::InvalidOperation, format!("tojson: {e}")))?;
    let mut out = String::new();
    python_json(&json, indent, 0, sort_keys.unwrap_or(false), &mut out);
    Ok(Value::from(out))
}

/// Writes `v` as Python's json.dumps does: `", "` and `": "` without an indent, `","` and
/// newlines with one; floats as Python prints them; non-ASCII unescaped.
fn python_json(v: &Json, indent: Option<usize>, level: usize, sort_keys: bool, out: &mut String) {
    let newline = |out: &mut String, level: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * level));
        }
    };
    let item_sep = if indent.is_some() { "," } else { ", " };
    match v {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => out.push_str(&i.to_string()),
            (_, Some(u), _) => out.push_str(&u.to_string()),
            (_, _, Some(f)) => out.push_str(&python_float(f)),
            _ => out.push_str(&n.to_string()),
        },
        Json::String(s) => python_string(s, out),
        Json::Array(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, level + 1);
                python_json(item, indent, level + 1, sort_keys, out);
            }
            newline(out, level);
            out.push(']');
        }
        Json::Object(map) => {
            if map.is_empty() {
                out.push_str("{}");
                return;
            }
            let mut entries: Vec<(&String, &Json)> = map.iter().collect();
            if sort_keys {
                entries.sort_by(|a, b| a.0.cmp(b.0));
            }
            out.push('{');
            for (i, (k, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, level + 1);
                python_string(k, out);
                out.push_str(": ");
                python_json(item, indent, level + 1, sort_keys, out);
            }
            newline(out, level);
            out.push('}');
        }
    }
}

fn python_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity".into() } else { "-Infinity".into() }
    } else if f == f.trunc() && f.abs() < 1e16 {
        format!("{f:.1}")
    } else {
        // Rust's shortest round-trip form is Python's repr for ordinary magnitudes.
        format!("{f}")
    }
}

fn python_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

/// Python's `strftime` for the directives templates use, in UTC.
fn strftime(format: &str, unix_s: i64) -> Result<String, Error> {
    let days = unix_s.div_euclid(86_400);
    let secs = unix_s.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    // 1970-01-01 was a Thursday (index 3 from Monday).
    let weekday = (days + 3).rem_euclid(7) as usize;
    let day_of_year = days - days_from_civil(y, 1, 1) + 1;
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('Y') => out.push_str(&y.to_string()),
            Some('y') => out.push_str(&format!("{:02}", y.rem_euclid(100))),
            Some('m') => out.push_str(&format!("{m:02}")),
            Some('d') => out.push_str(&format!("{d:02}")),
            Some('-') => match chars.next() {
                // glibc's `%-d` / `%-m`: no padding.
                Some('d') => out.push_str(&d.to_string()),
                Some('m') => out.push_str(&m.to_string()),
                other => return Err(unsupported(other)),
            },
            Some('B') => out.push_str(MONTHS[(m - 1) as usize]),
            Some('b') => out.push_str(&MONTHS[(m - 1) as usize][..3]),
            Some('A') => out.push_str(WEEKDAYS[weekday]),
            Some('a') => out.push_str(&WEEKDAYS[weekday][..3]),
            Some('H') => out.push_str(&format!("{:02}", secs / 3600)),
            Some('M') => out.push_str(&format!("{:02}", secs / 60 % 60)),
            Some('S') => out.push_str(&format!("{:02}", secs % 60)),
            Some('j') => out.push_str(&format!("{day_of_year:03}")),
            Some('%') => out.push('%'),
            other => return Err(unsupported(other)),
        }
    }
    Ok(out)
}

fn unsupported(directive: Option<char>) -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        format!("strftime_now: %{} is not supported", directive.map(String::from).unwrap_or_default()),
    )
}

/// (year, month, day) of a day count since 1970-01-01 (proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real templates (gpt-oss' Harmony, Qwen3, SmolLM3, Qwen2.5's ChatML, Mistral Nemo's, which
    /// raises) on the cases transformers 5.25 rendered and tokenized
    /// (tests/fixtures/chat-templates/references.json): the same text, the same token ids, and
    /// the template's own message where it raises.
    #[test]
    fn real_templates_render_and_tokenize_as_transformers_does() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/chat-templates");
        let refs: Json =
            serde_json::from_str(&std::fs::read_to_string(dir.join("references.json")).expect("references"))
                .expect("json");
        let tokenizer = tokenizers::Tokenizer::from_file(dir.join("../tiny-llama/tokenizer.json")).expect("tokenizer");
        let now = refs["source_date_epoch"].as_i64().expect("epoch");
        let cases = refs["cases"].as_array().expect("cases");
        assert!(cases.len() >= 10, "{} cases", cases.len());
        for case in cases {
            let name = case["name"].as_str().expect("name");
            let file = case["template"].as_str().expect("template");
            let source = std::fs::read_to_string(dir.join(file)).expect("template file");
            let t = ChatTemplate::from_source(&source, file, tokens());
            assert_eq!(t.sha256(), refs["templates"][file]["sha256"], "{file}");
            let kwargs = case["kwargs"].as_object().cloned().unwrap_or_default();
            let agp = case["add_generation_prompt"].as_bool().unwrap_or(true);
            let got = t.render(&case["messages"], agp, &kwargs, now);
            if let Some(error) = case["error"].as_str() {
                let err = got.expect_err(name);
                assert!(err.contains(error), "{name}: {err}\nwanted: {error}");
                continue;
            }
            let got = got.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(got.text, case["text"].as_str().expect("text"), "{name}");
            let ids: Vec<u64> = tokenizer
                .encode(got.text.as_str(), false)
                .expect("encode")
                .get_ids()
                .iter()
                .map(|&i| i.into())
                .collect();
            let want: Vec<u64> =
                case["input_ids"].as_array().expect("ids").iter().map(|i| i.as_u64().expect("id")).collect();
            assert_eq!(ids, want, "{name}");
        }
    }

    #[test]
    fn generation_tags_are_dropped_in_every_spelling() {
        assert_eq!(without_generation_tags("a{% generation %}b{%- endgeneration -%}c{% if x %}"), "abc{% if x %}");
    }

    #[test]
    fn markers_are_the_special_token_spellings_in_the_text() {
        assert_eq!(
            marker_tokens("<|start|>user<|message|>a <| b |> <|x<|end|><|start|>"),
            vec!["<|start|>", "<|message|>", "<|end|>"]
        );
        assert!(marker_tokens("plain <s> text").is_empty());
    }

    #[test]
    fn strftime_formats_utc_dates_as_python_does() {
        // 2025-12-04T00:00:00Z, a Thursday.
        let t = 1_764_806_400;
        assert_eq!(strftime("%Y-%m-%d", t).expect("f"), "2025-12-04");
        assert_eq!(strftime("%d %b %Y", t).expect("f"), "04 Dec 2025");
        assert_eq!(
            strftime("%d %B %Y, %A %a %j %H:%M:%S %%", t + 3723).expect("f"),
            "04 December 2025, Thursday Thu 338 01:02:03 %"
        );
        assert_eq!(strftime("%Y-%m-%d", 951_782_400).expect("leap day"), "2000-02-29");
        assert_eq!(strftime("%Y-%m-%d %A", 0).expect("epoch"), "1970-01-01 Thursday");
        assert!(strftime("%Q", t).is_err());
    }

    #[test]
    fn tojson_writes_what_pythons_json_dumps_writes() {
        let v: Json =
            serde_json::from_str(r#"{"b": [1, 2.0, 0.5, true, null], "a": "é\n\"x\"", "c": {}}"#).expect("json");
        let mut out = String::new();
        python_json(&v, None, 0, false, &mut out);
        assert_eq!(out, r#"{"b": [1, 2.0, 0.5, true, null], "a": "é\n\"x\"", "c": {}}"#);
        let mut out = String::new();
        python_json(&serde_json::json!({"k": [1, {"z": 2}]}), Some(2), 0, false, &mut out);
        assert_eq!(out, "{\n  \"k\": [\n    1,\n    {\n      \"z\": 2\n    }\n  ]\n}");
    }

    fn tokens() -> BTreeMap<String, String> {
        BTreeMap::from([("bos_token".to_string(), "<s>".to_string()), ("eos_token".to_string(), "</s>".to_string())])
    }

    #[test]
    fn a_template_sees_messages_tokens_kwargs_and_python_methods() {
        let t = ChatTemplate::from_source(
            "{{ bos_token }}{% for m in messages %}{{ m.role | upper }}: {{ m.content.strip() }}{% if not loop.last %}{{ '\n' }}{% endif %}{% endfor %}\n{% if add_generation_prompt %}ASSISTANT{% if effort is defined %} ({{ effort }}){% endif %}:{% endif %}",
            "test",
            tokens(),
        );
        let messages =
            serde_json::json!([{"role": "user", "content": "  hi  "}, {"role": "assistant", "content": "ok"}]);
        let kwargs = serde_json::json!({"effort": "high", "ignored": 3});
        let r = t.render(&messages, true, kwargs.as_object().expect("map"), 0).expect("render");
        // trim_blocks: the newline after `{% endfor %}` goes, as in Jinja2.
        assert_eq!(r.text, "<s>USER: hi\nASSISTANT: okASSISTANT (high):");
        assert_eq!(r.unused_kwargs, vec!["ignored".to_string()]);
    }

    #[test]
    fn templates_that_do_not_parse_or_raise_are_errors_quoting_the_template() {
        let t = ChatTemplate::from_source("{% for m in messages %}", "broken", tokens());
        let err = t.render(&serde_json::json!([]), true, &serde_json::Map::new(), 0).unwrap_err();
        assert!(err.contains("does not parse"), "{err}");
        let t = ChatTemplate::from_source(
            "{% if messages[0].role != 'user' %}{{ raise_exception('Conversation roles must alternate user/assistant') }}{% endif %}",
            "strict",
            tokens(),
        );
        let err = t
            .render(&serde_json::json!([{"role": "assistant", "content": "x"}]), true, &serde_json::Map::new(), 0)
            .unwrap_err();
        assert!(err.contains("Conversation roles must alternate user/assistant") && err.contains("strict"), "{err}");
    }
}
