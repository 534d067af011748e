//! How ai_energy_benchmarks (0.0.4 to 0.0.7, the `pytorch` path of AI Energy Score) turns a
//! dataset row into model input, in both modes: a formatter chosen by the model's name
//! (`config/reasoning_formats.yaml`, `formatters/*.py`), the model's chat template for
//! formatter-less and Qwen/Hunyuan models, and the sampling its `reasoning_effort` selects.
//! The research behind it, with the upstream lines: `docs/notes-aeb-reasoning.md`.
//!
//! Pure functions of the model name and `reasoning_params`; the backend asks the host whether
//! the model has a chat template and renders or tokenizes accordingly.

use serde_json::{Map, Value};

/// A formatter of `reasoning_formats.yaml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Formatter {
    /// gpt-oss: Harmony text written by hand (not the model's template).
    Harmony,
    /// A flag line before the row (`/think`, `/no_think`); `default_on` says which is implied.
    SystemPrompt { enable: Option<&'static str>, disable: Option<&'static str>, default_on: bool },
    /// A prefix (`<think>`) while thinking is on (the default).
    Prefix { prefix: &'static str },
    /// The row unchanged; the reasoning keys go to `generate`, which drops them.
    Parameter,
}

impl Formatter {
    pub fn name(self) -> &'static str {
        match self {
            Formatter::Harmony => "harmony",
            Formatter::SystemPrompt { .. } => "system_prompt",
            Formatter::Prefix { .. } => "prefix",
            Formatter::Parameter => "parameter",
        }
    }
}

const THINK: Formatter =
    Formatter::SystemPrompt { enable: Some("/think"), disable: Some("/no_think"), default_on: false };

/// The family a model name falls in: its name in the YAML and its formatter (none: the chat
/// template, or the row as it is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Family {
    pub name: &'static str,
    pub formatter: Option<Formatter>,
}

/// Full names matched exactly and case-sensitively first (`models:`).
const EXACT: &[(&str, Formatter)] = &[
    ("openai/gpt-oss-20b", Formatter::Harmony),
    ("openai/gpt-oss-120b", Formatter::Harmony),
    ("HuggingFaceTB/SmolLM3-3B", THINK),
];

/// Families in the YAML's order, each with the patterns searched in the lowercased name (all
/// plain substrings; the one regex, DeepSeek's `deepseek.*parameter` override, is applied in
/// [`family`]).
const FAMILIES: &[(&str, &[&str], Option<Formatter>)] = &[
    ("gpt-oss", &["gpt-oss", "openai/gpt-oss"], Some(Formatter::Harmony)),
    ("smollm", &["smollm", "huggingfacetb/smollm"], Some(THINK)),
    ("deepseek", &["deepseek", "deepseek-ai"], Some(Formatter::Prefix { prefix: "<think>" })),
    ("qwen", &["qwen"], None),
    (
        "hunyuan",
        &["hunyuan"],
        Some(Formatter::SystemPrompt { enable: Some("/think"), disable: None, default_on: false }),
    ),
    (
        "nemotron",
        &["nemotron", "nvidia/nemotron"],
        Some(Formatter::SystemPrompt { enable: None, disable: Some("/no_think"), default_on: true }),
    ),
    ("exaone", &["exaone"], Some(Formatter::Parameter)),
    ("phi", &["phi", "microsoft/phi"], Some(Formatter::Parameter)),
    ("gemma", &["gemma", "google/gemma"], Some(Formatter::Parameter)),
];

/// The name upstream matches: `backend.model` without an `@revision` pin.
fn bare_name(model: &str) -> &str {
    let last_slash = model.rfind('/').map_or(0, |i| i + 1);
    match model[last_slash..].find('@') {
        Some(at) => &model[..last_slash + at],
        None => model,
    }
}

/// The model's family, or none (every other model: its template, or the row as it is).
pub fn family(model: &str) -> Option<Family> {
    let name = bare_name(model);
    if let Some((_, f)) = EXACT.iter().find(|(n, _)| *n == name) {
        let family = FAMILIES.iter().find(|(_, _, g)| *g == Some(*f)).map_or("exact", |(n, _, _)| n);
        return Some(Family { name: family, formatter: Some(*f) });
    }
    let lower = name.to_lowercase();
    let (family, _, formatter) = FAMILIES.iter().find(|(_, patterns, _)| patterns.iter().any(|p| lower.contains(p)))?;
    // deepseek's model_overrides: `deepseek.*parameter` takes the parameter formatter.
    let formatter = match lower.find("deepseek") {
        Some(at) if *family == "deepseek" && lower[at..].contains("parameter") => Some(Formatter::Parameter),
        _ => *formatter,
    };
    Some(Family { name: family, formatter })
}

