//! Small SVG charts written by hand: a line chart with shaded spans, and bars that may be
//! negative (decode = generate − prefill can be). No plotting dependency; the output is plain
//! SVG that browsers and papers take as it is.

use std::fmt::Write;

pub const PALETTE: &[&str] = &["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"];

/// XML-escapes text.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Round tick steps (1, 2, 5 × 10^k) covering [lo, hi] with about `n` ticks.
pub fn ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo {
        return vec![lo];
    }
    let raw = (hi - lo) / n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
    // Whole multiples of the step, so no error accumulates from tick to tick.
    let first = (lo / step - 1e-9).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    (first..=last).map(|k| k as f64 * step).collect()
}

fn fmt_tick(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.1}")
    } else if a >= 0.01 {
        format!("{v:.3}")
    } else {
        format!("{v:.1e}")
    }
}

pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

pub struct Span {
    pub label: String,
    pub start: f64,
    pub end: f64,
}

const W: f64 = 900.0;
const H: f64 = 380.0;
const L: f64 = 70.0;
const R: f64 = 160.0;
const T: f64 = 40.0;
const B: f64 = 50.0;

/// A line chart of `series` over x, with `spans` shaded behind them.
pub fn line_chart(id: &str, title: &str, x_label: &str, y_label: &str, series: &[Series], spans: &[Span]) -> String {
    let xs =
        series.iter().flat_map(|s| s.points.iter().map(|p| p.0)).chain(spans.iter().flat_map(|s| [s.start, s.end]));
    let (x0, x1) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| (a.min(x), b.max(x)));
    let (x0, x1) = if x0.is_finite() && x1 > x0 { (x0, x1) } else { (0.0, 1.0) };
    let y1 = series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).fold(0.0f64, f64::max);
    let y1 = if y1 > 0.0 { y1 * 1.1 } else { 1.0 };
    let px = |x: f64| L + (x - x0) / (x1 - x0) * (W - L - R);
    let py = |y: f64| H - B - y / y1 * (H - T - B);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" id="{id}" class="figure" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="{}">"#,
        esc(title)
    );
    let _ = write!(s, r#"<title>{}</title><rect width="{W}" height="{H}" fill="white"/>"#, esc(title));
    let _ = write!(
        s,
        r#"<text x="{}" y="22" font-size="15" font-family="sans-serif" text-anchor="middle">{}</text>"#,
        W / 2.0,
        esc(title)
    );
    for (i, sp) in spans.iter().enumerate() {
        let (a, b) = (px(sp.start), px(sp.end).max(px(sp.start) + 1.0));
        let fill = ["#c9d8ee", "#eedcc4", "#d3e8cf", "#e6d3ea"][i % 4];
        // Translucent, so nested windows (a steady state inside a run) both show; labels on
        // staggered rows, so windows that start together stay readable.
        let _ = write!(
            s,
            r#"<rect class="phase" x="{a:.1}" y="{T}" width="{:.1}" height="{}" fill="{fill}" fill-opacity="0.55"><title>{}: {:.3}–{:.3} s</title></rect>"#,
            b - a,
            H - T - B,
            esc(&sp.label),
            sp.start,
            sp.end
        );
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{:.1}" font-size="10" font-family="sans-serif" fill="#444">{}</text>"##,
            a + 3.0,
            T + 12.0 + (i % 4) as f64 * 12.0,
            esc(&sp.label)
        );
    }
    for t in ticks(0.0, y1, 5) {
        let y = py(t);
        let _ = write!(
            s,
            r##"<line x1="{L}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" font-size="11" font-family="sans-serif" text-anchor="end">{}</text>"##,
            W - R,
            L - 6.0,
            y + 4.0,
            fmt_tick(t)
        );
    }
    for t in ticks(x0, x1, 8) {
        let x = px(t);
        let _ = write!(
            s,
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="{}" y2="{}" stroke="#999"/><text x="{x:.1}" y="{}" font-size="11" font-family="sans-serif" text-anchor="middle">{}</text>"##,
            H - B,
            H - B + 5.0,
            H - B + 18.0,
            fmt_tick(t)
        );
    }
    let _ = write!(
        s,
        r##"<line x1="{L}" x2="{}" y1="{}" y2="{}" stroke="#333"/><line x1="{L}" x2="{L}" y1="{T}" y2="{}" stroke="#333"/>"##,
        W - R,
        H - B,
        H - B,
        H - B
    );
    let _ = write!(
        s,
        r#"<text x="{}" y="{}" font-size="12" font-family="sans-serif" text-anchor="middle">{}</text>"#,
        (L + W - R) / 2.0,
        H - 12.0,
        esc(x_label)
    );
    let _ = write!(
        s,
        r#"<text x="16" y="{}" font-size="12" font-family="sans-serif" text-anchor="middle" transform="rotate(-90 16 {})">{}</text>"#,
        H / 2.0,
        H / 2.0,
        esc(y_label)
    );
    for (i, se) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let pts: Vec<String> = se.points.iter().map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y))).collect();
        let _ = write!(
            s,
            r#"<polyline class="series" fill="none" stroke="{color}" stroke-width="1.5" points="{}"><title>{}</title></polyline>"#,
            pts.join(" "),
            esc(&se.label)
        );
        let ly = T + 14.0 + i as f64 * 18.0;
        let _ = write!(
            s,
            r#"<line x1="{}" x2="{}" y1="{ly}" y2="{ly}" stroke="{color}" stroke-width="3"/><text x="{}" y="{}" font-size="11" font-family="sans-serif">{}</text>"#,
            W - R + 10.0,
            W - R + 30.0,
            W - R + 35.0,
            ly + 4.0,
            esc(&se.label)
        );
    }
    if series.iter().all(|s| s.points.is_empty()) {
        let _ = write!(
            s,
            r##"<text x="{}" y="{}" font-size="13" font-family="sans-serif" text-anchor="middle" fill="#900">no power readings in this run</text>"##,
            W / 2.0,
            H / 2.0
        );
    }
    s.push_str("</svg>");
    s
}

