//! Figures as SVG (plotters' SVG backend only: no fonts or bitmaps needed),
//! with the provenance of the data embedded as the SVG's `<desc>` and
//! printed under the plot.

use super::machine::Provenance;
use plotters::prelude::*;

pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// Values at or below this are drawn on the bottom edge of a log axis
/// (log 0 does not exist); the figure's caption says so.
pub const LOG_FLOOR: f64 = 0.5;

const COLORS: [RGBColor; 6] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x8c, 0x56, 0x4b),
];

/// A log-log line chart with markers and a legend.
pub fn log_log(title: &str, x_desc: &str, y_desc: &str, series: &[Series]) -> String {
    log_log_from(title, x_desc, y_desc, series, LOG_FLOOR)
}

/// [`log_log`] whose y axis starts at `floor` (values at or below it are
/// drawn on the bottom edge).
pub fn log_log_from(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[Series],
    floor: f64,
) -> String {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (860, 540)).into_drawing_area();
        let _ = root.fill(&WHITE);
        if let Err(e) = draw(&root, title, x_desc, y_desc, series, floor) {
            let _ = root.draw(&Text::new(
                format!("no plot: {e}"),
                (40, 270),
                ("sans-serif", 16).into_font(),
            ));
        }
        let _ = root.present();
    }
    buf
}

fn draw(
    root: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[Series],
    floor: f64,
) -> Result<(), String> {
    let pts = || series.iter().flat_map(|s| s.points.iter().copied());
    if pts().next().is_none() {
        return Err("no configuration could be measured (see the table's notes)".into());
    }
    let (xmin, xmax) = pts().fold((f64::MAX, f64::MIN), |(a, b), (x, _)| (a.min(x), b.max(x)));
    let ymax = pts().fold(floor * 2.0, |m, (_, y)| m.max(y));
    let e = |x: &dyn std::fmt::Debug| format!("{x:?}");
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 20))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(
            (xmin / 1.5..xmax * 1.5).log_scale(),
            (floor..ymax * 2.0).log_scale(),
        )
        .map_err(|x| e(&x))?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .max_light_lines(2)
        .x_label_formatter(&|x| format!("{x}"))
        .y_label_formatter(&|y| format!("{y}"))
        .draw()
        .map_err(|x| e(&x))?;
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let pts: Vec<(f64, f64)> = s.points.iter().map(|&(x, y)| (x, y.max(floor))).collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(|x| e(&x))?
            .label(s.label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(pts.into_iter().map(|p| Circle::new(p, 4, color.filled())))
            .map_err(|x| e(&x))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|x| e(&x))?;
    Ok(())
}

/// Put the provenance into an SVG: a `<desc>` for tools, and small text
/// lines at the bottom for readers (the canvas grows to make room).
pub fn with_provenance(svg: &str, prov: &Provenance, seeds: &str) -> String {
    let lines = prov.lines(seeds);
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('`', "")
    };
    let extra = 16 * lines.len() as u32 + 10;
    let mut out = svg.to_string();
    // Grow the canvas: plotters writes width/height and a viewBox.
    if let (Some(h0), Some(vb0)) = (out.find("height=\""), out.find("viewBox=\"")) {
        let hs = h0 + 8;
        let he = hs + out[hs..].find('"').unwrap_or(0);
        if let Ok(h) = out[hs..he].parse::<u32>() {
            let vs = vb0 + 9;
            let ve = vs + out[vs..].find('"').unwrap_or(0);
            let parts: Vec<String> = out[vs..ve].split_whitespace().map(str::to_string).collect();
            if parts.len() == 4 {
                let new_vb = format!("{} {} {} {}", parts[0], parts[1], parts[2], h + extra);
                out.replace_range(vs..ve, &new_vb);
            }
            out.replace_range(hs..he, &(h + extra).to_string());
            let mut text = format!(
                "<rect x=\"0\" y=\"{h}\" width=\"100%\" height=\"{extra}\" fill=\"white\"/>\n"
            );
            for (i, l) in lines.iter().enumerate() {
                text.push_str(&format!(
                    "<text x=\"10\" y=\"{}\" font-family=\"monospace\" font-size=\"10\" fill=\"#444\">{}</text>\n",
                    h + 14 + 16 * i as u32,
                    esc(l)
                ));
            }
            if let Some(end) = out.rfind("</svg>") {
                out.insert_str(end, &text);
            }
        }
    }
    if let Some(open_end) = out
        .find("<svg")
        .and_then(|s| out[s..].find('>').map(|e| s + e + 1))
    {
        out.insert_str(
            open_end,
            &format!("\n<desc>{}</desc>", esc(&lines.join("\n"))),
        );
    }
    out
}