/// Whether the prompt goes through the model's chat template: it has one, and the model has no
/// formatter or its name says Qwen or Hunyuan (`backends/pytorch.py:306-313`).
pub fn uses_chat_template(model: &str, has_template: bool) -> bool {
    let lower = bare_name(model).to_lowercase();
    has_template
        && (family(model).and_then(|f| f.formatter).is_none() || lower.contains("qwen") || lower.contains("hunyuan"))
}

/// The `reasoning_params` the backend acts on: `scenario.reasoning_params` when
/// `scenario.reasoning` is on and they are not empty (`runner.py:187-189`), else none.
pub fn applied_params(reasoning: bool, params: &Map<String, Value>) -> Option<&Map<String, Value>> {
    (reasoning && !params.is_empty()).then_some(params)
}

/// Python's truthiness of a JSON value.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|x| x != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Python's `str()` of a JSON value, as an f-string writes it.
fn python_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => "None".into(),
        other => other.to_string(),
    }
}

/// A bool as the Qwen branch coerces it: a bool as is, anything else true iff its text is
/// "true" in any case.
fn qwen_bool(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        other => python_str(other).to_lowercase() == "true",
    }
}

/// The chat template's keyword arguments besides the generation prompt
/// (`backends/pytorch.py:337-373`): Qwen and Hunyuan get `enable_thinking` (true unless told
/// otherwise); every other model none. `reasoning_effort` is never passed.
pub fn template_kwargs(model: &str, params: Option<&Map<String, Value>>) -> Map<String, Value> {
    let lower = bare_name(model).to_lowercase();
    let mut kwargs = Map::new();
    let get = |k: &str| params.and_then(|p| p.get(k));
    if lower.contains("qwen") {
        let on = get("enable_thinking").or_else(|| get("reasoning")).is_none_or(qwen_bool);
        kwargs.insert("enable_thinking".into(), Value::Bool(on));
    } else if lower.contains("hunyuan") {
        let on = match (get("enable_thinking"), get("reasoning")) {
            (Some(v), _) => v.clone(),
            (None, Some(Value::Bool(false))) => Value::Bool(false),
            _ => Value::Bool(true),
        };
        kwargs.insert("enable_thinking".into(), on);
    }
    kwargs
}

/// The text a formatter-less or formatted model gets for `row` when no chat template applies.
pub fn text(model: &str, row: &str, params: Option<&Map<String, Value>>) -> String {
    let get = |k: &str| params.and_then(|p| p.get(k));
    match family(model).and_then(|f| f.formatter) {
        Some(Formatter::Harmony) => {
            let effort = get("reasoning_effort").map_or_else(|| "high".to_string(), python_str);
            format!(
                "<|start|>system<|message|>You are a helpful AI assistant.\nReasoning: {effort}\n# Valid channels: analysis, commentary, final<|end|>\n<|start|>user<|message|>{row}<|end|>"
            )
        }
        Some(Formatter::SystemPrompt { enable, disable, default_on }) => {
            let on = match (get("enable_thinking"), get("reasoning_effort")) {
                (Some(v), _) => truthy(v),
                (None, Some(e)) => matches!(e.as_str(), Some("high" | "medium")),
                (None, None) => default_on,
            };
            let flag = match (on, default_on) {
                (true, false) => enable,
                (false, true) => disable,
                _ => None,
            };
            match flag {
                Some(f) => format!("{f}\n{row}"),
                None => row.to_string(),
            }
        }
        Some(Formatter::Prefix { prefix }) if get("enable_thinking").is_none_or(truthy) => format!("{prefix}{row}"),
        Some(Formatter::Prefix { .. } | Formatter::Parameter) => row.to_string(),
        None => match (get("reasoning_effort"), get("use_prompt_based_reasoning")) {
            (Some(effort), Some(prompted)) if truthy(prompted) => format!("Reasoning:{}\n\n{row}", python_str(effort)),
            _ => row.to_string(),
        },
    }
}

/// The `reasoning_params` keys upstream knows; a formatter-less model passes any other to
/// `generate`, which then fails every prompt (`backends/pytorch.py:489-494`).
pub const KNOWN_PARAMS: &[&str] =
    &["reasoning_effort", "use_prompt_based_reasoning", "enable_thinking", "reasoning", "thinking_budget", "cot_depth"];