/// Grouped bars: one group per category, one bar per series; None values are left out and
/// marked "n/a". Bars grow from zero, below it for negative values.
pub fn bar_chart(
    id: &str,
    title: &str,
    y_label: &str,
    categories: &[String],
    series: &[(String, Vec<Option<f64>>)],
) -> String {
    let vals = series.iter().flat_map(|(_, v)| v.iter().flatten().copied());
    let (lo, hi) = vals.fold((0.0f64, 0.0f64), |(a, b), v| (a.min(v), b.max(v)));
    let (lo, hi) = if hi - lo > 0.0 { (lo * 1.1, hi * 1.1) } else { (0.0, 1.0) };
    let py = |y: f64| T + (hi - y) / (hi - lo) * (H - T - B);
    let groups = categories.len().max(1) as f64;
    let gw = (W - L - R) / groups;
    let bw = (gw * 0.8) / series.len().max(1) as f64;
    let mut s = frame(id, title, y_label, lo, hi, py);
    let zero = py(0.0);
    let _ = write!(s, r##"<line x1="{L}" x2="{}" y1="{zero:.1}" y2="{zero:.1}" stroke="#333"/>"##, W - R);
    for (g, cat) in categories.iter().enumerate() {
        let gx = L + g as f64 * gw + gw * 0.1;
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{}" font-size="11" font-family="sans-serif" text-anchor="middle">{}</text>"#,
            L + (g as f64 + 0.5) * gw,
            H - B + 16.0,
            esc(cat)
        );
        for (i, (label, v)) in series.iter().enumerate() {
            let x = gx + i as f64 * bw;
            match v.get(g).copied().flatten() {
                Some(val) => {
                    let (top, h) = if val >= 0.0 { (py(val), zero - py(val)) } else { (zero, py(val) - zero) };
                    let _ = write!(
                        s,
                        r#"<rect class="bar" x="{x:.1}" y="{top:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{} {}: {}</title></rect>"#,
                        bw * 0.95,
                        h.max(0.5),
                        PALETTE[i % PALETTE.len()],
                        esc(cat),
                        esc(label),
                        val
                    );
                }
                None => {
                    let _ = write!(
                        s,
                        r##"<text x="{:.1}" y="{:.1}" font-size="9" font-family="sans-serif" text-anchor="middle" fill="#900">n/a</text>"##,
                        x + bw / 2.0,
                        zero - 4.0
                    );
                }
            }
        }
    }
    for (i, (label, _)) in series.iter().enumerate() {
        let ly = T + 14.0 + i as f64 * 18.0;
        let _ = write!(
            s,
            r#"<rect x="{}" y="{}" width="14" height="10" fill="{}"/><text x="{}" y="{}" font-size="11" font-family="sans-serif">{}</text>"#,
            W - R + 10.0,
            ly - 6.0,
            PALETTE[i % PALETTE.len()],
            W - R + 30.0,
            ly + 4.0,
            esc(label)
        );
    }
    s.push_str("</svg>");
    s
}

