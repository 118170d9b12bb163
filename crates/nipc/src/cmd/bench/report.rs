//! What `nipc bench` reports: one measurement per transport, size and
//! repetition, summarised into rows (median and min–max over repetitions,
//! ratios to the baseline taken within each repetition), printed as a table,
//! JSON lines or an SVG chart.

use std::io;
use std::time::Duration;

use anyhow::Result;
use serde::{Serialize, Serializer};

use crate::out;

/// One measurement: one transport, one size, one repetition.
#[derive(Debug, Clone)]
pub(super) struct Measurement {
    test: &'static str,
    transport: &'static str,
    size: usize,
    median_ns: Option<f64>,
    p99_ns: Option<f64>,
    msgs_per_s: Option<f64>,
    bytes_per_s: Option<f64>,
}

impl Measurement {
    /// Round trips, one time per round trip in `ns`.
    pub(super) fn rtt(transport: &'static str, size: usize, mut ns: Vec<u64>) -> Measurement {
        ns.sort_unstable();
        let at = |q: f64| ns[((ns.len() - 1) as f64 * q).round() as usize] as f64;
        Measurement {
            test: "rtt",
            transport,
            size,
            median_ns: Some(at(0.5)),
            p99_ns: Some(at(0.99)),
            msgs_per_s: None,
            bytes_per_s: None,
        }
    }

    /// `msgs` messages one way in `took`.
    pub(super) fn throughput(
        transport: &'static str,
        size: usize,
        msgs: u64,
        took: Duration,
    ) -> Measurement {
        let secs = took.as_secs_f64().max(1e-9);
        Measurement {
            test: "throughput",
            transport,
            size,
            median_ns: None,
            p99_ns: None,
            msgs_per_s: Some(msgs as f64 / secs),
            bytes_per_s: Some(msgs as f64 * size as f64 / secs),
        }
    }

    /// The median round trip in ns (round trips only).
    pub(super) fn median_ns(&self) -> Option<f64> {
        self.median_ns
    }

    /// What the row is about: the median round trip, or the message rate.
    fn figure(&self) -> Option<f64> {
        self.median_ns.or(self.msgs_per_s)
    }

    fn is(&self, test: &str, transport: &str, size: usize) -> bool {
        self.test == test && self.transport == transport && self.size == size
    }
}

/// What each measured row is compared with.
pub(super) fn baseline(test: &str, transport: &str, size: usize) -> Option<&'static str> {
    match (test, transport) {
        ("rtt", "shm-spin") => Some("raw-spin"),
        ("rtt", "shm-blocking") => Some("raw-futex"),
        ("rtt", "pipe") => Some("raw-uds"),
        // What timeouts cost when nothing times out.
        ("rtt", "pipe-timeouts") => Some("pipe"),
        // The async ends against the sync ones (targets: pipe <= 1.2x,
        // channel spinning <= 1.5x round trip).
        ("rtt" | "throughput", "pipe-async") => Some("pipe"),
        ("rtt" | "throughput", "shm-async") => Some("shm-spin"),
        ("throughput", "shm-spin-timeouts") => Some("shm-spin"),
        // In place against one copy of the message on one core.
        ("throughput", "shm-zero-copy") if size >= 1 << 20 => Some("memcpy"),
        // In place against copying in and out.
        ("throughput", "shm-zero-copy") => Some("shm-spin"),
        ("throughput", "shm-spin" | "shm-blocking") if size >= 1 << 20 => Some("memcpy"),
        ("throughput", "shm-spin" | "shm-blocking") => Some("raw-ring"),
        _ => None,
    }
}

/// Ratio of a measurement to its baseline's from the same repetition: time
/// ratio for round trips (lower is better), rate ratio for throughput (higher
/// is better; bytes against memcpy, messages otherwise).
fn ratio(m: &Measurement, base: &Measurement) -> Option<f64> {
    if m.test == "rtt" {
        Some(m.median_ns? / base.median_ns?)
    } else if base.transport == "memcpy" {
        Some(m.bytes_per_s? / base.bytes_per_s?)
    } else {
        Some(m.msgs_per_s? / base.msgs_per_s?)
    }
}

/// The median (the mean of the middle two for an even count); `None` if empty.
fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// The smallest and largest value; `None` if empty.
fn min_max(v: &[f64]) -> Option<(f64, f64)> {
    let lo = v.iter().copied().reduce(f64::min)?;
    let hi = v.iter().copied().reduce(f64::max)?;
    Some((lo, hi))
}