/// A key of `params` that upstream would hand to `generate` and fail on, for a model with no
/// formatter.
pub fn unknown_param<'a>(model: &str, params: Option<&'a Map<String, Value>>) -> Option<&'a str> {
    if family(model).and_then(|f| f.formatter).is_some() {
        return None;
    }
    params?.keys().map(String::as_str).find(|k| !KNOWN_PARAMS.contains(k))
}

/// Sampling: (temperature, top_p). 0.7 / 0.9 always (`runner.py`, the backend's defaults),
/// except that a formatter-less model's `reasoning_effort` picks its own unless the effort is
/// written into the prompt (`backends/pytorch.py:456-483`).
pub fn sampling(model: &str, params: Option<&Map<String, Value>>) -> (f32, f32) {
    let get = |k: &str| params.and_then(|p| p.get(k));
    let formatted = family(model).and_then(|f| f.formatter).is_some();
    let prompted = get("use_prompt_based_reasoning").is_some_and(truthy);
    match get("reasoning_effort").and_then(Value::as_str) {
        Some("low") if !formatted && !prompted => (0.9, 0.9),
        Some("high") if !formatted && !prompted => (0.5, 0.95),
        _ => (0.7, 0.9),
    }
}

/// upstream's top-k, always passed with sampling (`backends/pytorch.py:270-279`).
pub const TOP_K: u32 = 50;

