//! `nipc bench`: two real processes, our transports beside raw baselines
//! measured in the same run.
//!
//! This process measures; `nipc __bench-peer [--pin CPU] ROLE TARGET SIZE
//! [EXTRA]` is the other side (echo or sink, `peer.rs`). Round trips are timed
//! one by one (median and 99th percentile); throughput is one-way, timed from
//! the first send to the receiver's acknowledgement of the last message.
//!
//! Noisy machines: on a 2-vCPU VM the host moves the vCPUs during a run and
//! cross-core figures change several-fold. So the run is `--repeat N`
//! repetitions, each measuring every transport and size once (round-robin,
//! the order reversed every other repetition so slow drift favours no one);
//! each row reports the median and min–max over repetitions, and each ratio is
//! taken within one repetition (a row against its baseline measured moments
//! apart) before the median of the ratios is taken. A 0-byte `raw-spin` round
//! trip at the start and at the end (the placement probe) shows which
//! placement the run saw. Both processes are pinned to CPUs (`--pin`).
//!
//! | row | what it is |
//! |---|---|
//! | `shm-spin` | `ShmStream` (split into its lock-free halves), both ends spinning (never sleeping) while they wait |
//! | `shm-blocking` | the same with no spinning: every wait sleeps in the kernel |
//! | `shm-async` | `named_ipc::tokio::ShmStream` (split), both ends spinning as `shm-spin` does, on `current_thread` runtimes; compared with `shm-spin` |
//! | `pipe` | `PipeStream`, message mode |
//! | `pipe-async` | `named_ipc::tokio::PipeStream`, message mode, on `current_thread` runtimes; compared with `pipe` |
//! | `raw-spin` | payload copied into shared memory, one atomic flipped, the peer spinning on it: the cache-line limit |
//! | `raw-futex` | the same with futex wait/wake instead of spinning (Windows: an event pair): the kernel wake-up floor. The minimal correct protocol: a waiter announces itself in a flag and the other side calls `futex_wake` only then. (An unconditional wake is no floor: its ~1 µs syscall lets the reply arrive before the waiter sleeps, so small messages never sleep at all.) |
//! | `raw-uds` | a fixed-size ping-pong on a plain Unix socket (Unix only) |
//! | `shm-spin`, `shm-blocking`, `shm-async` (throughput) | one way, the receiver copying each message out |
//! | `pipe`, `pipe-async` (throughput) | one way through the message-mode pipe, the receiver copying each message out |
//! | `raw-ring` | a bare SPSC ring of fixed-size slots in shared memory, no headers, no checks |
//! | `memcpy` | one copy of the message in one process |
//!
//! Files: `transports.rs` (ours), `asyncs.rs` (ours, async, both sides),
//! `raw.rs` (the baselines), `peer.rs` (the second process), `report.rs`
//! (rows, table, JSON, SVG).

mod asyncs;
mod peer;
mod raw;
mod report;
mod transports;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use named_ipc::bench_support;

pub use self::peer::peer;
use self::raw::RawWait;
use self::report::{fmt_ns, Measurement};
use self::transports::Way;
use crate::cli::{BenchArgs, Suite};
use crate::cmd::pipe::seconds;
use crate::out;
use crate::usage;

const RTT_SHM: [&str; 5] = [
    "shm-spin",
    "shm-async",
    "raw-spin",
    "shm-blocking",
    "raw-futex",
];
const RTT_PIPE: [&str; 4] = ["pipe", "pipe-async", "pipe-timeouts", "raw-uds"];
const TPUT_PIPE: [&str; 2] = ["pipe", "pipe-async"];
const TPUT_SHM: [&str; 7] = [
    "shm-spin",
    "shm-async",
    "shm-spin-timeouts",
    "shm-zero-copy",
    "shm-blocking",
    "raw-ring",
    "memcpy",
];

/// Spin budget of `shm-spin`: long enough never to sleep.
const SPIN: Duration = Duration::from_secs(3600);

/// Longest the placement probe runs.
const PROBE: Duration = Duration::from_millis(250);

/// What every measurement needs: its time and where the peer runs.
#[derive(Debug, Clone, Copy)]
struct Ctx {
    /// Time per measurement (`--duration`).
    budget: Duration,
    /// The CPU the peer process pins itself to.
    peer_cpu: Option<usize>,
}

/// The other process; killed if still running when dropped.
struct PeerProc(Child);

