//! Grid carbon intensity: where a run's emissions factor comes from, never invented.
//!
//! The factor is, in order: `metering.carbon_intensity_g_per_kwh` (the user's own figure), the
//! grid of `metering.country_iso_code` (and `metering.region`), the grid of the environment's
//! `COUNTRY_ISO_CODE` (the variable optimum-benchmark's tracker reads), or the caller's default
//! location (AI Energy Score's USA/california for its own task configs). Locations are looked up
//! in the offline tables under `data/`, the figures CodeCarbon ships with its offline tracker,
//! so emissions match what CodeCarbon writes for the same energy and place (see
//! `scripts/carbon-table.py` and `docs/carbon.md`). With none of these the factor is unknown
//! and emissions stay `null`, with the reason.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

const COUNTRIES_CSV: &str = include_str!("../data/countries.csv");
const US_STATES_CSV: &str = include_str!("../data/us_states.csv");

/// Where the country figures come from (one line, for records and reports).
pub const COUNTRY_TABLE_SOURCE: &str = "CodeCarbon 3.0.4 offline data (codecarbon/data/private_infra/global_energy_mix.json, `carbon_intensity`, g CO2eq/kWh of electricity generated; data year per country, 2021-2023)";

/// Where the US state figures come from.
pub const US_STATE_TABLE_SOURCE: &str = "EPA eGRID 2016 state output emission rates (lbs CO2eq/MWh), as shipped in CodeCarbon 3.0.4 (codecarbon/data/private_infra/2016/usa_emissions.json)";

/// Grams per pound (exact, by definition of the avoirdupois pound).
const G_PER_LB: f64 = 453.592_37;

/// The largest factor accepted as a grid's: the dirtiest national grids are near 1,000 g/kWh
/// (lignite ≈ 1,100); far above is a unit mistake (g/MWh, lbs/MWh).
pub const MAX_G_PER_KWH: f64 = 2_000.0;

/// The largest PUE accepted; real facilities are 1.0–3.0.
pub const MAX_PUE: f64 = 5.0;

/// A place on the grid: an ISO 3166-1 alpha-3 country and, where the table has them, a region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GridLocation {
    pub country_iso_code: String,
    pub region: Option<String>,
}

impl GridLocation {
    pub fn new(country_iso_code: &str, region: Option<&str>) -> Self {
        Self { country_iso_code: country_iso_code.to_string(), region: region.map(str::to_string) }
    }
}

impl fmt::Display for GridLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.region {
            Some(r) => write!(f, "{}/{r}", self.country_iso_code),
            None => f.write_str(&self.country_iso_code),
        }
    }
}

/// Why the factor is what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IntensityBasis {
    /// `metering.carbon_intensity_g_per_kwh`.
    ConfiguredIntensity,
    /// `metering.country_iso_code` (and `metering.region`) looked up in the table.
    ConfiguredLocation,
    /// `COUNTRY_ISO_CODE` from the environment, looked up in the table.
    EnvironmentLocation,
    /// The caller's default location (AI Energy Score's), looked up in the table.
    DefaultLocation,
}

/// A grid carbon-intensity factor and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CarbonIntensity {
    pub g_co2eq_per_kwh: f64,
    pub basis: IntensityBasis,
    /// The place, when the factor is a location's.
    pub location: Option<GridLocation>,
    /// The table's source and year, or "metering.carbon_intensity_g_per_kwh" for the user's own.
    pub source: String,
    /// Why this factor was taken, for a reader (e.g. "AI Energy Score's default location").
    pub note: String,
}

/// The run's carbon settings: the factor (or why there is none) and the facility's PUE.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CarbonSettings {
    pub intensity: Option<CarbonIntensity>,
    /// Why `intensity` is none.
    pub unknown_reason: Option<String>,
    /// Power usage effectiveness (facility energy / IT energy), `metering.pue`, default 1.0.
    pub pue: f64,
}

impl CarbonSettings {
    /// Grams of CO2eq for `energy_kwh` at the device (PUE not applied), when the factor is known.
    pub fn device_emissions_g(&self, energy_kwh: f64) -> Option<f64> {
        self.intensity.as_ref().map(|i| energy_kwh * i.g_co2eq_per_kwh)
    }

    /// Grams of CO2eq for `energy_kwh` at the facility (× PUE), when the factor is known.
    pub fn facility_emissions_g(&self, energy_kwh: f64) -> Option<f64> {
        self.device_emissions_g(energy_kwh).map(|g| g * self.pue)
    }
}

/// A carbon setting that cannot be used.
#[derive(Debug, Clone, PartialEq)]
pub enum CarbonError {
    /// A config value of the wrong type or out of range.
    Malformed { key: String, message: String },
    /// A country the table does not have.
    UnknownCountry { key: String, code: String, hint: String },
    /// A region the country's table does not have, or a country without regional figures.
    UnknownRegion { key: String, country: String, region: String, hint: String },
}