/// AI Energy Score's `is_reasoning_enabled` (`reasoning_helpers.py`): params given and none of
/// them turning reasoning off. It sets the token budget, whatever `scenario.reasoning` says.
pub fn reasoning_enabled(params: &Map<String, Value>) -> bool {
    !params.is_empty()
        && params.get("enable_thinking") != Some(&Value::Bool(false))
        && params.get("reasoning") != Some(&Value::Bool(false))
        && params.get("reasoning_effort").and_then(Value::as_str) != Some("off")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn families_are_matched_as_reasoning_formats_yaml_orders_them() {
        let f = |m: &str| family(m).map(|f| (f.name, f.formatter.map(Formatter::name)));
        assert_eq!(f("openai/gpt-oss-120b"), Some(("gpt-oss", Some("harmony"))));
        assert_eq!(
            f("openai/gpt-oss-20b@main"),
            Some(("gpt-oss", Some("harmony"))),
            "a revision pin is not part of the name"
        );
        assert_eq!(f("HuggingFaceTB/SmolLM3-3B"), Some(("smollm", Some("system_prompt"))));
        // DeepSeek before Qwen: the distilled Qwen is in the deepseek family.
        assert_eq!(f("deepseek-ai/DeepSeek-R1-Distill-Qwen-32B"), Some(("deepseek", Some("prefix"))));
        assert_eq!(f("someone/deepseek-parameter-test"), Some(("deepseek", Some("parameter"))));
        assert_eq!(f("Qwen/Qwen3-30B-A3B"), Some(("qwen", None)));
        assert_eq!(f("microsoft/Phi-4-reasoning-plus"), Some(("phi", Some("parameter"))));
        assert_eq!(f("google/gemma-3-27b-it"), Some(("gemma", Some("parameter"))));
        assert_eq!(f("nvidia/Llama-3_3-Nemotron-Super-49B-v1_5"), Some(("nemotron", Some("system_prompt"))));
        assert_eq!(f("meta-llama/Llama-3.1-8B-Instruct"), None);
        // Substrings, as upstream's regexes: "phi" anywhere.
        assert_eq!(f("org/dolphin-7b"), Some(("phi", Some("parameter"))));
    }

    #[test]
    fn the_template_is_used_without_a_formatter_or_for_qwen_and_hunyuan() {
        assert!(uses_chat_template("Qwen/Qwen3-0.6B", true));
        assert!(uses_chat_template("deepseek-ai/DeepSeek-R1-Distill-Qwen-32B", true), "qwen in the name");
        assert!(uses_chat_template("tencent/Hunyuan-1.8B-Instruct", true));
        assert!(uses_chat_template("mistralai/Mistral-Nemo-Instruct-2407", true));
        assert!(!uses_chat_template("openai/gpt-oss-20b", true), "Harmony by hand");
        assert!(!uses_chat_template("google/gemma-3-1b-it", true));
        assert!(!uses_chat_template("Qwen/Qwen3-0.6B", false), "no template, no template path");
    }

    #[test]
    fn qwen_and_hunyuan_get_enable_thinking_true_unless_told_otherwise() {
        let kw = |m: &str, v: Option<Value>| Value::Object(template_kwargs(m, v.map(p).as_ref()));
        assert_eq!(kw("Qwen/Qwen3-0.6B", None), json!({"enable_thinking": true}));
        assert_eq!(kw("Qwen/Qwen3-0.6B", Some(json!({"enable_thinking": false}))), json!({"enable_thinking": false}));
        assert_eq!(kw("Qwen/Qwen3-0.6B", Some(json!({"enable_thinking": "FALSE"}))), json!({"enable_thinking": false}));
        assert_eq!(kw("Qwen/Qwen3-0.6B", Some(json!({"reasoning": "true"}))), json!({"enable_thinking": true}));
        assert_eq!(kw("tencent/Hunyuan-1.8B", Some(json!({"reasoning": false}))), json!({"enable_thinking": false}));
        assert_eq!(
            kw("tencent/Hunyuan-1.8B", Some(json!({"enable_thinking": "no"}))),
            json!({"enable_thinking": "no"})
        );
        assert_eq!(kw("mistralai/Mistral-Nemo-Instruct-2407", Some(json!({"reasoning_effort": "high"}))), json!({}));
    }

    #[test]
    fn formatters_write_upstreams_text() {
        let t = |m: &str, v: Option<Value>| text(m, "Hi", v.map(p).as_ref());
        assert_eq!(
            t("openai/gpt-oss-20b", None),
            "<|start|>system<|message|>You are a helpful AI assistant.\nReasoning: high\n# Valid channels: analysis, commentary, final<|end|>\n<|start|>user<|message|>Hi<|end|>"
        );
        assert!(t("openai/gpt-oss-20b", Some(json!({"reasoning_effort": "low"}))).contains("Reasoning: low\n"));
        assert_eq!(t("HuggingFaceTB/SmolLM3-3B", Some(json!({"reasoning_effort": "high"}))), "/think\nHi");
        assert_eq!(t("HuggingFaceTB/SmolLM3-3B", Some(json!({"reasoning_effort": "low"}))), "Hi");
        assert_eq!(t("HuggingFaceTB/SmolLM3-3B", None), "Hi", "off by default, and never /no_think");
        assert_eq!(
            t("nvidia/Llama-3_3-Nemotron-Super-49B-v1_5", Some(json!({"enable_thinking": false}))),
            "/no_think\nHi"
        );
        assert_eq!(t("nvidia/Llama-3_3-Nemotron-Super-49B-v1_5", None), "Hi");
        assert_eq!(t("deepseek-ai/DeepSeek-R1-Distill-Llama-70B", None), "<think>Hi", "thinking unless told not to");
        assert_eq!(t("deepseek-ai/DeepSeek-R1-Distill-Llama-70B", Some(json!({"enable_thinking": 0}))), "Hi");
        assert_eq!(t("google/gemma-3-1b-it", Some(json!({"reasoning_effort": "high"}))), "Hi");
        let prompted = json!({"reasoning_effort": "medium", "use_prompt_based_reasoning": true});
        assert_eq!(t("org/plain-model", Some(prompted)), "Reasoning:medium\n\nHi");
    }

    #[test]
    fn sampling_and_token_budget_follow_upstream() {
        let s = |m: &str, v: Value| sampling(m, Some(&p(v)));
        assert_eq!(sampling("org/model", None), (0.7, 0.9));
        assert_eq!(s("Qwen/Qwen3-0.6B", json!({"reasoning_effort": "high"})), (0.5, 0.95));
        assert_eq!(s("Qwen/Qwen3-0.6B", json!({"reasoning_effort": "low"})), (0.9, 0.9));
        assert_eq!(s("openai/gpt-oss-20b", json!({"reasoning_effort": "high"})), (0.7, 0.9), "formatted: no mapping");
        assert!(reasoning_enabled(&p(json!({"reasoning_effort": "high"}))));
        assert!(!reasoning_enabled(&p(json!({"reasoning_effort": "off"}))));
        assert!(!reasoning_enabled(&p(json!({"enable_thinking": false}))));
        assert!(!reasoning_enabled(&Map::new()));
        assert_eq!(unknown_param("org/model", Some(&p(json!({"temperature_boost": 1})))), Some("temperature_boost"));
        assert_eq!(unknown_param("google/gemma-3-1b-it", Some(&p(json!({"temperature_boost": 1})))), None);
        assert_eq!(applied_params(false, &p(json!({"reasoning_effort": "high"}))), None);
    }
}