impl PeerProc {
    fn spawn(
        ctx: &Ctx,
        role: &str,
        target: &str,
        size: usize,
        extra: Option<&str>,
    ) -> Result<PeerProc> {
        let exe = std::env::current_exe().context("cannot find the nipc executable")?;
        let mut c = Command::new(exe);
        c.arg("__bench-peer");
        if let Some(cpu) = ctx.peer_cpu {
            c.args(["--pin", &cpu.to_string()]);
        }
        c.args([role, target, &size.to_string()]);
        if let Some(x) = extra {
            c.arg(x);
        }
        let child = c
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .context("cannot start the benchmark's second process")?;
        Ok(PeerProc(child))
    }

    fn finish(mut self) -> Result<()> {
        let st = self.0.wait()?;
        if !st.success() {
            bail!("the benchmark's second process failed ({st})");
        }
        Ok(())
    }
}

impl Drop for PeerProc {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "nipc-bench-{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs `one` (one timed round trip) for about `budget`, after a warm-up.
fn sample(budget: Duration, mut one: impl FnMut() -> Result<()>) -> Result<Vec<u64>> {
    let warm = Instant::now();
    while warm.elapsed() < budget / 10 {
        one()?;
    }
    let mut ns = Vec::with_capacity(100_000);
    let start = Instant::now();
    while (start.elapsed() < budget || ns.len() < 50) && ns.len() < 2_000_000 {
        let t = Instant::now();
        one()?;
        ns.push(t.elapsed().as_nanos() as u64);
    }
    Ok(ns)
}

/// Where the two processes run.
#[derive(Debug, PartialEq, Eq)]
enum Placement {
    /// This process on `me`, the peer on `peer`.
    Pinned { me: usize, peer: usize },
    /// Left to the scheduler, and why.
    Free(String),
}

impl Placement {
    /// From `--pin` (`A,B` or `none`; default: the first two CPUs allowed)
    /// and the CPUs this process may use (`None`: the OS cannot pin).
    fn choose(pin: Option<&str>, allowed: Option<&[usize]>) -> Result<Placement> {
        let spec = match pin {
            Some("none") => return Ok(Placement::Free("--pin none".into())),
            None => {
                return Ok(match allowed {
                    None => Placement::Free("this OS has no CPU affinity API".into()),
                    Some([me, peer, ..]) => Placement::Pinned {
                        me: *me,
                        peer: *peer,
                    },
                    Some(c) => Placement::Free(format!("only {} CPU available", c.len())),
                })
            }
            Some(spec) => spec,
        };
        let parsed: Result<Vec<usize>, _> = spec.split(',').map(|c| c.trim().parse()).collect();
        let cpus = match parsed {
            Ok(v) if v.len() == 2 => v,
            _ => usage!(
                "--pin wants two CPU numbers A,B (this process, then the second process) or none, not {spec:?}"
            ),
        };
        let Some(allowed) = allowed else {
            let n = std::thread::available_parallelism().map_or(1, |n| n.get());
            if let Some(c) = cpus.iter().find(|&&c| c >= n) {
                usage!("--pin {spec}: CPU {c} does not exist (CPUs 0 to {})", n - 1);
            }
            eprintln!("nipc: --pin has no effect: this OS has no CPU affinity API");
            return Ok(Placement::Free("this OS has no CPU affinity API".into()));
        };
        if let Some(c) = cpus.iter().find(|c| !allowed.contains(c)) {
            let list: Vec<String> = allowed.iter().map(|c| c.to_string()).collect();
            usage!(
                "--pin {spec}: CPU {c} is not available to this process (available: {})",
                list.join(",")
            );
        }
        Ok(Placement::Pinned {
            me: cpus[0],
            peer: cpus[1],
        })
    }