impl fmt::Display for CarbonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CarbonError::Malformed { key, message } => write!(f, "{key}: {message}"),
            CarbonError::UnknownCountry { key, code, hint } => {
                write!(f, "{key} = {code:?} is not in energy-star's grid carbon table ({COUNTRY_TABLE_SOURCE}): {hint}")
            }
            CarbonError::UnknownRegion { key, country, region, hint } => {
                write!(f, "{key} = {region:?} is not a region of {country} in energy-star's grid carbon table: {hint}")
            }
        }
    }
}

impl std::error::Error for CarbonError {}

/// One country row.
#[derive(Debug, Clone, PartialEq)]
pub struct CountryRow {
    pub iso3: &'static str,
    pub name: &'static str,
    pub g_co2eq_per_kwh: f64,
    pub year: Option<u16>,
}

/// One US state row.
#[derive(Debug, Clone, PartialEq)]
pub struct UsStateRow {
    pub name: &'static str,
    pub code: &'static str,
    pub lbs_co2eq_per_mwh: f64,
}

impl UsStateRow {
    /// lbs/MWh → g/kWh: × 453.59237 g/lb ÷ 1,000 kWh/MWh.
    pub fn g_co2eq_per_kwh(&self) -> f64 {
        self.lbs_co2eq_per_mwh * G_PER_LB / 1000.0
    }
}

/// The data rows of a table shipped with the crate (header skipped). Fields never hold commas
/// (the generating script's output is checked by `every_row_of_the_tables_parses`).
fn rows(csv: &'static str) -> impl Iterator<Item = Vec<&'static str>> {
    csv.lines().skip(1).filter(|l| !l.trim().is_empty()).map(|l| l.split(',').collect())
}

/// The country table.
pub fn countries() -> Vec<CountryRow> {
    rows(COUNTRIES_CSV)
        .filter_map(|f| match f.as_slice() {
            [iso3, name, g, year] => {
                Some(CountryRow { iso3, name, g_co2eq_per_kwh: g.parse().ok()?, year: year.parse().ok() })
            }
            _ => None,
        })
        .collect()
}

/// The US state table.
pub fn us_states() -> Vec<UsStateRow> {
    rows(US_STATES_CSV)
        .filter_map(|f| match f.as_slice() {
            [name, code, lbs] => Some(UsStateRow { name, code, lbs_co2eq_per_mwh: lbs.parse().ok()? }),
            _ => None,
        })
        .collect()
}

/// The factor of a place, from the tables. `country_key`/`region_key` name where the values
/// came from, for errors.
pub fn lookup(
    country: &str,
    region: Option<&str>,
    country_key: &str,
    region_key: &str,
) -> Result<(f64, String, GridLocation), CarbonError> {
    let code = country.trim().to_ascii_uppercase();
    let table = countries();
    let Some(row) = table.iter().find(|r| r.iso3 == code) else {
        let hint = if code.len() == 2 {
            "use the ISO 3166-1 alpha-3 code (e.g. USA, FRA, DEU), as CodeCarbon does".to_string()
        } else if let Some(r) = table.iter().find(|r| r.name.eq_ignore_ascii_case(country.trim())) {
            format!("that is {}'s name; its code is {}", r.name, r.iso3)
        } else {
            "give an ISO 3166-1 alpha-3 code the table has, or the factor itself as metering.carbon_intensity_g_per_kwh"
                .to_string()
        };
        return Err(CarbonError::UnknownCountry { key: country_key.into(), code: country.trim().into(), hint });
    };
    let Some(region) = region.map(str::trim).filter(|r| !r.is_empty()) else {
        let year = row.year.map(|y| format!(", {y}")).unwrap_or_default();
        return Ok((
            row.g_co2eq_per_kwh,
            format!("{COUNTRY_TABLE_SOURCE}: {}{year}", row.name),
            GridLocation::new(row.iso3, None),
        ));
    };
    if row.iso3 != "USA" {
        return Err(CarbonError::UnknownRegion {
            key: region_key.into(),
            country: row.iso3.into(),
            region: region.into(),
            hint: format!(
                "the table has regional figures only for USA (states); leave {region_key} unset to use {}'s national figure, or set metering.carbon_intensity_g_per_kwh",
                row.name
            ),
        });
    }
    let states = us_states();
    let Some(state) =
        states.iter().find(|s| s.name.eq_ignore_ascii_case(region) || s.code.eq_ignore_ascii_case(region))
    else {
        return Err(CarbonError::UnknownRegion {
            key: region_key.into(),
            country: "USA".into(),
            region: region.into(),
            hint: "give a state's name or two-letter code (e.g. california or CA)".into(),
        });
    };
    Ok((
        state.g_co2eq_per_kwh(),
        format!("{US_STATE_TABLE_SOURCE}: {}", state.name),
        GridLocation::new("USA", Some(state.name)),
    ))
}

/// What [`resolve`] reads: the config's values (as JSON, `None` when absent), the environment and
/// the default location with why it applies.
pub struct CarbonInputs<'a> {
    pub intensity: Option<&'a Value>,
    pub country: Option<&'a Value>,
    pub region: Option<&'a Value>,
    pub pue: Option<&'a Value>,
    /// `COUNTRY_ISO_CODE` from the environment.
    pub env_country: Option<String>,
    /// A location to use when nothing is configured, with the reason shown to readers.
    pub default_location: Option<(GridLocation, String)>,
    /// Why there is no factor when nothing is configured and there is no default.
    pub no_default_reason: String,
}