/// A histogram of `values` in `bins` equal bins.
pub fn histogram(id: &str, title: &str, x_label: &str, values: &[f64], bins: usize) -> String {
    let v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    let (lo, hi) = v.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| (a.min(*x), b.max(*x)));
    let (lo, hi) = if lo.is_finite() && hi > lo {
        (lo, hi)
    } else if lo.is_finite() {
        (lo - 0.5, lo + 0.5)
    } else {
        (0.0, 1.0)
    };
    let bins = bins.max(1);
    let mut counts = vec![0usize; bins];
    for x in &v {
        let i = (((x - lo) / (hi - lo)) * bins as f64).floor() as usize;
        counts[i.min(bins - 1)] += 1;
    }
    let categories: Vec<String> =
        (0..bins).map(|i| fmt_tick(lo + (i as f64 + 0.5) * (hi - lo) / bins as f64)).collect();
    let series = vec![("requests".to_string(), counts.iter().map(|c| Some(*c as f64)).collect())];
    bar_chart(id, title, &format!("requests (by {x_label})"), &categories, &series)
}

/// A figure's opening: the `<svg>` element, its title and heading, the y grid with its ticks
/// over [lo, hi] (placed by `py`), and the y label.
fn frame(id: &str, title: &str, y_label: &str, lo: f64, hi: f64, py: impl Fn(f64) -> f64) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" id="{id}" class="figure" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="{}">"#,
        esc(title)
    );
    let _ = write!(s, r#"<title>{}</title><rect width="{W}" height="{H}" fill="white"/>"#, esc(title));
    let _ = write!(
        s,
        r#"<text x="{}" y="22" font-size="15" font-family="sans-serif" text-anchor="middle">{}</text>"#,
        W / 2.0,
        esc(title)
    );
    for t in ticks(lo, hi, 5) {
        let y = py(t);
        let _ = write!(
            s,
            r##"<line x1="{L}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" font-size="11" font-family="sans-serif" text-anchor="end">{}</text>"##,
            W - R,
            L - 6.0,
            y + 4.0,
            fmt_tick(t)
        );
    }
    let _ = write!(
        s,
        r#"<text x="16" y="{}" font-size="12" font-family="sans-serif" text-anchor="middle" transform="rotate(-90 16 {})">{}</text>"#,
        H / 2.0,
        H / 2.0,
        esc(y_label)
    );
    s
}

/// One group of a dot plot: its measures, which are flagged, and its mean and 95 % interval.
pub struct DotGroup {
    pub label: String,
    pub values: Vec<f64>,
    /// Parallel to `values`; a flagged measure is drawn hollow.
    pub flagged: Vec<bool>,
    pub mean: Option<f64>,
    pub ci95: Option<[f64; 2]>,
}

