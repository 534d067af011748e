//! A summarizer built for API 9.0.0 (from the future), which this host must refuse by name.

wit_bindgen::generate!({ path: "wit", world: "summarizer-plugin" });

use exports::energy_star::plugin::summarizer::{Guest, SummarizerInfo, Summary};

struct Future;

impl Guest for Future {
    fn info() -> SummarizerInfo {
        SummarizerInfo {
            name: "future".into(),
            version: "2.0.0".into(),
            description: "from the future".into(),
            formats: vec!["future".into()],
        }
    }
    fn detect(_report: String) -> f32 {
        0.0
    }
    fn summarize(_report: String) -> Result<Summary, String> {
        Err("never called".into())
    }
}

export!(Future);