/// One row of the report: one transport and size over every repetition. The
/// serialized fields are the `--json` contract (README: `nipc bench`).
#[derive(Debug, Serialize)]
pub(super) struct Row {
    test: &'static str,
    transport: &'static str,
    size: usize,
    /// Median over repetitions of each repetition's median round trip.
    #[serde(serialize_with = "tenths")]
    median_ns: Option<f64>,
    /// Median over repetitions of each repetition's 99th percentile.
    #[serde(serialize_with = "tenths")]
    p99_ns: Option<f64>,
    /// Median over repetitions of the message rate.
    #[serde(serialize_with = "tenths")]
    msgs_per_s: Option<f64>,
    /// Median over repetitions of the byte rate.
    #[serde(serialize_with = "tenths")]
    bytes_per_s: Option<f64>,
    /// Median over repetitions of the ratio to the baseline.
    #[serde(serialize_with = "thousandths")]
    ratio: Option<f64>,
    #[serde(serialize_with = "thousandths")]
    ratio_min: Option<f64>,
    #[serde(serialize_with = "thousandths")]
    ratio_max: Option<f64>,
    /// How many repetitions the row summarises.
    repeat: usize,
    /// What `ratio` compares with.
    #[serde(skip)]
    baseline: Option<&'static str>,
    /// Min and max over repetitions of the median round trip or message rate.
    #[serde(skip)]
    spread: Option<(f64, f64)>,
}

/// A number with one decimal, as the JSON output always had.
fn tenths<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(x) => s.serialize_f64((x * 10.0).round() / 10.0),
        None => s.serialize_none(),
    }
}

/// A ratio, to three decimals.
fn thousandths<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(x) => s.serialize_f64((x * 1000.0).round() / 1000.0),
        None => s.serialize_none(),
    }
}

/// Summarises `reps` (each repetition's measurements) into one row per
/// `(test, transport, size)` in `cells` that was measured, in that order.
pub(super) fn summarise(
    cells: &[(&'static str, &'static str, usize)],
    reps: &[Vec<Measurement>],
) -> Vec<Row> {
    let mut rows = Vec::new();
    for &(test, transport, size) in cells {
        let base = baseline(test, transport, size);
        let mut ms = Vec::new();
        let mut ratios = Vec::new();
        for rep in reps {
            let Some(m) = rep.iter().find(|m| m.is(test, transport, size)) else {
                continue;
            };
            ms.push(m);
            let b = base.and_then(|b| rep.iter().find(|x| x.is(test, b, size)));
            ratios.extend(b.and_then(|b| ratio(m, b)));
        }
        if ms.is_empty() {
            continue;
        }
        let pick = |f: fn(&Measurement) -> Option<f64>| -> Vec<f64> {
            ms.iter().filter_map(|m| f(m)).collect()
        };
        let figures = pick(Measurement::figure);
        let (ratio_min, ratio_max) = match min_max(&ratios) {
            Some((lo, hi)) => (Some(lo), Some(hi)),
            None => (None, None),
        };
        rows.push(Row {
            test,
            transport,
            size,
            median_ns: median(pick(|m| m.median_ns)),
            p99_ns: median(pick(|m| m.p99_ns)),
            msgs_per_s: median(pick(|m| m.msgs_per_s)),
            bytes_per_s: median(pick(|m| m.bytes_per_s)),
            ratio: median(ratios),
            ratio_min,
            ratio_max,
            repeat: ms.len(),
            baseline: base.filter(|_| ratio_min.is_some()),
            spread: min_max(&figures),
        });
    }
    rows
}

/// serde_json's compact output with a space after `:` and `,`, the form the
/// README shows: `{"test": "rtt", "transport": "pipe", …}`.
struct Spaced;

impl serde_json::ser::Formatter for Spaced {
    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }
}

/// One row as one JSON line.
pub(super) fn json(row: &Row) -> Result<String> {
    let mut buf = Vec::new();
    row.serialize(&mut serde_json::Serializer::with_formatter(
        &mut buf, Spaced,
    ))?;
    Ok(String::from_utf8(buf)?)
}

/// A time: "526 ns", "2.02 µs", "1.50 ms".
pub(super) fn fmt_ns(ns: Option<f64>) -> String {
    match ns {
        None => "-".into(),
        Some(v) => {
            let (d, unit, prec) = ns_scale(v);
            format!("{:.prec$} {unit}", v / d)
        }
    }
}

fn ns_scale(v: f64) -> (f64, &'static str, usize) {
    match v {
        v if v >= 1e6 => (1e6, "ms", 2),
        v if v >= 1e3 => (1e3, "µs", 2),
        _ => (1.0, "ns", 0),
    }
}