/// Repeated measures side by side: each group's measures as dots (hollow when flagged), its
/// mean as a bar and its 95 % interval as a whisker, so a reader sees the spread behind a mean.
pub fn dot_plot(id: &str, title: &str, y_label: &str, groups: &[DotGroup]) -> String {
    let all = groups.iter().flat_map(|g| g.values.iter().copied().chain(g.ci95.into_iter().flatten()));
    let (lo, hi) =
        all.filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    let (lo, hi) = match (lo.is_finite(), hi > lo) {
        (true, true) => {
            let pad = (hi - lo) * 0.1;
            (lo - pad, hi + pad)
        }
        (true, false) => (lo - lo.abs().max(1e-9) * 0.1, lo + lo.abs().max(1e-9) * 0.1),
        _ => (0.0, 1.0),
    };
    let py = |y: f64| T + (hi - y) / (hi - lo) * (H - T - B);
    let gw = (W - L - R) / groups.len().max(1) as f64;
    let mut s = frame(id, title, y_label, lo, hi, py);
    for (g, group) in groups.iter().enumerate() {
        let cx = L + (g as f64 + 0.5) * gw;
        let colour = PALETTE[g % PALETTE.len()];
        let _ = write!(
            s,
            r#"<text x="{cx:.1}" y="{}" font-size="11" font-family="sans-serif" text-anchor="middle">{}</text>"#,
            H - B + 16.0,
            esc(&group.label)
        );
        if let Some([a, b]) = group.ci95 {
            let _ = write!(
                s,
                r#"<line class="ci" x1="{cx:.1}" x2="{cx:.1}" y1="{:.1}" y2="{:.1}" stroke="{colour}" stroke-width="2"><title>{}: 95% CI {a} to {b}</title></line>"#,
                py(a),
                py(b),
                esc(&group.label)
            );
            for y in [a, b] {
                let _ = write!(
                    s,
                    r#"<line x1="{:.1}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="{colour}" stroke-width="2"/>"#,
                    cx - 8.0,
                    cx + 8.0,
                    py(y),
                    py(y)
                );
            }
        }
        if let Some(m) = group.mean {
            let _ = write!(
                s,
                r#"<line class="mean" x1="{:.1}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="{colour}" stroke-width="3"><title>{}: mean {m}</title></line>"#,
                cx - 20.0,
                cx + 20.0,
                py(m),
                py(m),
                esc(&group.label)
            );
        }
        let n = group.values.len().max(1) as f64;
        for (i, v) in group.values.iter().enumerate() {
            // Spread the dots sideways a little, so equal values stay visible.
            let x = cx - 30.0 + 60.0 * (i as f64 + 0.5) / n;
            let hollow = group.flagged.get(i).copied().unwrap_or(false);
            let fill = if hollow { "white" } else { colour };
            let _ = write!(
                s,
                r#"<circle class="measure" cx="{x:.1}" cy="{:.1}" r="4" fill="{fill}" stroke="{colour}"><title>{} #{i}: {v}{}</title></circle>"#,
                py(*v),
                esc(&group.label),
                if hollow { " (flagged)" } else { "" }
            );
        }
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(ticks(0.0, 10.0, 5), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        let t = ticks(-0.3, 0.9, 6);
        let want = [-0.2, 0.0, 0.2, 0.4, 0.6, 0.8];
        assert_eq!(t.len(), want.len(), "{t:?}");
        assert!(t.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-12), "{t:?}");
        assert_eq!(ticks(5.0, 5.0, 5), vec![5.0]);
    }

    #[test]
    fn charts_are_well_formed_and_escape_labels() {
        let l = line_chart(
            "p",
            "Power <GPU>",
            "s",
            "W",
            &[Series { label: "gpu0 & co".into(), points: vec![(0.0, 1.0), (1.0, 2.0)] }],
            &[Span { label: "prefill".into(), start: 0.2, end: 0.5 }],
        );
        assert!(
            l.starts_with("<svg")
                && l.ends_with("</svg>")
                && l.contains("Power &lt;GPU&gt;")
                && l.contains("gpu0 &amp; co")
                && l.contains(r#"class="phase""#)
        );
        let b = bar_chart(
            "e",
            "Energy",
            "Wh",
            &["prefill".into(), "decode".into()],
            &[("gpu".into(), vec![Some(2.0), Some(-1.0)]), ("cpu".into(), vec![None, Some(0.5)])],
        );
        assert_eq!(b.matches(r#"class="bar""#).count(), 3);
        assert!(b.contains("n/a"));
        let h = histogram("h", "J per request", "J", &[1.0, 1.0, 2.0, 3.0], 2);
        assert_eq!(h.matches(r#"class="bar""#).count(), 2);
        let d = dot_plot(
            "d",
            "prefill",
            "Wh",
            &[
                DotGroup {
                    label: "A".into(),
                    values: vec![1.0, 1.1, 0.9],
                    flagged: vec![false, true, false],
                    mean: Some(1.0),
                    ci95: Some([0.75, 1.25]),
                },
                DotGroup {
                    label: "B <2>".into(),
                    values: vec![2.0],
                    flagged: vec![false],
                    mean: Some(2.0),
                    ci95: None,
                },
            ],
        );
        assert!(d.starts_with("<svg") && d.ends_with("</svg>") && d.contains("B &lt;2&gt;"));
        assert_eq!(d.matches(r#"class="measure""#).count(), 4);
        assert_eq!((d.matches(r#"class="ci""#).count(), d.matches(r#"class="mean""#).count()), (1, 2));
        assert_eq!(d.matches(r#"fill="white" stroke"#).count(), 1, "the flagged measure is hollow");
    }
}
