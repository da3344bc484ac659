//! Mel-spectrogram PNG (plotters, bitmap backend; the Ubuntu Light font from `epaint_default_fonts`).

use anyhow::{Context, Result, anyhow};
use plotters::prelude::*;
use plotters::style::FontStyle;

const WIDTH: u32 = 1100;
const HEIGHT: u32 = 480;
const FONT: &str = "sans-serif";

fn register_font() -> Result<()> {
    plotters::style::register_font(FONT, FontStyle::Normal, epaint_default_fonts::UBUNTU_LIGHT)
        .map_err(|_| anyhow!("the embedded font could not be loaded"))
}

/// Draw `features` (row-major `[mels, frames]`) as a heat map: time on x, mel bin on y, with a colour bar;
/// the PNG file's bytes.
pub fn mel_png(features: &[f32], mels: usize, frames: usize, title: &str) -> Result<Vec<u8>> {
    register_font()?;
    let (lo, hi) = features
        .iter()
        .filter(|v| v.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let (lo, hi) = if lo < hi {
        (lo, hi)
    } else {
        (lo - 1.0, lo + 1.0)
    };
    let mut buf = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (WIDTH, HEIGHT)).into_drawing_area();
        let e = |err: DrawingAreaErrorKind<_>| anyhow!("drawing failed: {err:?}");
        root.fill(&WHITE).map_err(e)?;
        let (main, bar) = root.split_horizontally(WIDTH - 110);
        let mut chart = ChartBuilder::on(&main)
            .caption(title, (FONT, 20))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0..frames, 0..mels)
            .map_err(e)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("frame (hop 256 samples)")
            .y_desc("mel bin")
            .label_style((FONT, 14))
            .draw()
            .map_err(e)?;
        let cells = (0..mels).flat_map(|m| (0..frames).map(move |t| (m, t)));
        chart
            .draw_series(cells.map(|(m, t)| {
                let v = features[m * frames + t];
                let color = ViridisRGB.get_color_normalized(v, lo, hi);
                Rectangle::new([(t, m), (t + 1, m + 1)], color.filled())
            }))
            .map_err(e)?;

        let mut cbar = ChartBuilder::on(&bar)
            .margin_top(40)
            .margin_bottom(50)
            .margin_right(10)
            .y_label_area_size(55)
            .build_cartesian_2d(0.0f32..1.0, lo..hi)
            .map_err(e)?;
        cbar.configure_mesh()
            .disable_mesh()
            .disable_x_axis()
            .label_style((FONT, 13))
            .draw()
            .map_err(e)?;
        let steps = 200;
        cbar.draw_series((0..steps).map(|i| {
            let a = lo + (hi - lo) * i as f32 / steps as f32;
            let b = lo + (hi - lo) * (i + 1) as f32 / steps as f32;
            Rectangle::new(
                [(0.0, a), (1.0, b)],
                ViridisRGB.get_color_normalized(a, lo, hi).filled(),
            )
        }))
        .map_err(e)?;
        root.present().map_err(e)?;
    }
    let mut png = Vec::new();
    encode_png(&buf, WIDTH, HEIGHT, &mut png)?;
    Ok(png)
}

fn encode_png(rgb: &[u8], width: u32, height: u32, out: &mut Vec<u8>) -> Result<()> {
    use image::ImageEncoder;
    image::codecs::png::PngEncoder::new(out)
        .write_image(rgb, width, height, image::ExtendedColorType::Rgb8)
        .context("encoding the PNG")
}
