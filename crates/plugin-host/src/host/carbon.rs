//! `carbon`: the grid carbon intensity the host resolved for the run (`energy_star_carbon`).

use energy_star_carbon as c;

use crate::wit::latest::backend::energy_star::plugin::carbon::{
    CarbonIntensity, CarbonSettings, GridIntensity, GridLocation, Host, IntensityBasis,
};

use super::CarbonView;

fn basis(b: c::IntensityBasis) -> IntensityBasis {
    match b {
        c::IntensityBasis::ConfiguredIntensity => IntensityBasis::ConfiguredIntensity,
        c::IntensityBasis::ConfiguredLocation => IntensityBasis::ConfiguredLocation,
        c::IntensityBasis::EnvironmentLocation => IntensityBasis::EnvironmentLocation,
        c::IntensityBasis::DefaultLocation => IntensityBasis::DefaultLocation,
    }
}

impl Host for CarbonView<'_> {
    fn settings(&mut self) -> CarbonSettings {
        let s = self.settings;
        let intensity = match &s.intensity {
            Some(i) => GridIntensity::Known(CarbonIntensity {
                g_co2eq_per_kwh: i.g_co2eq_per_kwh,
                basis: basis(i.basis),
                location: i
                    .location
                    .as_ref()
                    .map(|l| GridLocation { country_iso_code: l.country_iso_code.clone(), region: l.region.clone() }),
                source: i.source.clone(),
                note: i.note.clone(),
            }),
            None => GridIntensity::Unknown(
                s.unknown_reason.clone().unwrap_or_else(|| "no grid carbon intensity is known".into()),
            ),
        };
        CarbonSettings { intensity, pue: s.pue }
    }
}