/// Config keys, for errors.
pub const INTENSITY_KEY: &str = "metering.carbon_intensity_g_per_kwh";
pub const COUNTRY_KEY: &str = "metering.country_iso_code";
pub const REGION_KEY: &str = "metering.region";
pub const PUE_KEY: &str = "metering.pue";

fn number(key: &str, v: Option<&Value>) -> Result<Option<f64>, CarbonError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(x) if x.is_finite() => Ok(Some(x)),
            _ => Err(CarbonError::Malformed { key: key.into(), message: format!("{n} is not a finite number") }),
        },
        Some(other) => Err(CarbonError::Malformed { key: key.into(), message: format!("{other} is not a number") }),
    }
}

fn text(key: &str, v: Option<&Value>) -> Result<Option<String>, CarbonError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
        Some(other) => Err(CarbonError::Malformed { key: key.into(), message: format!("{other} is not a string") }),
    }
}

/// The run's carbon settings from its config, environment and default.
pub fn resolve(inputs: CarbonInputs<'_>) -> Result<CarbonSettings, CarbonError> {
    let pue = match number(PUE_KEY, inputs.pue)? {
        None => 1.0,
        Some(p) if (1.0..=MAX_PUE).contains(&p) => p,
        Some(p) => {
            return Err(CarbonError::Malformed {
                key: PUE_KEY.into(),
                message: format!(
                    "{p} is not a power usage effectiveness (facility energy ÷ IT energy: at least 1.0, at most {MAX_PUE})"
                ),
            });
        }
    };
    let country = text(COUNTRY_KEY, inputs.country)?;
    let region = text(REGION_KEY, inputs.region)?;
    if let Some(g) = number(INTENSITY_KEY, inputs.intensity)? {
        if !(0.0..=MAX_G_PER_KWH).contains(&g) {
            return Err(CarbonError::Malformed {
                key: INTENSITY_KEY.into(),
                message: format!(
                    "{g} g CO2eq/kWh is outside 0–{MAX_G_PER_KWH} (grids are 0–1,100; is it in g/MWh or lbs/MWh?)"
                ),
            });
        }
        // A location given beside the factor is still checked, so a typo is never silent.
        if let Some(c) = &country {
            lookup(c, region.as_deref(), COUNTRY_KEY, REGION_KEY)?;
        }
        let location = country.as_deref().map(|c| GridLocation::new(&c.to_ascii_uppercase(), region.as_deref()));
        let intensity = CarbonIntensity {
            g_co2eq_per_kwh: g,
            basis: IntensityBasis::ConfiguredIntensity,
            location,
            source: INTENSITY_KEY.into(),
            note: "the factor given in the config".into(),
        };
        return Ok(CarbonSettings { intensity: Some(intensity), unknown_reason: None, pue });
    }
    if country.is_none() && region.is_some() {
        return Err(CarbonError::Malformed {
            key: REGION_KEY.into(),
            message: format!("a region needs its country: set {COUNTRY_KEY} too (e.g. USA)"),
        });
    }
    let env_country = inputs.env_country.map(|c| c.trim().to_string()).filter(|c| !c.is_empty());
    let (location, basis, note, country_key) = match (country, env_country, inputs.default_location) {
        (Some(c), _, _) => (
            GridLocation { country_iso_code: c, region },
            IntensityBasis::ConfiguredLocation,
            "the location given in the config".to_string(),
            COUNTRY_KEY,
        ),
        (None, Some(c), _) => (
            GridLocation { country_iso_code: c, region: None },
            IntensityBasis::EnvironmentLocation,
            "COUNTRY_ISO_CODE from the environment (as optimum-benchmark's tracker reads it)".to_string(),
            "COUNTRY_ISO_CODE",
        ),
        (None, None, Some((loc, why))) => (loc, IntensityBasis::DefaultLocation, why, "the default location"),
        (None, None, None) => {
            return Ok(CarbonSettings { intensity: None, unknown_reason: Some(inputs.no_default_reason), pue });
        }
    };
    let (g, source, location) =
        lookup(&location.country_iso_code, location.region.as_deref(), country_key, REGION_KEY)?;
    Ok(CarbonSettings {
        intensity: Some(CarbonIntensity { g_co2eq_per_kwh: g, basis, location: Some(location), source, note }),
        unknown_reason: None,
        pue,
    })
}

#[cfg(test)]
mod tests;
