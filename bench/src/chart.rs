//! performance.svg: hello world end to end, one horizontal bar per configuration and program (median,
//! with a min–max whisker), the two targets as vertical lines.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::suite::{Cell, Results};

const ASM_COLOR: RGBColor = RGBColor(52, 101, 164);
const C_COLOR: RGBColor = RGBColor(204, 121, 32);
const TARGET_COLOR: RGBColor = RGBColor(180, 30, 30);

/// Draws the chart into `path`.
pub fn hello_chart(results: &Results, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    // One bar per (configuration, program) that has a value, top to bottom in table order.
    let mut bars: Vec<(String, RGBColor, f64, f64, f64)> = Vec::new();
    let mut missing: Vec<String> = Vec::new();
    for row in &results.hello {
        for (cell, program, color) in [(&row.asm, "asm", ASM_COLOR), (&row.c, "C glibc", C_COLOR)] {
            let label = format!("{} — {program}", row.config.label());
            match cell {
                Cell::Value(summary) => bars.push((label, color, summary.median, summary.min, summary.max)),
                Cell::Failed(_) => missing.push(format!("{label}: failed")),
                Cell::NotApplicable(_) => missing.push(format!("{label}: n/a")),
            }
        }
    }
    let longest = bars.iter().map(|bar| bar.4).fold(160.0_f64, f64::max);
    let x_max = (longest * 1.15 / 50.0).ceil() * 50.0;
    let rows = bars.len().max(1);
    let height = 120 + 34 * rows as u32 + 16 * missing.len() as u32;

    let root = SVGBackend::new(path, (900, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let (plot_area, footer) = root.split_vertically(height - 16 * missing.len() as u32 - 10);
    let mut chart = ChartBuilder::on(&plot_area)
        .caption("secure-run: hello world end to end (median, whisker min–max)", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(190)
        .build_cartesian_2d(0.0..x_max, 0.0..rows as f64)?;
    chart.configure_mesh().disable_y_mesh().y_labels(0).x_desc("wall time, ms (process start to exit)").draw()?;
    let label_style = ("sans-serif", 12).into_font().into_text_style(&root).pos(Pos::new(HPos::Right, VPos::Center));
    for (index, (label, color, median, min, max)) in bars.iter().enumerate() {
        let top = rows as f64 - index as f64 - 0.15;
        let bottom = rows as f64 - index as f64 - 0.85;
        let centre = (top + bottom) / 2.0;
        chart.draw_series(std::iter::once(Rectangle::new([(0.0, bottom), (*median, top)], color.filled())))?;
        let (x, y) = chart.backend_coord(&(0.0, centre));
        root.draw(&Text::new(label.clone(), (x - 8, y), label_style.clone()))?;
        chart.draw_series(std::iter::once(PathElement::new(vec![(*min, centre), (*max, centre)], BLACK)))?;
        chart.draw_series(std::iter::once(Text::new(
            format!("{median:.1} ms"),
            (max.max(*median) + x_max * 0.01, centre + 0.2),
            ("sans-serif", 12),
        )))?;
    }
    for (target, label) in [(25.0, "KVM target 25 ms"), (150.0, "QEMU target 150 ms")] {
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(target, 0.0), (target, rows as f64)],
            TARGET_COLOR.stroke_width(1),
        )))?;
        chart.draw_series(std::iter::once(Text::new(
            label,
            (target + x_max * 0.005, rows as f64 - 0.05),
            ("sans-serif", 11).into_font().color(&TARGET_COLOR),
        )))?;
    }
    for (index, line) in missing.iter().enumerate() {
        footer.draw(&Text::new(line.clone(), (210, 16 * index as i32), ("sans-serif", 12)))?;
    }
    root.present()?;
    Ok(())
}
