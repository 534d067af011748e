//! The plugin API's versions: one bindings module per accepted version, Zed's scheme. The
//! latest (`v0_2_5`, which also serves 0.2.0 to 0.2.4: they differ by additions only) is what
//! the host implements; an older one (`v0_1_0`) adapts to it once,
//! at load time: its imports forward to the latest implementations and its exports are
//! wrapped to give the latest host types. Two live versions at most.

pub mod v0_1_0;
pub mod v0_2_5;

pub use v0_2_5 as latest;

/// The WIT package name every plugin export is prefixed with.
pub const PACKAGE: &str = "energy-star:plugin";

/// API versions this host accepts. A plugin states its version through the versioned name of
/// the interface it exports; one built for any other version is refused before it runs.
pub const ACCEPTED_API_VERSIONS: &[&str] = &["0.1.0", "0.2.0", "0.2.1", "0.2.2", "0.2.3", "0.2.4", "0.2.5"];

/// The version of the latest bindings.
pub const LATEST_API_VERSION: &str = "0.2.5";
