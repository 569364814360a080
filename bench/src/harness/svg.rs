//! ratios.svg: a grouped bar chart of each system's ratio to `direct`, one
//! group per metric. Every bar reads "higher is better, 1 = direct", so
//! latency is drawn as direct ÷ system.

use std::fmt::Write;

use crate::report::Results;

const COLOURS: [&str; 10] =
    ["#4e79a7", "#59a14f", "#9c755f", "#f28e2b", "#e15759", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7", "#bab0ac"];
const BAR: f64 = 18.0;
const GROUP_GAP: f64 = 34.0;
/// Wide enough for the longest group label.
const MIN_GROUP_WIDTH: f64 = 110.0;
/// Wide enough for the title.
const MIN_WIDTH: f64 = 680.0;
const LEFT: f64 = 56.0;
const TOP: f64 = 64.0;
const PLOT_HEIGHT: f64 = 260.0;
const BOTTOM: f64 = 44.0;

/// (label, metric key, drawn as 1 ÷ ratio).
const GROUPS: [(&str, &str, bool); 6] = [
    ("bulk up", "bulk_up_gbps", false),
    ("bulk down", "bulk_down_gbps", false),
    ("conns/s", "conns_per_sec", false),
    ("HTTP close", "http_close_rps", false),
    ("HTTP keep-alive", "http_keepalive_rps", false),
    ("TTFR p50", "ttfr_p50_us", true),
];

pub fn ratios(results: &Results) -> String {
    let systems: Vec<_> = results.summary.iter().filter(|s| s.system != "direct").collect();
    let bars = systems.len().max(1) as f64;
    let group_width = (bars * BAR + GROUP_GAP).max(MIN_GROUP_WIDTH);
    let width = (LEFT + group_width * GROUPS.len() as f64 + 16.0).max(MIN_WIDTH);
    let height = TOP + PLOT_HEIGHT + BOTTOM;
    let ratio_of = |system: usize, group: usize| -> Option<f64> {
        let (_, key, inverted) = GROUPS[group];
        let ratio = systems[system].metrics.get(key)?.ratio?;
        Some(if inverted { 1.0 / ratio } else { ratio }).filter(|r| r.is_finite())
    };
    let highest =
        (0..systems.len()).flat_map(|s| (0..GROUPS.len()).filter_map(move |g| ratio_of(s, g))).fold(1.0_f64, f64::max);
    // Axis top: a multiple of the grid step above the highest bar.
    let step = if highest > 2.0 { 0.5 } else { 0.25 };
    let top = ((highest * 1.05) / step).ceil() * step;
    let y = |ratio: f64| TOP + PLOT_HEIGHT * (1.0 - ratio / top);

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{LEFT}" y="18" font-size="14" font-weight="bold">Ratio to direct, higher is better (TTFR: direct ÷ system) — {}, {} × {} s</text>"#,
        results.date,
        crate::stats::rounds(results.rounds),
        results.seconds
    );
    for (i, summary) in systems.iter().enumerate() {
        let x = LEFT + i as f64 * 130.0;
        let colour = COLOURS[i % COLOURS.len()];
        let _ = writeln!(svg, r#"<rect x="{x:.1}" y="30" width="12" height="12" fill="{colour}"/>"#);
        let _ = writeln!(svg, r#"<text x="{:.1}" y="40">{}</text>"#, x + 16.0, summary.system);
    }
    let mut tick = 0.0;
    while tick <= top + 1e-9 {
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" x2="{:.1}" y1="{yy:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{tick:.2}</text>"##,
            width - 16.0,
            LEFT - 6.0,
            y(tick) + 4.0,
            yy = y(tick)
        );
        tick += step;
    }
    for (g, (label, _, _)) in GROUPS.iter().enumerate() {
        let group_x = LEFT + g as f64 * group_width + (group_width - bars * BAR) / 2.0;
        for s in 0..systems.len() {
            let Some(ratio) = ratio_of(s, g) else { continue };
            let x = group_x + s as f64 * BAR;
            let colour = COLOURS[s % COLOURS.len()];
            let _ = writeln!(
                svg,
                r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{colour}"><title>{} {label}: {ratio:.2}</title></rect>"#,
                y(ratio),
                BAR - 2.0,
                y(0.0) - y(ratio),
                systems[s].system
            );
            let _ = writeln!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" font-size="8" text-anchor="middle">{ratio:.2}</text>"#,
                x + (BAR - 2.0) / 2.0,
                y(ratio) - 3.0
            );
        }
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{label}</text>"#,
            group_x + bars * BAR / 2.0,
            TOP + PLOT_HEIGHT + 18.0
        );
    }
    let _ = writeln!(
        svg,
        r##"<line x1="{LEFT}" x2="{:.1}" y1="{one:.1}" y2="{one:.1}" stroke="#333" stroke-dasharray="5,3"/><text x="{:.1}" y="{:.1}" text-anchor="end">direct</text>"##,
        width - 16.0,
        width - 16.0,
        y(1.0) - 4.0,
        one = y(1.0)
    );
    let _ = writeln!(svg, r##"<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{:.1}" stroke="#333"/>"##, y(0.0));
    svg.push_str("</svg>\n");
    svg
}
