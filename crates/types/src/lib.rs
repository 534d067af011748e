//! The vocabulary energy-star's host and its plugins share: the closed sets of names that
//! travel in records and reports (energy sources, device kinds, validity flags, request failure
//! kinds, token-count sources), and energy unit conversions. One definition each, used by the
//! host's meter and records and by the plugins' SDK (which maps its WIT enums onto these), so a
//! name is spelled once.
//!
//! No dependencies but serde: it compiles for the host and for `wasm32-wasip2`.

#![deny(missing_docs)]

use std::fmt;

use serde::{Deserialize, Serialize};

/// Joules in a watt-hour.
pub const J_PER_WH: f64 = 3600.0;
/// Joules in a kilowatt-hour.
pub const J_PER_KWH: f64 = 3.6e6;

/// Energy units and their conversions.
pub mod units {
    use super::{J_PER_KWH, J_PER_WH};

    /// Joules to watt-hours.
    pub fn j_to_wh(j: f64) -> f64 {
        j / J_PER_WH
    }
    /// Watt-hours to joules.
    pub fn wh_to_j(wh: f64) -> f64 {
        wh * J_PER_WH
    }
    /// Joules to kilowatt-hours.
    pub fn j_to_kwh(j: f64) -> f64 {
        j / J_PER_KWH
    }
    /// Kilowatt-hours to joules.
    pub fn kwh_to_j(kwh: f64) -> f64 {
        kwh * J_PER_KWH
    }
    /// Kilowatt-hours to watt-hours.
    pub fn kwh_to_wh(kwh: f64) -> f64 {
        kwh * 1000.0
    }
    /// Watt-hours to kilowatt-hours.
    pub fn wh_to_kwh(wh: f64) -> f64 {
        wh / 1000.0
    }

    /// Watt-hours from a value in a report's energy unit (`kWh`, `Wh`, `mWh`, `J`, `kJ`).
    pub fn to_wh(value: f64, unit: &str) -> Result<f64, String> {
        Ok(match unit {
            "kWh" | "kwh" => kwh_to_wh(value),
            "Wh" | "wh" => value,
            "mWh" => value / 1000.0,
            "J" | "j" => j_to_wh(value),
            "kJ" => j_to_wh(value * 1000.0),
            other => return Err(format!("unknown energy unit {other:?} (expected kWh, Wh or J)")),
        })
    }
}

/// Nanoseconds from `origin` to `t` (0 when `t` is earlier), saturating at `u64::MAX`: the
/// one conversion every host clock reading goes through.
pub fn ns_since(origin: std::time::Instant, t: std::time::Instant) -> u64 {
    u64::try_from(t.saturating_duration_since(origin).as_nanos()).unwrap_or(u64::MAX)
}

/// Writes a closed set's enum: variants, their names (as records and reports spell them),
/// `Display`, `FromStr`-like parsing and serde as the name.
macro_rules! names {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The name as records and reports spell it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// The value of a name, if it is one.
            pub fn from_name(name: &str) -> Option<Self> {
                match name {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

names! {
    /// Where an energy figure comes from. Every figure carries one.
    EnergySource {
        /// NVML's cumulative total-energy counter (mJ), Volta and newer.
        NvmlEnergyCounter = "nvml-energy-counter",
        /// NVML power samples integrated over time, for GPUs without a counter.
        NvmlPowerIntegration = "nvml-power-integration",
        /// Linux RAPL energy counters (powercap).
        Rapl = "rapl",
        /// CPU estimate from TDP and load (CodeCarbon's method); not a measurement.
        EstimateTdp = "estimate-tdp",
        /// RAM estimate from installed DIMMs (CodeCarbon 3's rule); not a measurement.
        EstimateDimm = "estimate-dimm",
        /// Nothing could be measured; the figures are absent.
        Unavailable = "unavailable",
    }
}

impl EnergySource {
    /// Whether the figure is measured (as opposed to estimated or absent).
    pub fn is_measurement(self) -> bool {
        matches!(self, EnergySource::NvmlEnergyCounter | EnergySource::NvmlPowerIntegration | EnergySource::Rapl)
    }
}

names! {
    /// A kind of metered device.
    DeviceKind {
        /// A GPU, metered through NVML.
        Gpu = "gpu",
        /// The CPU packages together.
        Cpu = "cpu",
        /// The machine's memory.
        Ram = "ram",
    }
}

names! {
    /// Why a figure deserves less trust. Flags, never silent corrections.
    ValidityFlag {
        /// Shorter than 2 s or than the counter's update period.
        TooShort = "too-short",
        /// The counter did not advance over a window in which the device drew power.
        ZeroReading = "zero-reading",
        /// The counter went backwards (driver reload); the figure covers part of the window.
        CounterReset = "counter-reset",
        /// MIG is enabled; the figure is the whole GPU's.
        MigWholeGpu = "mig-whole-gpu",
        /// Samples are missing for part of the window.
        GapInSamples = "gap-in-samples",
    }
}

names! {
    /// Why a request to a server failed. Failures are recorded, never retried.
    FailureKind {
        /// No connection (refused, reset before an answer, name lookup).
        Connect = "connect",
        /// The request timeout passed.
        Timeout = "timeout",
        /// HTTP 4xx.
        HttpClientError = "http-4xx",
        /// HTTP 5xx and other non-success answers.
        HttpServerError = "http-5xx",
        /// The server sent an error inside the stream.
        StreamError = "stream-error",
        /// A chunk that is not a completion chunk.
        MalformedStream = "malformed-stream",
        /// The stream broke off or ended before `[DONE]` and before a finish reason.
        TruncatedStream = "truncated-stream",
        /// The stream ended without generating anything.
        EmptyResponse = "empty-response",
        /// Stopped by the user while in flight (after the drain time).
        Cancelled = "cancelled",
    }
}

names! {
    /// Where a token count comes from.
    TokenCountSource {
        /// The local engine's own count.
        Engine = "engine",
        /// The server's `usage` block.
        ServerUsage = "server-usage",
        /// A local copy of the model's tokenizer, over the streamed text.
        Tokenizer = "tokenizer",
        /// One token per streamed chunk (the last resort; say so).
        StreamChunks = "stream-chunks",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in EnergySource::ALL {
            assert_eq!(EnergySource::from_name(s.as_str()), Some(*s));
        }
        for f in FailureKind::ALL {
            assert_eq!(FailureKind::from_name(&f.to_string()), Some(*f));
        }
        assert_eq!(ValidityFlag::from_name("too-long"), None);
        assert!(EnergySource::Rapl.is_measurement() && !EnergySource::EstimateTdp.is_measurement());
    }

    #[test]
    fn units_convert() {
        assert_eq!(units::j_to_wh(7200.0), 2.0);
        assert_eq!(units::kwh_to_wh(0.5), 500.0);
        assert_eq!(units::to_wh(3.6, "kJ"), Ok(1.0));
        assert!(units::to_wh(1.0, "BTU").unwrap_err().contains("BTU"));
    }
}
