//! A dependency-free SVG chart: cumulative regret (left) and success rate per time bucket with
//! the oracle's (right), one line per strategy, mean over seeds.

use std::fmt::Write;

use magnetar_sim::Aggregate;
use magnetar_sim::Scenario;

const PALETTE: [&str; 20] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#393b79", "#e6550d", "#31a354", "#843c39", "#7b4173", "#3182bd",
    "#fd8d3c", "#74c476", "#9e9ac8", "#000000",
];
const W: f64 = 1200.0;
const H: f64 = 520.0;
const PANEL_W: f64 = 430.0;
const PANEL_H: f64 = 380.0;
const TOP: f64 = 70.0;

struct Panel {
    left: f64,
    x_max: f64,
    y_min: f64,
    y_max: f64,
}

impl Panel {
    fn x(&self, v: f64) -> f64 {
        self.left + PANEL_W * v / self.x_max.max(1e-9)
    }

    fn y(&self, v: f64) -> f64 {
        TOP + PANEL_H * (1.0 - (v - self.y_min) / (self.y_max - self.y_min).max(1e-9))
    }

    fn frame(&self, out: &mut String, title: &str, y_label: &str, percent: bool) {
        let _ = writeln!(
            out,
            r##"<rect x="{:.1}" y="{TOP}" width="{PANEL_W}" height="{PANEL_H}" fill="none" stroke="#888"/>"##,
            self.left
        );
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" font-size="15" font-weight="bold">{title}</text>"#,
            self.left,
            TOP - 12.0
        );
        for i in 0..=4 {
            let v = self.y_min + (self.y_max - self.y_min) * f64::from(i) / 4.0;
            let label = if percent { format!("{:.0}%", 100.0 * v) } else { format!("{v:.0}") };
            let y = self.y(v);
            let _ = writeln!(
                out,
                r##"<line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#eee"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{label}</text>"##,
                self.left,
                self.left + PANEL_W,
                self.left - 4.0,
                y + 4.0
            );
            let xv = self.x_max * f64::from(i) / 4.0;
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle">{xv:.0}</text>"#,
                self.x(xv),
                TOP + PANEL_H + 16.0
            );
        }
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="middle">requests</text>"#,
            self.left + PANEL_W / 2.0,
            TOP + PANEL_H + 34.0
        );
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="middle" transform="rotate(-90 {:.1} {:.1})">{y_label}</text>"#,
            self.left - 44.0,
            TOP + PANEL_H / 2.0,
            self.left - 44.0,
            TOP + PANEL_H / 2.0
        );
    }

    fn line(&self, out: &mut String, xs: &[f64], ys: &[f64], colour: &str, dashed: bool) {
        let points: Vec<String> = xs
            .iter()
            .zip(ys)
            .map(|(x, y)| {
                format!("{:.1},{:.1}", self.x(*x), self.y(y.clamp(self.y_min, self.y_max)))
            })
            .collect();
        let dash = if dashed { r#" stroke-dasharray="6 4""# } else { "" };
        let _ = writeln!(
            out,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="1.6"{dash} points="{}"/>"#,
            points.join(" ")
        );
    }
}

/// `text` with the characters XML reserves escaped.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The chart of one scenario's results.
pub fn svg(scenario: &Scenario, results: &[Aggregate]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif">"#
    );
    out.push_str(r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="20" y="26" font-size="18" font-weight="bold">{}: {}</text>"#,
        escape(&scenario.name),
        escape(&scenario.description)
    );
    let Some(first) = results.first() else {
        out.push_str("</svg>\n");
        return out;
    };
    let bucket = first.series.bucket as f64;
    let n = first.series.regret.len();
    let xs: Vec<f64> = (1..=n).map(|i| i as f64 * bucket).collect();

    let regrets: Vec<Vec<f64>> = results.iter().map(Aggregate::cumulative_regret).collect();
    let y_max = regrets.iter().flat_map(|r| r.last().copied()).fold(1.0, f64::max);
    let left = Panel { left: 70.0, x_max: n as f64 * bucket, y_min: 0.0, y_max: y_max * 1.05 };
    left.frame(&mut out, "cumulative regret (mean over seeds)", "regret", false);

    let rate =
        |r: &Aggregate| -> Vec<f64> { r.series.successes.iter().map(|s| s / bucket).collect() };
    let oracle: Vec<f64> = first.series.oracle.iter().map(|s| s / bucket).collect();
    let rates: Vec<Vec<f64>> = results.iter().map(rate).collect();
    let lo = rates.iter().flatten().chain(&oracle).fold(1.0, |a: f64, b| a.min(*b));
    let right = Panel {
        left: 590.0,
        x_max: n as f64 * bucket,
        y_min: (lo * 20.0).floor() / 20.0,
        y_max: 1.0,
    };
    right.frame(&mut out, "success rate per bucket (dashed: oracle)", "success", true);
    right.line(&mut out, &xs, &oracle, "#000", true);

    for (i, r) in results.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        left.line(&mut out, &xs, &regrets[i], colour, false);
        right.line(&mut out, &xs, &rates[i], colour, false);
        let y = TOP + 14.0 * i as f64;
        let _ = writeln!(
            out,
            r#"<rect x="1035" y="{:.1}" width="14" height="4" fill="{colour}"/><text x="1054" y="{:.1}" font-size="11">{}</text>"#,
            y + 4.0,
            y + 9.0,
            r.strategy
        );
    }
    out.push_str("</svg>\n");
    out
}
