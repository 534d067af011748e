use crate::plugins::bindings::backend::energy_star::plugin::inference::{
    BatchOutcome, EngineInfo, EngineSpec, GenerationParams, Host, InferenceError, LoadProfile, RequestOutcome,
};
use crate::plugins::state::PluginState;

use super::not_in_this_build;

impl Host for PluginState {
    fn open_engine(&mut self, spec: EngineSpec) -> Result<u64, InferenceError> {
        self.host_returned();
        Err(InferenceError::Unavailable(match spec {
            EngineSpec::Local(_) => not_in_this_build("local inference (candle)"),
            EngineSpec::Remote(_) => not_in_this_build("the OpenAI-compatible remote engine"),
        }))
    }

    fn describe_engine(&mut self, engine: u64) -> Result<EngineInfo, InferenceError> {
        self.host_returned();
        Err(InferenceError::UnknownEngine(engine))
    }

    fn tokenize(&mut self, engine: u64, _text: String, _add_special_tokens: bool) -> Result<Vec<u32>, InferenceError> {
        self.host_returned();
        Err(InferenceError::UnknownEngine(engine))
    }

    fn generate_batch(&mut self, engine: u64, _prompts: Vec<String>, _params: GenerationParams) -> Result<BatchOutcome, InferenceError> {
        self.host_returned();
        Err(InferenceError::UnknownEngine(engine))
    }

    fn run_load(
        &mut self,
        engine: u64,
        _prompts: Vec<String>,
        _params: GenerationParams,
        _profile: LoadProfile,
        _max_duration_ms: u64,
    ) -> Result<Vec<RequestOutcome>, InferenceError> {
        self.host_returned();
        Err(InferenceError::UnknownEngine(engine))
    }

    fn close_engine(&mut self, _engine: u64) {
        self.host_returned();
    }
}