/// A rate: "36.80 Mmsg/s".
fn fmt_rate(v: Option<f64>, unit: &str) -> String {
    match v {
        None => "-".into(),
        Some(v) => {
            let (d, prefix, prec) = rate_scale(v);
            format!("{:.prec$} {prefix}{unit}", v / d)
        }
    }
}

fn rate_scale(v: f64) -> (f64, &'static str, usize) {
    match v {
        v if v >= 1e9 => (1e9, "G", 2),
        v if v >= 1e6 => (1e6, "M", 2),
        v if v >= 1e3 => (1e3, "k", 2),
        _ => (1.0, "", 0),
    }
}

/// The min–max column: "510–540 ns", "30.10–37.20 Mmsg/s", in the larger
/// value's unit.
fn fmt_spread(r: &Row) -> String {
    let Some((lo, hi)) = r.spread else {
        return "-".into();
    };
    let (d, unit, prec) = if r.test == "rtt" {
        let (d, u, p) = ns_scale(hi);
        (d, u.to_owned(), p)
    } else {
        let (d, prefix, p) = rate_scale(hi);
        (d, format!("{prefix}msg/s"), p)
    };
    format!("{:.prec$}–{:.prec$} {unit}", lo / d, hi / d)
}

/// The table on stdout.
pub(super) fn print_table(rows: &[Row]) -> Result<()> {
    let line = |c: [&str; 9]| {
        let text = format!(
            "{:<10} {:<12} {:>8} {:>10} {:>10} {:>13} {:>12}  {:<20}  {}",
            c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8]
        );
        out::line(text.trim_end())
    };
    line([
        "test",
        "transport",
        "size",
        "median",
        "p99",
        "msgs/s",
        "bytes/s",
        "min–max",
        "vs baseline",
    ])?;
    for r in rows {
        let vs = match (r.baseline, r.ratio, r.ratio_min, r.ratio_max) {
            (Some(base), Some(v), Some(lo), Some(hi)) => {
                format!("{v:.2}x {base} ({lo:.2}–{hi:.2})")
            }
            _ => String::new(),
        };
        line([
            r.test,
            r.transport,
            &r.size.to_string(),
            &fmt_ns(r.median_ns),
            &fmt_ns(r.p99_ns),
            &fmt_rate(r.msgs_per_s, "msg/s"),
            &fmt_rate(r.bytes_per_s, "B/s"),
            &fmt_spread(r),
            &vs,
        ])?;
    }
    Ok(())
}

/// An axis label for 10^e nanoseconds.
fn tick(e: i32) -> String {
    let (unit, div) = match e {
        ..=2 => ("ns", 0),
        3..=5 => ("µs", 3),
        6..=8 => ("ms", 6),
        _ => ("s", 9),
    };
    format!("{} {unit}", 10u64.pow((e - div).max(0) as u32))
}

