//! Soak: many clients, many messages, one server process. Nothing may be lost
//! or reordered (the clients check every echo), and the server's resident
//! memory and open descriptors/handles must stay flat while traffic flows and
//! return to where they started once the clients leave. The figures are
//! printed.
//!
//! Long: run by `ci/soak.sh` (release build, one test at a time). For a quick
//! try, `NIPC_SOAK_DIVIDE=N` divides every message count by N.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::*;
use tests_integration::{proc_stats, ProcStats};

/// How long one soak phase may take before the test fails (never a
/// performance assertion: a hang detector).
const PHASE: Duration = Duration::from_secs(30 * 60);

fn report(line: &str) {
    let mut e = std::io::stderr().lock();
    let _ = writeln!(e, "{line}");
}

fn divide(n: u64) -> u64 {
    let d: u64 = std::env::var("NIPC_SOAK_DIVIDE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    (n / d.max(1)).max(1)
}

/// The next line of `p` starting with `prefix`, within [`PHASE`].
fn await_line(p: &mut Peer, prefix: &str) -> String {
    let l = p
        .try_line_within(PHASE)
        .unwrap_or_else(|| panic!("no {prefix:?} line within {PHASE:?}"));
    assert!(l.starts_with(prefix), "expected {prefix:?}, got {l:?}");
    l
}

fn stats(pid: u32) -> Option<ProcStats> {
    proc_stats(pid)
}

/// Runs `procs` client processes of `conns` connections each, every
/// connection echoing `msgs` numbered messages through one `kind` server.
fn soak(kind: &str, procs: usize, conns: usize, msgs: u64, capacity: usize) {
    let name = unique(&format!("soak-{kind}"));
    let mut server = Peer::hostile(&["soak-echo", kind, &name, &capacity.to_string()]);
    server.expect("READY");
    let spid = server.pid();
    let idle = stats(spid);
    let t = Instant::now();
    let mut clients: Vec<Peer> = (0..procs)
        .map(|_| {
            Peer::hostile(&[
                "soak-clients",
                kind,
                &name,
                &conns.to_string(),
                &msgs.to_string(),
            ])
        })
        .collect();
    for c in &mut clients {
        await_line(c, "CONNECTED");
    }
    let connected = stats(spid);
    let start = Instant::now();
    for c in &mut clients {
        c.send_line("go");
    }
    for c in &mut clients {
        await_line(c, "P10");
    }
    let tenth = stats(spid);
    let client_tenth: Vec<Option<ProcStats>> = clients.iter().map(|c| stats(c.pid())).collect();
    let mut total = 0u64;
    for c in &mut clients {
        let done = await_line(c, "DONE");
        let n: u64 = done[5..].parse().unwrap();
        assert_eq!(n, conns as u64 * msgs, "{done}");
        total += n;
    }
    let elapsed = start.elapsed();
    let end = stats(spid);
    let client_end: Vec<Option<ProcStats>> = clients.iter().map(|c| stats(c.pid())).collect();
    for c in &mut clients {
        c.wait_ok();
    }
    // The server closes each connection when its echo thread sees the end:
    // wait (against a deadline) for its descriptors to come back down.
    let deadline = Instant::now() + STEP;
    let left = loop {
        let s = stats(spid);
        match (s, idle) {
            (Some(s), Some(i)) if s.handles > i.handles && Instant::now() < deadline => {}
            _ => break s,
        }
        // Polling another process's descriptor count against a deadline;
        // nothing is synchronised by this pause.
        std::thread::sleep(Duration::from_millis(20));
    };
    server.wait_ok();
    let per_s = total as f64 / elapsed.as_secs_f64();
    report(&format!(
        "soak {kind}: {procs}x{conns} connections x {msgs} messages = {total} echoes in {elapsed:?} \
         ({per_s:.0}/s; {:?} in all)",
        t.elapsed()
    ));
    report(&format!("  server idle:            {idle:?}"));
    report(&format!("  server all connected:   {connected:?}"));
    report(&format!("  server after 10%:       {tenth:?}"));
    report(&format!("  server after 100%:      {end:?}"));
    report(&format!("  server after they left: {left:?}"));
    report(&format!("  clients after 10%:      {client_tenth:?}"));
    report(&format!("  clients after 100%:     {client_end:?}"));
    if let (Some(idle), Some(tenth), Some(end), Some(left)) = (idle, tenth, end, left) {
        assert_eq!(
            end.handles, tenth.handles,
            "server descriptors/handles changed while the same clients talked"
        );
        assert_eq!(
            left.handles, idle.handles,
            "server descriptors/handles not released after the clients left"
        );
        let slack = (tenth.rss_kib / 4).max(16 * 1024);
        assert!(
            end.rss_kib <= tenth.rss_kib + slack,
            "server memory grew from {} KiB at 10% to {} KiB at 100%",
            tenth.rss_kib,
            end.rss_kib
        );
    }
    for (a, b) in client_tenth.iter().zip(&client_end) {
        if let (Some(a), Some(b)) = (a, b) {
            assert_eq!(
                a.handles, b.handles,
                "client descriptors changed: {a} -> {b}"
            );
            let slack = (a.rss_kib / 4).max(16 * 1024);
            assert!(
                b.rss_kib <= a.rss_kib + slack,
                "client memory grew: {a} -> {b}"
            );
        }
    }
}

/// 1,000 clients (four processes of 250 connections) × 10,000 messages each
/// on one pipe server.
#[test]
#[ignore = "soak: long; run by ci/soak.sh"]
fn soak_pipe_1000_clients_x_10000_messages() {
    soak("pipe", 4, 250, divide(10_000), 0);
}

/// 64 channel connections × 1,000,000 messages each on one server.
#[test]
#[ignore = "soak: long; run by ci/soak.sh"]
fn soak_channel_64_connections_x_1000000_messages() {
    soak("chan", 1, 64, divide(1_000_000), 16384);
}
