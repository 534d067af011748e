//! The OpenAI-compatible remote engine (vLLM and others). Built so far: the streaming parser
//! ([`sse`]), which the HTTP client and load generator (not in this build) will drive; until
//! then the WIT `open-engine` answers "not available in this build" for remote engines.

pub mod sse;
