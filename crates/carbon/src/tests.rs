use serde_json::json;

use super::*;

fn inputs<'a>(
    intensity: Option<&'a Value>,
    country: Option<&'a Value>,
    region: Option<&'a Value>,
    pue: Option<&'a Value>,
) -> CarbonInputs<'a> {
    CarbonInputs {
        intensity,
        country,
        region,
        pue,
        env_country: None,
        default_location: None,
        no_default_reason: "no location".into(),
    }
}

#[test]
fn every_row_of_the_tables_parses() {
    let data_rows = |csv: &str| csv.lines().skip(1).filter(|l| !l.trim().is_empty()).count();
    assert_eq!(countries().len(), data_rows(COUNTRIES_CSV), "a country row did not parse");
    assert_eq!(us_states().len(), data_rows(US_STATES_CSV), "a state row did not parse");
    assert!(countries().len() > 200 && us_states().len() >= 51);
    for c in countries() {
        assert!(c.iso3.len() == 3 && c.iso3.chars().all(|ch| ch.is_ascii_uppercase()), "{c:?}");
        assert!((0.0..=MAX_G_PER_KWH).contains(&c.g_co2eq_per_kwh), "{c:?}");
    }
    for s in us_states() {
        assert!(s.code.len() == 2 && (0.0..=MAX_G_PER_KWH).contains(&s.g_co2eq_per_kwh()), "{s:?}");
    }
}

#[test]
fn ai_energy_scores_default_is_californias_egrid_figure_in_g_per_kwh() {
    // eGRID 2016 California: 452.541 lbs/MWh × 453.59237 g/lb ÷ 1000 = 205.269... g/kWh, the
    // factor CodeCarbon applies for country_iso_code=USA, region=california.
    let (g, source, loc) = lookup("USA", Some("california"), COUNTRY_KEY, REGION_KEY).unwrap();
    assert!((g - 452.541 * 0.453_592_37).abs() < 1e-9, "{g}");
    assert!((g - 205.269).abs() < 1e-3, "{g}");
    assert_eq!(loc, GridLocation::new("USA", Some("california")));
    assert!(source.contains("eGRID 2016"), "{source}");
    // The state's code and any case find the same row.
    assert_eq!(lookup("usa", Some("CA"), COUNTRY_KEY, REGION_KEY).unwrap().0, g);
}

#[test]
fn a_country_alone_takes_the_national_figure_with_its_year() {
    let (g, source, loc) = lookup("FRA", None, COUNTRY_KEY, REGION_KEY).unwrap();
    assert_eq!(g, 56.039);
    assert!(source.contains("France") && source.contains("2023"), "{source}");
    assert_eq!(loc.region, None);
}

#[test]
fn unknown_places_are_refused_with_a_hint() {
    let two = lookup("FR", None, COUNTRY_KEY, REGION_KEY).unwrap_err().to_string();
    assert!(two.contains("metering.country_iso_code = \"FR\"") && two.contains("alpha-3"), "{two}");
    let name = lookup("Germany", None, COUNTRY_KEY, REGION_KEY).unwrap_err().to_string();
    assert!(name.contains("its code is DEU"), "{name}");
    let none = lookup("XYZ", None, COUNTRY_KEY, REGION_KEY).unwrap_err().to_string();
    assert!(none.contains("XYZ") && none.contains("metering.carbon_intensity_g_per_kwh"), "{none}");
    let state = lookup("USA", Some("atlantis"), COUNTRY_KEY, REGION_KEY).unwrap_err().to_string();
    assert!(state.contains("metering.region = \"atlantis\"") && state.contains("california or CA"), "{state}");
    let foreign = lookup("DEU", Some("bavaria"), COUNTRY_KEY, REGION_KEY).unwrap_err().to_string();
    assert!(foreign.contains("only for USA") && foreign.contains("Germany"), "{foreign}");
}

#[test]
fn the_configured_factor_wins_and_is_range_checked() {
    let g = json!(300.5);
    let s = resolve(inputs(Some(&g), None, None, None)).unwrap();
    let i = s.intensity.as_ref().unwrap();
    assert_eq!((i.g_co2eq_per_kwh, i.basis), (300.5, IntensityBasis::ConfiguredIntensity));
    assert_eq!(s.pue, 1.0);
    assert_eq!(s.device_emissions_g(2.0), Some(601.0));

    for (bad, says) in [(json!(-1), "outside"), (json!(452541), "lbs/MWh"), (json!("high"), "not a number")] {
        let e = resolve(inputs(Some(&bad), None, None, None)).unwrap_err().to_string();
        assert!(e.starts_with("metering.carbon_intensity_g_per_kwh:") && e.contains(says), "{e}");
    }
    // A location beside the factor is still checked.
    let typo = json!("USAA");
    assert!(matches!(resolve(inputs(Some(&g), Some(&typo), None, None)), Err(CarbonError::UnknownCountry { .. })));
}

#[test]
fn pue_scales_the_facility_figure_only() {
    let (g, c, p) = (json!(100.0), json!("USA"), json!(1.5));
    let s = resolve(inputs(Some(&g), Some(&c), None, Some(&p))).unwrap();
    assert_eq!(s.device_emissions_g(1.0), Some(100.0));
    assert_eq!(s.facility_emissions_g(1.0), Some(150.0));
    for bad in [json!(0.9), json!(12), json!(true)] {
        let e = resolve(inputs(None, None, None, Some(&bad))).unwrap_err().to_string();
        assert!(e.starts_with("metering.pue:"), "{e}");
    }
}

#[test]
fn config_then_environment_then_default_then_unknown() {
    let usa = GridLocation::new("USA", Some("california"));
    let mut i = inputs(None, None, None, None);
    i.env_country = Some("DEU".into());
    i.default_location = Some((usa.clone(), "AI Energy Score's default".into()));
    let s = resolve(i).unwrap();
    let got = s.intensity.unwrap();
    assert_eq!(
        (got.basis, got.location.unwrap().country_iso_code.as_str()),
        (IntensityBasis::EnvironmentLocation, "DEU")
    );

    let mut i = inputs(None, None, None, None);
    i.default_location = Some((usa.clone(), "AI Energy Score's default".into()));
    let got = resolve(i).unwrap().intensity.unwrap();
    assert_eq!((got.basis, got.note.as_str()), (IntensityBasis::DefaultLocation, "AI Energy Score's default"));
    assert_eq!(got.location, Some(usa));

    let c = json!("fra");
    let mut i = inputs(None, Some(&c), None, None);
    i.env_country = Some("DEU".into());
    let got = resolve(i).unwrap().intensity.unwrap();
    assert_eq!((got.basis, got.g_co2eq_per_kwh), (IntensityBasis::ConfiguredLocation, 56.039));

    let s = resolve(inputs(None, None, None, None)).unwrap();
    assert_eq!((&s.intensity, s.unknown_reason.as_deref()), (&None, Some("no location")));
    assert_eq!(s.device_emissions_g(1.0), None);

    let r = json!("california");
    let e = resolve(inputs(None, None, Some(&r), None)).unwrap_err().to_string();
    assert!(e.contains("needs its country"), "{e}");
    let mut i = inputs(None, None, None, None);
    i.env_country = Some("Narnia".into());
    let e = resolve(i).unwrap_err().to_string();
    assert!(e.starts_with("COUNTRY_ISO_CODE = \"Narnia\""), "{e}");
}