    fn describe(&self) -> String {
        match self {
            Placement::Pinned { me, peer } => {
                format!("pinned: this process on CPU {me}, the second process on CPU {peer}")
            }
            Placement::Free(why) => format!("pinned: no ({why})"),
        }
    }
}

/// The placement probe: the median 0-byte `raw-spin` round trip, which
/// changes several-fold with where the host put the two vCPUs.
fn probe(ctx: &Ctx) -> Result<f64> {
    let probe = Ctx {
        budget: ctx.budget.min(PROBE),
        ..*ctx
    };
    let ns = raw::rtt_raw(&probe, RawWait::Spin, 0).context("placement probe")?;
    Measurement::rtt("raw-spin", 0, ns)
        .median_ns()
        .context("the placement probe measured nothing")
}

/// How the end probe compares with the start one: "1.05× slower than at the
/// start", with a warning past 1.5× either way.
fn drift(start: f64, end: f64) -> String {
    let (x, way) = if end >= start {
        (end / start.max(1.0), "slower")
    } else {
        (start / end.max(1.0), "faster")
    };
    if x < 1.005 {
        return "the same as at the start".into();
    }
    let note = if x > 1.5 {
        ": the placement changed during the run"
    } else {
        ""
    };
    format!("{x:.2}× {way} than at the start{note}")
}

/// One measurement; `None` for a row this OS does not have.
fn measure(
    ctx: &Ctx,
    test: &'static str,
    transport: &'static str,
    size: usize,
) -> Result<Option<Measurement>> {
    let rtt = |ns| Some(Measurement::rtt(transport, size, ns));
    Ok(match (test, transport) {
        ("rtt", "shm-spin") => rtt(transports::rtt_channel(ctx, SPIN, size)?),
        ("rtt", "shm-blocking") => rtt(transports::rtt_channel(ctx, Duration::ZERO, size)?),
        ("rtt", "raw-spin") => rtt(raw::rtt_raw(ctx, RawWait::Spin, size)?),
        ("rtt", "raw-futex") => rtt(raw::rtt_raw(ctx, RawWait::Kernel, size)?),
        ("rtt", "pipe") => rtt(transports::rtt_pipe(ctx, size, false)?),
        ("rtt", "pipe-timeouts") => rtt(transports::rtt_pipe(ctx, size, true)?),
        ("rtt", "pipe-async") => rtt(asyncs::rtt_pipe(ctx, size)?),
        ("rtt", "shm-async") => rtt(asyncs::rtt_channel(ctx, SPIN, size)?),
        ("throughput", "pipe") => Some(transports::tput_pipe(ctx, size)?),
        ("throughput", "pipe-async") => Some(asyncs::tput_pipe(ctx, size)?),
        ("throughput", "shm-async") => Some(asyncs::tput_channel(ctx, SPIN, size)?),
        ("rtt", "raw-uds") => raw::rtt_uds(ctx, size)?.and_then(rtt),
        ("throughput", "shm-spin") => Some(transports::tput_channel(
            ctx,
            transport,
            SPIN,
            size,
            Way::Copy,
        )?),
        ("throughput", "shm-spin-timeouts") => Some(transports::tput_channel(
            ctx,
            transport,
            SPIN,
            size,
            Way::CopyTimeouts,
        )?),
        ("throughput", "shm-zero-copy") => Some(transports::tput_channel(
            ctx,
            transport,
            SPIN,
            size,
            Way::ZeroCopy,
        )?),
        ("throughput", "shm-blocking") => Some(transports::tput_channel(
            ctx,
            transport,
            Duration::ZERO,
            size,
            Way::Copy,
        )?),
        ("throughput", "raw-ring") => Some(raw::tput_raw_ring(ctx, size)?),
        ("throughput", "memcpy") => Some(raw::tput_memcpy(ctx, size)),
        _ => None,
    })
}

/// Runs `nipc bench`.
pub fn run(a: BenchArgs) -> Result<()> {
    let budget = seconds(a.duration, "--duration")?;
    if budget.is_zero() {
        usage!("--duration must be more than 0 seconds");
    }
    if a.sizes.is_empty() || a.sizes.iter().any(|&s| s > 16 << 20) {
        usage!("--sizes must list sizes from 0 to 16777216 bytes");
    }
    let allowed =
        bench_support::allowed_cpus().context("cannot read which CPUs this process may use")?;
    let placement = Placement::choose(a.pin.as_deref(), allowed.as_deref())?;
    let mut ctx = Ctx {
        budget,
        peer_cpu: None,
    };
    if let Placement::Pinned { me, peer } = placement {
        bench_support::set_affinity(&[me])
            .with_context(|| format!("cannot pin this process to CPU {me}"))?;
        ctx.peer_cpu = Some(peer);
    }
    let json = a.json;
    // The table's notes go with the table; with --json, stdout is rows only.
    let say = |text: &str| -> Result<()> {
        if json {
            eprintln!("nipc: {text}");
            Ok(())
        } else {
            out::line(text)
        }
    };
    let repeat = a.repeat as usize;
    say(&format!(
        "repetitions: {repeat} (every transport once per repetition, round-robin, the order \
         reversed every other repetition), {:.2} s per measurement; rows: median and min–max \
         over repetitions, ratios taken within each repetition",
        budget.as_secs_f64()
    ))?;
    say(&placement.describe())?;
    let start = probe(&ctx)?;
    say(&format!(
        "placement probe at start: 0 B raw-spin round trip {}",
        fmt_ns(Some(start))
    ))?;

    let mut plan: Vec<(&'static str, &'static str)> = Vec::new();
    if a.suite != Suite::Pipe {
        plan.extend(RTT_SHM.iter().map(|t| ("rtt", *t)));
        plan.extend(TPUT_SHM.iter().map(|t| ("throughput", *t)));
    }
    if a.suite != Suite::Shm {
        plan.extend(RTT_PIPE.iter().map(|t| ("rtt", *t)));
        plan.extend(TPUT_PIPE.iter().map(|t| ("throughput", *t)));
    }
    let cells: Vec<Cell> = a
        .sizes
        .iter()
        .flat_map(|&size| plan.iter().map(move |&(test, t)| (test, t, size)))
        .collect();
    let cells = only(cells, &a.only)?;
    let bar = ProgressBar::new((repeat * cells.len()) as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut reps = Vec::with_capacity(repeat);
    for rep in 0..repeat {
        let mut got = Vec::with_capacity(cells.len());
        let order: Box<dyn Iterator<Item = _>> = if rep % 2 == 0 {
            Box::new(cells.iter())
        } else {
            Box::new(cells.iter().rev())
        };
        for &(test, transport, size) in order {
            bar.set_message(format!(
                "repetition {}/{repeat}: {test} {transport} {size} B",
                rep + 1
            ));
            got.extend(measure(&ctx, test, transport, size)?);
            bar.inc(1);
        }
        reps.push(got);
    }
    bar.finish_and_clear();
    let end = probe(&ctx)?;

    let rows = report::summarise(&cells, &reps);
    if json {
        for r in &rows {
            out::line(&report::json(r)?)?;
        }
    } else {
        report::print_table(&rows)?;
    }
    say(&format!(
        "placement probe at end: 0 B raw-spin round trip {}, {}",
        fmt_ns(Some(end)),
        drift(start, end)
    ))?;
    if let Some(path) = &a.plot {
        std::fs::write(path, report::svg(&rows))
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("nipc: wrote {}", path.display());
    }
    Ok(())
}

/// The cells `--only` keeps: those of the named transports and the
/// baselines their ratios need, in the plan's order. Empty: all of them.
fn only(cells: Vec<Cell>, names: &[String]) -> Result<Vec<Cell>> {
    if names.is_empty() {
        return Ok(cells);
    }
    for n in names {
        if !cells.iter().any(|c| c.1 == n) {
            let mut known: Vec<&str> = cells.iter().map(|c| c.1).collect();
            known.sort_unstable();
            known.dedup();
            usage!(
                "--only: no row {n:?} in this suite; its rows are {}",
                known.join(", ")
            );
        }
    }
    let chosen = |c: &Cell| names.iter().any(|n| n == c.1);
    let needed: Vec<Cell> = cells
        .iter()
        .filter(|c| chosen(c))
        .filter_map(|&(test, t, size)| report::baseline(test, t, size).map(|b| (test, b, size)))
        .collect();
    Ok(cells
        .into_iter()
        .filter(|c| chosen(c) || needed.contains(c))
        .collect())
}

/// One measurement of a repetition: test, transport, size.
type Cell = (&'static str, &'static str, usize);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_keeps_the_named_rows_and_their_baselines() {
        let cells: Vec<Cell> = [64, 1 << 20]
            .into_iter()
            .flat_map(|size| {
                [
                    ("rtt", "shm-spin", size),
                    ("rtt", "raw-spin", size),
                    ("rtt", "raw-futex", size),
                    ("throughput", "shm-zero-copy", size),
                    ("throughput", "shm-spin", size),
                    ("throughput", "raw-ring", size),
                    ("throughput", "memcpy", size),
                ]
            })
            .collect();
        let kept = only(cells.clone(), &["shm-zero-copy".into()]).unwrap();
        assert_eq!(
            kept,
            vec![
                ("throughput", "shm-zero-copy", 64),
                ("throughput", "shm-spin", 64),
                ("throughput", "shm-zero-copy", 1 << 20),
                ("throughput", "memcpy", 1 << 20),
            ]
        );
        assert_eq!(only(cells.clone(), &[]).unwrap(), cells);
        let e = only(cells, &["shm-fast".into()]).unwrap_err();
        let e = e.downcast_ref::<crate::UsageError>().unwrap().to_string();
        assert!(
            e.contains("no row \"shm-fast\"") && e.contains("raw-ring"),
            "{e}"
        );
    }

    #[test]
    fn only_takes_the_async_rows_with_the_sync_rows_they_are_compared_with() {
        let cells: Vec<Cell> = [
            ("rtt", "shm-spin", 64),
            ("rtt", "shm-async", 64),
            ("rtt", "raw-spin", 64),
            ("throughput", "shm-spin", 1 << 20),
            ("throughput", "shm-async", 1 << 20),
            ("throughput", "memcpy", 1 << 20),
            ("rtt", "pipe", 64),
            ("rtt", "pipe-async", 64),
            ("rtt", "raw-uds", 64),
            ("throughput", "pipe", 64),
            ("throughput", "pipe-async", 64),
        ]
        .into();
        let kept = only(cells, &["pipe-async".into(), "shm-async".into()]).unwrap();
        assert_eq!(
            kept,
            vec![
                ("rtt", "shm-spin", 64),
                ("rtt", "shm-async", 64),
                ("throughput", "shm-spin", 1 << 20),
                ("throughput", "shm-async", 1 << 20),
                ("rtt", "pipe", 64),
                ("rtt", "pipe-async", 64),
                ("throughput", "pipe", 64),
                ("throughput", "pipe-async", 64),
            ]
        );
    }

    #[test]
    fn every_suite_plans_the_async_rows() {
        assert!(RTT_SHM.contains(&"shm-async") && TPUT_SHM.contains(&"shm-async"));
        assert!(RTT_PIPE.contains(&"pipe-async") && TPUT_PIPE.contains(&"pipe-async"));
    }

    fn usage_text(r: Result<Placement>) -> String {
        let e = r.unwrap_err();
        e.downcast_ref::<crate::UsageError>()
            .unwrap_or_else(|| panic!("not a usage error: {e:#}"))
            .to_string()
    }

    #[test]
    fn pin_defaults_to_the_first_two_allowed_cpus() {
        let two = Placement::choose(None, Some(&[2, 5, 7])).unwrap();
        assert_eq!(two, Placement::Pinned { me: 2, peer: 5 });
        assert!(matches!(
            Placement::choose(None, Some(&[3])).unwrap(),
            Placement::Free(why) if why.contains("1 CPU")
        ));
        assert!(matches!(
            Placement::choose(None, None).unwrap(),
            Placement::Free(_)
        ));
        assert!(matches!(
            Placement::choose(Some("none"), Some(&[0, 1])).unwrap(),
            Placement::Free(_)
        ));
    }

    #[test]
    fn pin_takes_two_allowed_cpus() {
        let p = Placement::choose(Some("1,1"), Some(&[0, 1])).unwrap();
        assert_eq!(p, Placement::Pinned { me: 1, peer: 1 });
        for bad in ["1", "0,1,0", "a,b", "", "0,-1"] {
            let e = usage_text(Placement::choose(Some(bad), Some(&[0, 1])));
            assert!(e.contains("--pin"), "{bad}: {e}");
        }
        let e = usage_text(Placement::choose(Some("0,4"), Some(&[0, 1])));
        assert!(e.contains("CPU 4") && e.contains("0,1"), "{e}");
    }

    #[test]
    fn drift_says_which_way_and_warns_past_one_and_a_half() {
        assert_eq!(drift(400.0, 420.0), "1.05× slower than at the start");
        assert_eq!(drift(400.0, 400.0), "the same as at the start");
        assert_eq!(
            drift(2000.0, 400.0),
            "5.00× faster than at the start: the placement changed during the run"
        );
    }

    #[test]
    fn set_affinity_moves_the_calling_thread() {
        // A thread of its own, so the test process is not pinned.
        std::thread::spawn(|| {
            let Some(before) = bench_support::allowed_cpus().unwrap() else {
                assert!(
                    !bench_support::set_affinity(&[0]).unwrap(),
                    "no API, no pinning"
                );
                return;
            };
            let last = *before.last().unwrap();
            assert!(bench_support::set_affinity(&[last]).unwrap());
            assert_eq!(bench_support::allowed_cpus().unwrap(), Some(vec![last]));
            // Windows pins the whole process: give the other tests their CPUs back.
            assert!(bench_support::set_affinity(&before).unwrap());
            assert_eq!(bench_support::allowed_cpus().unwrap(), Some(before));
        })
        .join()
        .unwrap();
    }
}
