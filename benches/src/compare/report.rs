//! The report: raw samples as CSV, a markdown table that leads with ratios, and a PNG
//! plot of the ratio Respite/Redis per cell.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::prelude::*;

use super::load::{Cell, Figures};
use super::server::System;
use super::{Results, Sample};

/// Ratio of medians for one (tool, mode, cell), with the spread of per-repeat ratios.
#[derive(Clone, Debug)]
pub struct Row {
    pub tool: &'static str,
    pub mode: String,
    pub cell: Cell,
    pub redis: Sample,
    pub respite: Sample,
    pub reference_ops: Option<f64>,
    pub ratio: f64,
    pub ratio_min: f64,
    pub ratio_max: f64,
    /// Median server CPU µs per request of Respite and of Redis.
    pub respite_cpu: f64,
    pub redis_cpu: f64,
    /// Median CPU µs per request of the load tool itself, in Respite's runs.
    pub respite_tool_cpu: f64,
}

impl Row {
    /// The most ops/s Respite could reach if its server and the load tool used every core
    /// at the CPU per request measured (`cores / (server + tool)`), over Redis's ops/s: the
    /// best ratio these costs allow on this machine. A target above it cannot be met here
    /// without cutting CPU per request. None when the CPU figures are missing.
    pub fn cpu_ceiling(&self, cores: usize) -> Option<f64> {
        let per_request = self.respite_cpu + self.respite_tool_cpu;
        (self.respite_cpu > 0.0 && self.respite_tool_cpu > 0.0)
            .then(|| cores as f64 * 1e6 / per_request / self.redis.figures.ops_per_sec)
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// The median of one figure over `samples` (a CPU µs per request).
fn median_of(samples: &[&Sample], figure: impl Fn(&Figures) -> f64) -> f64 {
    median(samples.iter().map(|s| figure(&s.figures)).collect())
}

/// The median server CPU µs per request of `samples`.
fn median_cpu(samples: &[&Sample]) -> f64 {
    median_of(samples, |f| f.server_cpu_us_per_op)
}

/// A CPU-per-request pair as "a / b (a/b x)".
fn cpu_pair(a: f64, b: f64) -> String {
    if a > 0.0 && b > 0.0 {
        format!("{a:.2} / {b:.2} ({:.2}x)", a / b)
    } else {
        "-".into()
    }
}

/// The sample whose ops/s is the median of `samples` (so its latencies travel with it).
fn median_sample(samples: &[&Sample]) -> Option<Sample> {
    let mut sorted: Vec<&Sample> = samples.to_vec();
    sorted.sort_by(|a, b| a.figures.ops_per_sec.total_cmp(&b.figures.ops_per_sec));
    sorted.get(sorted.len() / 2).map(|s| (*s).clone())
}

/// Groups samples into table rows, in the order cells were run.
pub fn rows(results: &Results) -> Vec<Row> {
    let mut groups: BTreeMap<(&'static str, String, Cell), Vec<&Sample>> = BTreeMap::new();
    for s in &results.samples {
        groups
            .entry((s.tool, s.mode.clone(), s.cell))
            .or_default()
            .push(s);
    }
    let reference: BTreeMap<(&'static str, Cell), f64> = groups
        .iter()
        .map(|((tool, _, cell), v)| {
            let ops: Vec<f64> = v
                .iter()
                .filter(|s| s.system == System::RedisNoPersist)
                .map(|s| s.figures.ops_per_sec)
                .collect();
            ((*tool, *cell), ops)
        })
        .filter(|(_, ops)| !ops.is_empty())
        .map(|(k, ops)| (k, median(ops)))
        .collect();
    let mut out = Vec::new();
    for ((tool, mode, cell), samples) in &groups {
        let of = |system| {
            samples
                .iter()
                .copied()
                .filter(|s| s.system == system)
                .collect::<Vec<_>>()
        };
        let (redis, respite) = (of(System::Redis), of(System::Respite));
        let (Some(redis_med), Some(respite_med)) = (median_sample(&redis), median_sample(&respite))
        else {
            continue;
        };
        let per_repeat: Vec<f64> = redis
            .iter()
            .filter_map(|r| {
                respite
                    .iter()
                    .find(|p| p.repeat == r.repeat)
                    .map(|p| p.figures.ops_per_sec / r.figures.ops_per_sec)
            })
            .collect();
        let ratio = respite_med.figures.ops_per_sec / redis_med.figures.ops_per_sec;
        out.push(Row {
            tool,
            mode: mode.clone(),
            cell: *cell,
            ratio,
            ratio_min: per_repeat.iter().copied().fold(f64::INFINITY, f64::min),
            ratio_max: per_repeat.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            respite_cpu: median_cpu(&respite),
            redis_cpu: median_cpu(&redis),
            respite_tool_cpu: median_of(&respite, |f| f.tool_cpu_us_per_op),
            redis: redis_med,
            respite: respite_med,
            reference_ops: reference.get(&(*tool, *cell)).copied(),
        });
    }
    out
}

/// Encrypted against plain Respite for one (tool, mode, cell).
#[derive(Clone, Debug)]
pub struct EncryptionRow {
    pub tool: &'static str,
    pub mode: String,
    pub cell: Cell,
    pub plain_ops: f64,
    pub encrypted_ops: f64,
    /// Median server CPU µs per request, plain and encrypted.
    pub plain_cpu: f64,
    pub encrypted_cpu: f64,
    pub ratio: f64,
    pub ratio_min: f64,
    pub ratio_max: f64,
}

/// The encryption cost the target is set against: encrypted ops/s over plain ops/s.
pub const ENCRYPTION_TARGET: f64 = 0.85;

/// Pairs `respite-encrypted` samples with plain `respite` ones (empty without --encryption).
pub fn encryption_rows(results: &Results) -> Vec<EncryptionRow> {
    let mut groups: BTreeMap<(&'static str, String, Cell), Vec<&Sample>> = BTreeMap::new();
    for s in &results.samples {
        groups
            .entry((s.tool, s.mode.clone(), s.cell))
            .or_default()
            .push(s);
    }
    let mut out = Vec::new();
    for ((tool, mode, cell), samples) in &groups {
        let of = |system| {
            samples
                .iter()
                .copied()
                .filter(|s| s.system == system)
                .collect::<Vec<_>>()
        };
        let (plain, enc) = (of(System::Respite), of(System::RespiteEncrypted));
        let (Some(p), Some(e)) = (median_sample(&plain), median_sample(&enc)) else {
            continue;
        };
        let per_repeat: Vec<f64> = plain
            .iter()
            .filter_map(|p| {
                enc.iter()
                    .find(|e| e.repeat == p.repeat)
                    .map(|e| e.figures.ops_per_sec / p.figures.ops_per_sec)
            })
            .collect();
        out.push(EncryptionRow {
            tool,
            mode: mode.clone(),
            cell: *cell,
            plain_ops: p.figures.ops_per_sec,
            encrypted_ops: e.figures.ops_per_sec,
            plain_cpu: median_cpu(&plain),
            encrypted_cpu: median_cpu(&enc),
            ratio: e.figures.ops_per_sec / p.figures.ops_per_sec,
            ratio_min: per_repeat.iter().copied().fold(f64::INFINITY, f64::min),
            ratio_max: per_repeat.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        });
    }
    out
}

/// Writes results.csv, results.md and ratios.png into `dir`.
///
/// # Errors
/// The folder or a file could not be written, or the plot could not be drawn.
pub fn write(results: &Results, dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("write {}: {e}", path.display()))
    };
    write("results.csv", csv(results))?;
    let rows = rows(results);
    write("results.md", markdown(results, &rows))?;
    plot(&rows, &results.machine, &dir.join("ratios.png"))?;
    print!("{}", markdown(results, &rows));
    Ok(())
}

fn csv(results: &Results) -> String {
    let mut s = String::from(
        "tool,mode,system,test,pipeline,value_bytes,repeat,ops_per_sec,p50_ms,p99_ms,p999_ms,server_cpu_us_per_op,tool_cpu_us_per_op\n",
    );
    for x in &results.samples {
        let f = &x.figures;
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{:.2},{:.3},{:.3},{:.3},{:.3},{:.3}",
            x.tool,
            x.mode,
            x.system.name(),
            x.cell.test,
            x.cell.pipeline,
            x.cell.value_bytes,
            x.repeat,
            f.ops_per_sec,
            f.p50_ms,
            f.p99_ms,
            f.p999_ms,
            f.server_cpu_us_per_op,
            f.tool_cpu_us_per_op
        );
    }
    for (system, fp) in &results.footprint {
        let _ = writeln!(
            s,
            "footprint,everysec,{system},rss_small_bytes={},rss_large_bytes={},restart_ms={},,,,,,",
            fp.rss_small_bytes,
            fp.rss_large_bytes,
            fp.restart.map_or(-1.0, |d| d.as_secs_f64() * 1e3)
        );
    }
    s
}

fn markdown(results: &Results, rows: &[Row]) -> String {
    let o = &results.options;
    let mut s = String::new();
    let _ = writeln!(s, "Machine: {}. Date: {}.", results.machine, today());
    let _ = writeln!(
        s,
        "Repeats per cell: {} (alternating which server goes first); {} requests per run.\n",
        o.repeats, o.requests
    );
    s.push_str("Commands:\n\n");
    for c in &results.commands {
        let _ = writeln!(s, "    {c}");
    }
    s.push_str(
        "\nServer CPU µs/request: user and system CPU time of the server process (all its \
         threads, from /proc/PID/stat) over the run, divided by the requests; the load tool's \
         own CPU is not in it. It is what a request costs the server, and a noisy shared \
         machine disturbs it far less than ops/s.\n",
    );
    let _ = writeln!(
        s,
        "\nLoad tool CPU µs/request: the same for the load tool itself (a child of the \
         harness, from the harness's /proc/self/stat once it has exited), in Respite's runs. \
         CPU ceiling: {} cores ÷ (Respite's server + load tool CPU µs/request), over Redis's \
         ops/s: the best ratio those costs allow while the load tool shares this machine's \
         cores. It is an upper bound, reached only when the run is CPU-bound (not when it \
         waits on fdatasync); a target above it needs less CPU per request, or load from \
         another machine.",
        results.cores
    );
    s.push('\n');
    s.push_str(
        "| tool | appendfsync | cell | ratio Respite/Redis (spread) | Respite ops/s | Redis ops/s \
         | Redis no-persist ops/s | Respite p50/p99/p99.9 ms | Redis p50/p99/p99.9 ms \
         | server CPU µs/request Respite / Redis | load tool CPU µs/request | CPU ceiling |\n",
    );
    s.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in rows {
        let lat = |x: &Sample| {
            format!(
                "{:.3}/{:.3}/{:.3}",
                x.figures.p50_ms, x.figures.p99_ms, x.figures.p999_ms
            )
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | **{:.2}x** ({:.2}-{:.2}) | {:.0} | {:.0} | {} | {} | {} | {} | {} | {} |",
            r.tool,
            r.mode,
            r.cell.label(),
            r.ratio,
            r.ratio_min,
            r.ratio_max,
            r.respite.figures.ops_per_sec,
            r.redis.figures.ops_per_sec,
            r.reference_ops.map_or("-".into(), |v| format!("{v:.0}")),
            lat(&r.respite),
            lat(&r.redis),
            cpu_pair(r.respite_cpu, r.redis_cpu),
            if r.respite_tool_cpu > 0.0 {
                format!("{:.2}", r.respite_tool_cpu)
            } else {
                "-".into()
            },
            r.cpu_ceiling(results.cores)
                .map_or("-".into(), |c| format!("{c:.2}x")),
        );
    }
    if !results.footprint.is_empty() {
        s.push_str(
            "\n| server | RSS, 100 B values | RSS, 4 KiB values | restart to first PONG |\n",
        );
        s.push_str("|---|---|---|---|\n");
        for (system, fp) in &results.footprint {
            let _ = writeln!(
                s,
                "| {system} | {:.1} MiB | {:.1} MiB | {} |",
                fp.rss_small_bytes as f64 / 1048576.0,
                fp.rss_large_bytes as f64 / 1048576.0,
                fp.restart
                    .map_or("-".into(), |d| format!("{:.0} ms", d.as_secs_f64() * 1e3)),
            );
        }
        if let (Some(a), Some(b)) = (
            results.footprint.get("respite"),
            results.footprint.get("redis"),
        ) {
            let ratio = |x: u64, y: u64| if y == 0 { 0.0 } else { x as f64 / y as f64 };
            let _ = writeln!(
                s,
                "\nRespite/Redis: RSS {:.2}x (100 B), {:.2}x (4 KiB); restart {}.",
                ratio(a.rss_small_bytes, b.rss_small_bytes),
                ratio(a.rss_large_bytes, b.rss_large_bytes),
                match (a.restart, b.restart) {
                    (Some(x), Some(y)) if !y.is_zero() =>
                        format!("{:.2}x", x.as_secs_f64() / y.as_secs_f64()),
                    _ => "not measured".into(),
                }
            );
        }
    }
    let enc = encryption_rows(results);
    if !enc.is_empty() {
        s.push_str(
            "\nEncryption at rest: respite with `--encryption-key-file` against plain respite, \
             same machine, same cells, alternating order.\n\n",
        );
        s.push_str(
            "| tool | appendfsync | cell | ratio encrypted/plain (spread) | encrypted ops/s | plain ops/s \
             | server CPU µs/request encrypted / plain |\n",
        );
        s.push_str("|---|---|---|---|---|---|---|\n");
        for r in &enc {
            let _ = writeln!(
                s,
                "| {} | {} | {} | **{:.2}x** ({:.2}-{:.2}) | {:.0} | {:.0} | {} |",
                r.tool,
                r.mode,
                r.cell.label(),
                r.ratio,
                r.ratio_min,
                r.ratio_max,
                r.encrypted_ops,
                r.plain_ops,
                cpu_pair(r.encrypted_cpu, r.plain_cpu)
            );
        }
        let worst = enc.iter().map(|r| r.ratio).fold(f64::INFINITY, f64::min);
        let below: Vec<String> = enc
            .iter()
            .filter(|r| r.ratio < ENCRYPTION_TARGET)
            .map(|r| format!("{} {} {}", r.tool, r.mode, r.cell.label()))
            .collect();
        let _ = writeln!(
            s,
            "\nEncrypted/plain: lowest {worst:.2}x; target {ENCRYPTION_TARGET:.2}x: {}.",
            if below.is_empty() {
                "met in every cell".to_string()
            } else {
                format!("missed in {}", below.join(", "))
            }
        );
    }
    for n in &results.notes {
        let _ = writeln!(s, "\nNote: {n}");
    }
    s
}

/// A TrueType font for the plot's text, from Debian's fonts-dejavu-core.
pub fn font_path() -> Option<PathBuf> {
    [
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

fn plot(rows: &[Row], machine: &str, path: &Path) -> Result<(), String> {
    let font =
        font_path().ok_or("no DejaVuSans.ttf for the plot (apt-get install fonts-dejavu-core)")?;
    let bytes = std::fs::read(&font).map_err(|e| format!("read {}: {e}", font.display()))?;
    // plotters wants the font for the life of the process; the harness draws one plot.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| format!("{} is not a usable font", font.display()))?;

    let rows: Vec<&Row> = rows
        .iter()
        .filter(|r| r.tool == "redis-benchmark")
        .collect();
    let mut cells: Vec<Cell> = rows.iter().map(|r| r.cell).collect();
    cells.sort();
    cells.dedup();
    let mut modes: Vec<&str> = rows.iter().map(|r| r.mode.as_str()).collect();
    modes.dedup();
    let top = rows
        .iter()
        .map(|r| r.ratio_max.max(r.ratio))
        .fold(1.5, f64::max)
        * 1.15;

    let root = BitMapBackend::new(path, (1400, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let n = cells.len().max(1) as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "Respite / Redis ops/s, redis-benchmark -c 50 ({})",
                machine.split(';').next().unwrap_or(machine)
            ),
            ("sans-serif", 18),
        )
        .margin(20)
        .x_label_area_size(60)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5..n - 0.5, 0.0..top)
        .map_err(|e| e.to_string())?;
    let labels: Vec<String> = cells.iter().map(Cell::label).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(cells.len())
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 {
                labels.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc("ratio (higher is better for Respite)")
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(|e| e.to_string())?;
    let palette = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
    ];
    let width = 0.8 / modes.len().max(1) as f64;
    for (m, mode) in modes.iter().enumerate() {
        let color = palette[m % palette.len()];
        let bars: Vec<(f64, &Row)> = rows
            .iter()
            .filter(|r| r.mode == *mode)
            .filter_map(|r| {
                cells
                    .iter()
                    .position(|c| *c == r.cell)
                    .map(|i| (i as f64, *r))
            })
            .collect();
        chart
            .draw_series(bars.iter().map(|(i, r)| {
                let x0 = i - 0.4 + width * m as f64;
                Rectangle::new([(x0, 0.0), (x0 + width * 0.9, r.ratio)], color.filled())
            }))
            .map_err(|e| e.to_string())?
            .label(format!("appendfsync {mode}"))
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
        // The spread over repeats as a thin line on each bar.
        chart
            .draw_series(
                bars.iter()
                    .filter(|(_, r)| r.ratio_min.is_finite())
                    .map(|(i, r)| {
                        let x = i - 0.4 + width * m as f64 + width * 0.45;
                        PathElement::new(
                            vec![(x, r.ratio_min), (x, r.ratio_max)],
                            BLACK.stroke_width(2),
                        )
                    }),
            )
            .map_err(|e| e.to_string())?;
    }
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(-0.5, 1.0), (n - 0.5, 1.0)],
            RED.stroke_width(1),
        )))
        .map_err(|e| e.to_string())?
        .label("parity with Redis")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 10, y)], RED.stroke_width(2)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.9))
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(|e| e.to_string())?;
    root.present()
        .map_err(|e| format!("write {}: {e}", path.display()))
}

/// Today's UTC date as YYYY-MM-DD (civil-from-days, no date crate needed).
pub fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_413), (2025, 11, 21));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn median_of_even_and_odd() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(vec![]), 0.0);
    }
}