/// A grouped bar chart of round-trip medians, log scale, with a whisker from
/// the fastest to the slowest repetition.
pub(super) fn svg(rows: &[Row]) -> String {
    let rtt: Vec<&Row> = rows
        .iter()
        .filter(|r| r.test == "rtt" && r.median_ns.is_some())
        .collect();
    let mut sizes: Vec<usize> = rtt.iter().map(|r| r.size).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let mut transports: Vec<&str> = Vec::new();
    for r in &rtt {
        if !transports.contains(&r.transport) {
            transports.push(r.transport);
        }
    }
    let colors = [
        "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
    ];
    let (w, h, left, bottom, top) = (900.0, 460.0, 70.0, 60.0, 40.0);
    let plot_h = h - bottom - top;
    let values = || {
        rtt.iter()
            .flat_map(|r| [r.median_ns, r.spread.map(|s| s.0), r.spread.map(|s| s.1)])
            .flatten()
    };
    let lo = values().fold(f64::MAX, f64::min).max(1.0).log10().floor();
    let hi = values().fold(1.0, f64::max).log10().ceil().max(lo + 1.0);
    let y = |ns: f64| top + plot_h * (1.0 - (ns.max(1.0).log10() - lo) / (hi - lo));
    let group_w = (w - left - 20.0) / sizes.len().max(1) as f64;
    let bar_w = group_w * 0.8 / transports.len().max(1) as f64;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{left}\" y=\"24\" font-size=\"16\">named-ipc: round-trip time, median and min–max over repetitions (log scale)</text>\n"
    );
    let mut e = lo as i32;
    while f64::from(e) <= hi {
        let yy = y(10f64.powi(e));
        s += &format!(
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#ddd\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n",
            w - 20.0,
            left - 6.0,
            yy + 4.0,
            tick(e)
        );
        e += 1;
    }
    for (gi, size) in sizes.iter().enumerate() {
        let gx = left + gi as f64 * group_w + group_w * 0.1;
        for (ti, t) in transports.iter().enumerate() {
            if let Some(r) = rtt.iter().find(|r| r.size == *size && r.transport == *t) {
                let v = r.median_ns.unwrap_or(1.0);
                let x = gx + ti as f64 * bar_w;
                let yy = y(v);
                s += &format!(
                    "<rect x=\"{x:.1}\" y=\"{yy:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"><title>{t} {size} B: {} ({})</title></rect>\n",
                    bar_w * 0.9,
                    (top + plot_h - yy).max(0.0),
                    colors[ti % colors.len()],
                    fmt_ns(Some(v)),
                    fmt_spread(r)
                );
                if let Some((a, b)) = r.spread {
                    let cx = x + bar_w * 0.45;
                    s += &format!(
                        "<line x1=\"{cx:.1}\" x2=\"{cx:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"black\"/>\n",
                        y(a),
                        y(b)
                    );
                }
            }
        }
        s += &format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{size} B</text>\n",
            gx + group_w * 0.4,
            top + plot_h + 18.0
        );
    }
    for (ti, t) in transports.iter().enumerate() {
        let x = left + ti as f64 * 130.0;
        s += &format!(
            "<rect x=\"{x}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{}\"/><text x=\"{}\" y=\"{}\">{t}</text>\n",
            h - 24.0,
            colors[ti % colors.len()],
            x + 16.0,
            h - 14.0
        );
    }
    s += "</svg>\n";
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtt(transport: &'static str, median: u64) -> Measurement {
        Measurement::rtt(transport, 64, vec![median; 3])
    }

    #[test]
    fn rows_take_medians_and_ratios_within_each_repetition() {
        // Repetition 2 is slow for both (placement moved): the ratio stays 2.
        let reps = vec![
            vec![rtt("shm-spin", 200), rtt("raw-spin", 100)],
            vec![rtt("raw-spin", 500), rtt("shm-spin", 1000)],
            vec![rtt("shm-spin", 300), rtt("raw-spin", 100)],
        ];
        let cells = [("rtt", "shm-spin", 64), ("rtt", "raw-spin", 64)];
        let rows = summarise(&cells, &reps);
        assert_eq!(rows.len(), 2);
        let r = &rows[0];
        assert_eq!((r.transport, r.repeat), ("shm-spin", 3));
        assert_eq!(r.median_ns, Some(300.0));
        assert_eq!(r.spread, Some((200.0, 1000.0)));
        assert_eq!(
            (r.ratio, r.ratio_min, r.ratio_max),
            (Some(2.0), Some(2.0), Some(3.0))
        );
        assert_eq!(r.baseline, Some("raw-spin"));
        assert_eq!(rows[1].ratio, None);
        assert_eq!(rows[1].baseline, None);
    }

    #[test]
    fn a_missing_baseline_gives_no_ratio() {
        let reps = vec![vec![rtt("pipe", 100)], vec![rtt("pipe", 300)]];
        let rows = summarise(&[("rtt", "pipe", 64), ("rtt", "raw-uds", 64)], &reps);
        assert_eq!(rows.len(), 1, "raw-uds was never measured");
        assert_eq!(rows[0].median_ns, Some(200.0));
        assert_eq!(rows[0].ratio, None);
    }

    #[test]
    fn json_keeps_the_documented_text_form() {
        let reps = vec![vec![
            Measurement::throughput("shm-spin", 64, 3, Duration::from_secs(2)),
            Measurement::throughput("raw-ring", 64, 2, Duration::from_secs(1)),
        ]];
        let cells = [
            ("throughput", "shm-spin", 64),
            ("throughput", "raw-ring", 64),
        ];
        let rows = summarise(&cells, &reps);
        assert_eq!(
            json(&rows[0]).unwrap(),
            "{\"test\": \"throughput\", \"transport\": \"shm-spin\", \"size\": 64, \
             \"median_ns\": null, \"p99_ns\": null, \"msgs_per_s\": 1.5, \"bytes_per_s\": 96.0, \
             \"ratio\": 0.75, \"ratio_min\": 0.75, \"ratio_max\": 0.75, \"repeat\": 1}"
        );
    }
}
