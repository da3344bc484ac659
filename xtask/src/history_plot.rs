//! `cargo xtask bench --plot`: docs/bench-history.csv (one line per row per bench run) drawn as speedup per row
//! over the runs, each point its median with a bar from the run's slowest to its fastest round, and the goals as
//! dashed lines: a regression shows as a picture.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use plotters::prelude::*;
use plotters::style::FontStyle;

const WIDTH: u32 = 1100;
const HEIGHT: u32 = 560;
const FONT: &str = "sans-serif";

/// One line of the history.
struct Point {
    run: usize,
    speedup: f64,
    min: f64,
    max: f64,
}

/// The runs (commit and date, in file order) and each row's points.
type History = (Vec<String>, BTreeMap<String, Vec<Point>>);

fn read(csv: &str) -> Result<History> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .ok_or_else(|| anyhow!("the history has no `{name}` column"))
    };
    let (commit, date, row) = (col("commit")?, col("date")?, col("row")?);
    let (speedup, min, max) = (col("speedup")?, col("min")?, col("max")?);
    let mut runs: Vec<String> = Vec::new();
    let mut rows: BTreeMap<String, Vec<Point>> = BTreeMap::new();
    for (i, line) in lines.enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').collect();
        let get = |c: usize| {
            f.get(c)
                .copied()
                .ok_or_else(|| anyhow!("line {}: too few fields", i + 2))
        };
        let num = |c: usize| -> Result<f64> {
            get(c)?
                .parse::<f64>()
                .with_context(|| format!("line {}: field {} is not a number", i + 2, c + 1))
        };
        let run = format!("{} {}", get(commit)?, get(date)?);
        if runs.last() != Some(&run) {
            runs.push(run);
        }
        rows.entry(get(row)?.to_string()).or_default().push(Point {
            run: runs.len() - 1,
            speedup: num(speedup)?,
            min: num(min)?,
            max: num(max)?,
        });
    }
    if rows.is_empty() {
        bail!("the history holds no runs yet: run `cargo xtask bench` first");
    }
    Ok((runs, rows))
}

/// Draw `csv` to the PNG `png`; `goals` are (row, speedup) lines.
pub fn plot(csv: &Path, png: &Path, goals: &[(&str, f64)]) -> Result<()> {
    let text =
        std::fs::read_to_string(csv).with_context(|| format!("reading {}", csv.display()))?;
    let (runs, rows) = read(&text)?;
    plotters::style::register_font(FONT, FontStyle::Normal, epaint_default_fonts::UBUNTU_LIGHT)
        .map_err(|_| anyhow!("the embedded font could not be loaded"))?;
    let top = rows
        .values()
        .flatten()
        .map(|p| p.max)
        .chain(goals.iter().map(|g| g.1))
        .fold(1.0f64, f64::max)
        * 1.1;
    let mut buf = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (WIDTH, HEIGHT)).into_drawing_area();
        let e = |err: DrawingAreaErrorKind<_>| anyhow!("drawing failed: {err:?}");
        root.fill(&WHITE).map_err(e)?;
        let n = runs.len();
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "cargo xtask bench: speedup over PyTorch per row (median; bar: slowest to fastest round)",
                (FONT, 18),
            )
            .margin(12)
            .x_label_area_size(60)
            .y_label_area_size(55)
            .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0.0f64..top)
            .map_err(e)?;
        let label = |x: &f64| {
            let i = x.round();
            if (x - i).abs() < 1e-9 && i >= 0.0 {
                runs.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        };
        chart
            .configure_mesh()
            .x_labels(n.max(2))
            .x_label_formatter(&label)
            .y_desc("speedup (× PyTorch)")
            .x_desc("run (commit, date)")
            .label_style((FONT, 13))
            .draw()
            .map_err(e)?;
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(-0.5, 1.0), (n as f64 - 0.5, 1.0)],
                BLACK.stroke_width(1),
            )))
            .map_err(e)?;
        for (k, (row, points)) in rows.iter().enumerate() {
            let color = Palette99::pick(k).to_rgba();
            // Rows of the same run side by side, a little apart.
            let dx = (k as f64 - rows.len() as f64 / 2.0) * 0.03;
            let xy: Vec<(f64, f64)> = points
                .iter()
                .map(|p| (p.run as f64 + dx, p.speedup))
                .collect();
            chart
                .draw_series(std::iter::once(PathElement::new(
                    xy.clone(),
                    color.stroke_width(2),
                )))
                .map_err(e)?
                .label(row.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(3))
                });
            chart
                .draw_series(xy.iter().map(|&p| Circle::new(p, 4, color.filled())))
                .map_err(e)?;
            chart
                .draw_series(points.iter().map(|p| {
                    let x = p.run as f64 + dx;
                    PathElement::new(vec![(x, p.min), (x, p.max)], color.stroke_width(1))
                }))
                .map_err(e)?;
            if let Some(&(_, goal)) = goals.iter().find(|g| g.0 == row) {
                let dashes = (0..(n * 8)).step_by(2).map(|i| {
                    let a = -0.5 + i as f64 / 8.0;
                    PathElement::new(
                        vec![(a, goal), (a + 1.0 / 8.0, goal)],
                        color.stroke_width(1),
                    )
                });
                chart.draw_series(dashes).map_err(e)?;
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font((FONT, 13))
            .draw()
            .map_err(e)?;
        root.present().map_err(e)?;
    }
    let mut out = Vec::new();
    {
        use image::ImageEncoder;
        image::codecs::png::PngEncoder::new(&mut out)
            .write_image(&buf, WIDTH, HEIGHT, image::ExtendedColorType::Rgb8)
            .context("encoding the PNG")?;
    }
    std::fs::write(png, out).with_context(|| format!("writing {}", png.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_history_is_read_by_run_and_row_and_drawn() {
        let csv = "commit,date,row,ours_s,pytorch_s,speedup,q1,min,max,rounds\n\
                   a,2026-12-01,P4,1,5,5.0,4.8,4.6,8.3,9\n\
                   a,2026-12-01,P5,1,1.3,1.3,1.1,1.0,1.6,5\n\
                   b,2026-12-02,P4,1,5,5.5,5.0,4.9,6.0,9\n";
        let (runs, rows) = read(csv).unwrap();
        assert_eq!(runs, ["a 2026-12-01", "b 2026-12-02"]);
        assert_eq!(rows["P4"].len(), 2);
        assert_eq!(rows["P4"][1].run, 1);
        assert_eq!(rows["P5"][0].speedup, 1.3);
        let dir = tempfile::tempdir().unwrap();
        let (c, p) = (dir.path().join("h.csv"), dir.path().join("h.png"));
        std::fs::write(&c, csv).unwrap();
        plot(&c, &p, &[("P5", 2.0)]).unwrap();
        assert!(std::fs::read(&p).unwrap().starts_with(b"\x89PNG"));
        assert!(read("commit,date,row,speedup,min,max\n").is_err());
        assert!(read("commit,date,row,speedup,min,max\na,d,P1,x,1,2\n").is_err());
    }
}
