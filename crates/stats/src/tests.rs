use super::*;

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs().max(1e-300)
}

#[test]
fn t_quantiles_match_scipy() {
    // scipy 1.17.1: scipy.stats.t.ppf(0.975, df)
    for (df, want) in [
        (1.0, 12.706204736174694),
        (2.0, 4.302652729749462),
        (3.0, 3.1824463052837078),
        (4.0, 2.7764451051977934),
        (5.0, 2.5705818356363146),
        (9.0, 2.262157162798205),
        (10.0, 2.228138851986274),
        (29.0, 2.045229642132703),
        (30.0, 2.0422724563012378),
        (100.0, 1.9839715185235518),
        (1000.0, 1.9623390808264083),
        (4.5, 2.6589123472044034),
        (7.3, 2.345066736547703),
        (1.5, 6.016663104427929),
    ] {
        let got = t_quantile(0.975, df);
        assert!(close(got, want, 1e-9), "df {df}: {got} vs {want}");
    }
    assert!(close(t_quantile(0.025, 10.0), -2.228138851986274, 1e-9));
    assert!(close(t_quantile(0.975, f64::INFINITY), 1.959963984540054, 3e-6));
}

#[test]
fn a_sample_is_described_as_numpy_and_scipy_describe_it() {
    let d = describe(&[1.0, 1.2, 0.9, 1.1, 1.05]).unwrap();
    assert_eq!((d.n, d.min, d.max), (5, 0.9, 1.2));
    assert!(close(d.mean, 1.05, 1e-12));
    // numpy.std(a, ddof=1)
    assert!(close(d.sd.unwrap(), 0.11180339887498947, 1e-12));
    let half = 2.7764451051977934 * 0.11180339887498947 / 5f64.sqrt();
    let [lo, hi] = d.ci95.unwrap();
    assert!(close(lo, 1.05 - half, 1e-9) && close(hi, 1.05 + half, 1e-9), "{lo} {hi}");

    let one = describe(&[3.0]).unwrap();
    assert_eq!((one.sd, one.ci95), (None, None));
    assert_eq!(describe(&[]), None);
    assert_eq!(describe(&[1.0, f64::NAN]), None);
}

#[test]
fn welchs_interval_matches_scipys_ttest_ind() {
    // scipy.stats.ttest_ind(a, b, equal_var=False): statistic -4.620924277292432,
    // df 6.518796992481201, confidence_interval(0.95) (-0.4178567399630079, -0.13214326003699198)
    let a = describe(&[1.0, 1.2, 0.9, 1.1, 1.05]).unwrap();
    let b = describe(&[1.3, 1.25, 1.4, 1.35]).unwrap();
    let w = welch(&a, &b).unwrap();
    assert!(close(w.t.unwrap(), -4.620924277292432, 1e-9), "{w:?}");
    assert!(close(w.df, 6.518796992481201, 1e-9), "{w:?}");
    assert!(close(w.ci95[0], -0.4178567399630079, 1e-8) && close(w.ci95[1], -0.13214326003699198, 1e-8), "{w:?}");
    assert!(w.beyond_noise());

    let same = welch(&a, &a).unwrap();
    assert!(!same.beyond_noise() && same.diff == 0.0);

    let one = describe(&[1.0]).unwrap();
    let e = welch(&a, &one).unwrap_err();
    assert_eq!(e, IntervalError::TooFewMeasures { which: "the second", n: 1 });
    assert!(e.to_string().contains("at least 2"), "{e}");

    let flat = describe(&[2.0, 2.0]).unwrap();
    let exact = welch(&flat, &describe(&[1.0, 1.0]).unwrap()).unwrap();
    assert_eq!((exact.diff, exact.ci95), (1.0, [1.0, 1.0]));
}

#[test]
fn ln_gamma_and_the_incomplete_beta_at_known_points() {
    assert!(ln_gamma(1.0).abs() < 1e-14 && ln_gamma(2.0).abs() < 1e-14, "Γ(1) = Γ(2) = 1");
    assert!(close(ln_gamma(0.5), std::f64::consts::PI.sqrt().ln(), 1e-13));
    assert!(close(ln_gamma(10.0), (362_880.0f64).ln(), 1e-13));
    // I_x(1, 1) = x; I_x(a, b) = 1 − I_{1−x}(b, a).
    assert!(close(incomplete_beta(0.3, 1.0, 1.0), 0.3, 1e-13));
    assert!(close(incomplete_beta(0.2, 2.5, 0.5), 1.0 - incomplete_beta(0.8, 0.5, 2.5), 1e-12));
}
