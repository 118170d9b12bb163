//! The `nipc` command line, run as a user would: flags, output, exit codes.

#[path = "../../../tests-integration/tests/common/mod.rs"]
mod common;

use std::io::Write;

use common::*;
use named_ipc::pipe::{ConnectOptions, PipeMode};

fn nipc(args: &[&str]) -> Peer {
    Peer::start(&nipc_exe(), args)
}

/// Runs nipc to completion: (exit code, stdout lines, stderr).
fn run(args: &[&str]) -> (i32, Vec<String>, String) {
    let mut p = nipc(args);
    let mut lines = Vec::new();
    while let Some(l) = p.try_line() {
        lines.push(l);
    }
    let st = p.wait();
    let err = p.stderr_text();
    (st.code().unwrap_or(-1), lines, err)
}

/// Starts `nipc pipe serve` and waits until it listens.
fn serve(name: &str, extra: &[&str]) -> Peer {
    let mut args = vec!["pipe", "serve", name];
    args.extend_from_slice(extra);
    let mut p = nipc(&args);
    p.expect_stderr("listening on pipe");
    p
}

#[test]
fn path_prints_the_os_level_name() {
    let (code, out, _) = run(&["pipe", "path", "some-name"]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        vec![named_ipc::name::pipe_os_name("some-name").unwrap()]
    );
    let (code, _, err) = run(&["pipe", "path", "a/b"]);
    assert_eq!(code, 1);
    assert!(err.contains("\"a/b\""), "{err}");
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["pipe", "serve"][..],
        &["pipe", "serve", "x", "--mode", "bogus"],
        &["pipe", "serve", "x", "--max-instances", "0"],
        &["pipe", "send", "x", "m", "--timeout", "-1"],
        &["pipe", "nonsense"],
        &["pipe", "send", "x"],
    ] {
        let (code, _, err) = run(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(!err.is_empty());
    }
}

#[test]
fn serve_prints_what_send_sends() {
    let name = unique("cli-send");
    let mut srv = serve(&name, &[]);
    let (code, _, err) = run(&["pipe", "send", &name, "first", "second message", ""]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(srv.line(), "first");
    assert_eq!(srv.line(), "second message");
    assert_eq!(srv.line(), "");
}

#[test]
fn serve_sends_stdin_lines_to_connected_clients() {
    let name = unique("cli-bcast");
    let mut srv = serve(&name, &["--hex"]);
    let mut rcv = nipc(&["pipe", "recv", &name, "--count", "2"]);
    srv.expect_stderr("connected");
    writeln!(srv.stdin(), "hello\r\nworld").unwrap();
    srv.stdin().flush().unwrap();
    assert_eq!(rcv.line(), "hello");
    assert_eq!(rcv.line(), "world");
    rcv.wait_ok();
}

#[test]
fn connect_is_netcat_for_messages() {
    let name = unique("cli-connect");
    let mut srv = serve(&name, &["--echo"]);
    let mut c = nipc(&["pipe", "connect", &name]);
    writeln!(c.stdin(), "ping").unwrap();
    writeln!(c.stdin(), "pong").unwrap();
    c.stdin().flush().unwrap();
    assert_eq!(c.line(), "ping");
    assert_eq!(c.line(), "pong");
    assert_eq!(srv.line(), "ping");
    assert_eq!(srv.line(), "pong");
    // The peer closing ends `connect` with status 0.
    srv.kill();
    c.wait_ok();
}

#[test]
fn recv_prints_hex_when_asked() {
    let name = unique("cli-hex");
    let mut srv = serve(&name, &[]);
    let mut rcv = nipc(&["pipe", "recv", &name, "--count", "1", "--hex"]);
    srv.expect_stderr("connected");
    writeln!(srv.stdin(), "AZ").unwrap();
    srv.stdin().flush().unwrap();
    assert_eq!(rcv.line(), "415a");
    rcv.wait_ok();
}

#[test]
fn byte_mode_passes_bytes_through() {
    let name = unique("cli-byte");
    let _srv = serve(&name, &["--mode", "byte", "--echo"]);
    let mut c = nipc(&["pipe", "connect", &name, "--mode", "byte"]);
    c.stdin().write_all(b"raw line\n").unwrap();
    c.stdin().flush().unwrap();
    assert_eq!(c.line(), "raw line");
}

#[test]
fn framed_serve_reports_a_bad_frame_and_keeps_serving() {
    let name = unique("cli-badframe");
    let mut srv = serve(&name, &["--mode", "framed", "--max-message", "1000"]);
    let bad = ConnectOptions::new()
        .mode(PipeMode::Byte)
        .timeout(STEP)
        .connect(&name)
        .unwrap();
    (&bad).write_all(&5000u32.to_le_bytes()).unwrap();
    let line = srv.expect_stderr("exceeds the limit");
    assert!(
        line.contains("5000 bytes") && line.contains(&name),
        "{line}"
    );
    let (code, _, err) = run(&["pipe", "send", "--mode", "framed", &name, "fine"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(srv.line(), "fine");
}

#[test]
fn once_exits_after_the_first_client_leaves() {
    let name = unique("cli-once");
    let mut srv = serve(&name, &["--once"]);
    let (code, _, _) = run(&["pipe", "send", &name, "bye"]);
    assert_eq!(code, 0);
    assert_eq!(srv.line(), "bye");
    srv.wait_ok();
}

#[test]
#[cfg_attr(wine, ignore = "Wine does not enforce FILE_FLAG_FIRST_PIPE_INSTANCE")]
fn a_second_server_fails_with_status_1_naming_the_pipe() {
    let name = unique("cli-twice");
    let _srv = serve(&name, &[]);
    let (code, _, err) = run(&["pipe", "serve", &name]);
    assert_eq!(code, 1);
    assert!(
        err.contains("already in use") && err.contains(&name),
        "{err}"
    );
}

#[test]
fn clients_refuse_a_server_of_another_user_unless_told() {
    let name = unique("cli-who");
    let mut srv = serve(&name, &[]);
    // SYSTEM on Windows, uid 12345 on Unix: not who runs these tests.
    let other = if cfg!(windows) { "S-1-5-18" } else { "12345" };
    let (code, _, err) = run(&["pipe", "send", &name, "x", "--server-user", other]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&name) && err.contains("--server-user any"),
        "{err}"
    );
    for who in ["me", "any"] {
        let (code, _, err) = run(&["pipe", "send", &name, who, "--server-user", who]);
        assert_eq!(code, 0, "{who}: {err}");
        assert_eq!(srv.line(), who);
    }
    let (code, _, err) = run(&["pipe", "send", &name, "x", "--server-user", "no one"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn connecting_to_a_missing_pipe_fails_with_status_1() {
    let name = unique("cli-missing");
    let (code, _, err) = run(&["pipe", "send", &name, "x", "--timeout", "0"]);
    assert_eq!(code, 1);
    assert!(err.contains(&name) && err.contains("no server"), "{err}");
}

#[test]
#[cfg_attr(
    wine,
    ignore = r"Wine cannot enumerate \\.\pipe\ (FindFirstFileW fails with ERROR_BAD_DEV_TYPE)"
)]
fn ls_lists_a_live_pipe() {
    let name = unique("cli-ls");
    let _srv = serve(&name, &[]);
    let (code, out, err) = run(&["pipe", "ls"]);
    assert_eq!(code, 0, "{err}");
    let row = out
        .iter()
        .find(|l| l.split('\t').next() == Some(name.as_str()))
        .unwrap_or_else(|| panic!("{name} not in {out:?}"));
    let cols: Vec<&str> = row.split('\t').collect();
    assert_eq!(cols.len(), 4, "{row}");
    assert_eq!(cols[1], "live", "{row}");
    assert_eq!(cols[3], named_ipc::name::pipe_os_name(&name).unwrap());
}

#[cfg(unix)]
#[test]
fn sigterm_stops_serve_cleanly_and_removes_the_socket() {
    let name = unique("cli-term");
    let mut srv = serve(&name, &[]);
    let path = named_ipc::name::pipe_os_name(&name).unwrap();
    assert!(std::path::Path::new(&path).exists());
    // SAFETY: sending SIGTERM to our own child.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(srv.pid() as libc::pid_t, libc::SIGTERM);
    }
    srv.wait_ok();
    assert!(!std::path::Path::new(&path).exists(), "{path} left behind");
}

#[test]
fn demo_runs_all_three_scenarios() {
    let (code, out, err) = run(&["demo"]);
    assert_eq!(code, 0, "{err}");
    let text = out.join("\n");
    for needle in [
        "received message \"hello\"",
        "received reply \"ack:process-B\"",
        "size:9",
        "payload: process-B",
        "what I read from share memory is: Shine",
        "process B has read it",
        "demo complete.",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}

/// `nipc shm write` that keeps the segment for the test: on Unix it persists
/// anyway; Windows needs a holder, so it holds (ended by the returned guard).
fn shm_write(name: &str, extra: &[&str]) -> Option<Peer> {
    let mut args = vec!["shm", "write", name];
    args.extend_from_slice(extra);
    if cfg!(windows) {
        args.extend_from_slice(&["--hold", "120"]);
        let mut p = nipc(&args);
        p.expect_stderr("holding");
        Some(p)
    } else {
        let (code, _, err) = run(&args);
        assert_eq!(code, 0, "{err}");
        None
    }
}

fn shm_cleanup(name: &str) {
    if cfg!(unix) {
        let (code, _, err) = run(&["shm", "rm", name]);
        assert_eq!(code, 0, "{err}");
    }
}

#[test]
fn shm_write_then_read_like_the_spec() {
    let name = unique("cli-shm");
    let _holder = shm_write(&name, &["Shine"]);
    let (code, out, err) = run(&["shm", "read", &name]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, vec!["Shine"]);
    let (_, out, _) = run(&["shm", "read", &name, "--len", "8", "--hex"]);
    assert_eq!(out, vec!["5368696e65000000"]);
    let (_, out, _) = run(&["shm", "read", &name, "--offset", "2"]);
    assert_eq!(out, vec!["ine"]);
    shm_cleanup(&name);
}

#[test]
fn shm_errors_name_the_segment_and_exit_1() {
    let name = unique("cli-shm-err");
    let (code, _, err) = run(&["shm", "read", &name]);
    assert_eq!(code, 1);
    assert!(err.contains(&name), "{err}");
    let (code, _, err) = run(&["shm", "create", &name, "--size", "0"]);
    assert_eq!(code, 1);
    assert!(err.contains("size 0"), "{err}");
    let _holder = shm_write(&name, &["x", "--size", "16"]);
    let (code, _, err) = run(&["shm", "write", &name, "past the end", "--offset", "5000"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("beyond the end") && err.contains(&name),
        "{err}"
    );
    let (code, _, err) = run(&["shm", "create", &name, "--size", "16"]);
    assert_eq!(code, 1);
    assert!(err.contains("already exists"), "{err}");
    let (code, _, err) = run(&["shm", "rm", &name]);
    if cfg!(windows) {
        assert_eq!(code, 1);
        assert!(err.contains("last process"), "{err}");
    } else {
        assert_eq!(code, 0, "{err}");
        assert_eq!(run(&["shm", "read", &name]).0, 1);
    }
}

#[test]
fn shm_ls_shows_owner_and_size() {
    let name = unique("cli-shm-ls");
    let mut holder = nipc(&["shm", "create", &name, "--size", "12345", "--hold", "120"]);
    holder.expect_stderr("holding");
    let (code, out, err) = run(&["shm", "ls"]);
    assert_eq!(code, 0, "{err}");
    let row = out
        .iter()
        .find(|l| l.split('\t').next().is_some_and(|n| n.ends_with(&name)))
        .unwrap_or_else(|| panic!("{name} not in {out:?}"));
    let cols: Vec<&str> = row.split('\t').collect();
    assert_eq!(cols.len(), 5, "{row}");
    assert!(
        cols[1] == "12345" || (cfg!(windows) && cols[1] == "16384"),
        "{row}"
    );
    assert_eq!(cols[2], holder.pid().to_string(), "{row}");
    assert_eq!(cols[3], "alive", "{row}");
    assert_eq!(cols[4], "segment", "{row}");
    holder.kill();
    if cfg!(unix) {
        // The holder died without removing it: gc finds it.
        let (_, out, _) = run(&["shm", "ls"]);
        assert!(
            out.iter()
                .any(|l| l.contains(&name) && l.contains("\tdead\t")),
            "{out:?}"
        );
        let (code, out, err) = run(&["shm", "gc"]);
        assert_eq!(code, 0, "{err}");
        assert!(
            out.iter()
                .any(|l| l.starts_with("removed ") && l.ends_with(&name)),
            "{out:?}"
        );
        assert_eq!(run(&["shm", "read", &name]).0, 1);
    }
}

/// The transports `nipc bench` may report.
const BENCH_TRANSPORTS: [&str; 13] = [
    "shm-spin",
    "shm-async",
    "pipe-async",
    "shm-spin-timeouts",
    "shm-zero-copy",
    "shm-blocking",
    "pipe",
    "pipe-timeouts",
    "raw-spin",
    "raw-futex",
    "raw-uds",
    "raw-ring",
    "memcpy",
];

#[test]
fn bench_json_lines_follow_the_documented_shape() {
    let svg = std::env::temp_dir().join(format!("{}.svg", unique("bench")));
    let (code, out, err) = run(&[
        "bench",
        "all",
        "--sizes",
        "64",
        "--duration",
        "0.05",
        "--repeat",
        "2",
        "--json",
        "--plot",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    // Pinning and the placement probes go to stderr: stdout is JSON only.
    assert!(err.contains("placement probe"), "{err}");
    let mut seen = Vec::new();
    for line in &out {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let obj = v
            .as_object()
            .unwrap_or_else(|| panic!("not an object: {line}"));
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "bytes_per_s",
                "median_ns",
                "msgs_per_s",
                "p99_ns",
                "ratio",
                "ratio_max",
                "ratio_min",
                "repeat",
                "size",
                "test",
                "transport"
            ],
            "{line}"
        );
        // The documented text form: `"key": value`, numbers with one decimal.
        assert!(line.starts_with("{\"test\": \""), "{line}");
        assert!(line.contains(", \"size\": 64, "), "{line}");
        let test = obj["test"].as_str().unwrap();
        let transport = obj["transport"].as_str().unwrap();
        assert!(test == "rtt" || test == "throughput", "{line}");
        assert!(BENCH_TRANSPORTS.contains(&transport), "{line}");
        assert_eq!(obj["size"].as_u64(), Some(64), "{line}");
        assert_eq!(obj["repeat"].as_u64(), Some(2), "{line}");
        let num = |k: &str| obj[k].as_f64();
        for k in ["median_ns", "p99_ns", "msgs_per_s", "bytes_per_s"] {
            assert!(
                obj[k].is_null() || num(k).is_some_and(|v| v > 0.0),
                "{k} in {line}"
            );
            if let Some(x) = num(k) {
                assert!(line.contains(&format!("\"{k}\": {x:.1}")), "{k} in {line}");
            }
        }
        if test == "rtt" {
            assert!(
                num("median_ns").is_some() && num("p99_ns").is_some(),
                "{line}"
            );
            assert!(
                obj["msgs_per_s"].is_null() && obj["bytes_per_s"].is_null(),
                "{line}"
            );
        } else {
            assert!(
                obj["median_ns"].is_null() && obj["p99_ns"].is_null(),
                "{line}"
            );
            assert!(
                num("msgs_per_s").is_some() && num("bytes_per_s").is_some(),
                "{line}"
            );
        }
        // A ratio exactly where a row has a baseline in this run.
        let has_baseline = matches!(
            (test, transport),
            ("rtt" | "throughput", "shm-spin" | "shm-blocking")
                | ("throughput", "shm-spin-timeouts" | "shm-zero-copy")
                | ("rtt", "pipe-timeouts")
                | ("rtt" | "throughput", "pipe-async" | "shm-async")
        ) || (test == "rtt" && transport == "pipe" && cfg!(unix));
        for k in ["ratio", "ratio_min", "ratio_max"] {
            assert_eq!(obj[k].is_null(), !has_baseline, "{k} in {line}");
        }
        if has_baseline {
            let (r, lo, hi) = (
                num("ratio").unwrap(),
                num("ratio_min").unwrap(),
                num("ratio_max").unwrap(),
            );
            assert!(0.0 < lo && lo <= r && r <= hi, "{line}");
        }
        seen.push(format!("{test}/{transport}"));
    }
    let mut want = vec![
        "rtt/shm-spin",
        "rtt/shm-blocking",
        "rtt/pipe",
        "rtt/pipe-timeouts",
        "rtt/raw-spin",
        "rtt/raw-futex",
        "throughput/shm-spin",
        "throughput/shm-spin-timeouts",
        "throughput/shm-zero-copy",
        "throughput/shm-blocking",
        "throughput/raw-ring",
        "throughput/memcpy",
        "rtt/shm-async",
        "throughput/shm-async",
        "rtt/pipe-async",
        "throughput/pipe",
        "throughput/pipe-async",
    ];
    if cfg!(unix) {
        want.push("rtt/raw-uds");
    }
    seen.sort_unstable();
    want.sort_unstable();
    assert_eq!(seen, want, "one line per row");
    let chart = std::fs::read_to_string(&svg).unwrap();
    assert!(
        chart.starts_with("<svg") && chart.contains("shm-spin"),
        "{chart}"
    );
    let _ = std::fs::remove_file(&svg);
}

#[test]
fn bench_table_says_pinning_probes_and_spread() {
    let (code, out, err) = run(&[
        "bench",
        "shm",
        "--sizes",
        "0,64",
        "--duration",
        "0.02",
        "--repeat",
        "3",
    ]);
    assert_eq!(code, 0, "{err}");
    let text = out.join("\n");
    let at = |prefix: &str| {
        out.iter()
            .position(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line starting {prefix:?} in:\n{text}"))
    };
    let header = at("test ");
    assert!(at("repetitions: 3") < header, "{text}");
    let pinned = &out[at("pinned: ")];
    assert!(
        pinned.starts_with("pinned: this process on CPU ") || pinned.starts_with("pinned: no ("),
        "{pinned}"
    );
    // The probe is measured (and printed) before the rows and after them.
    assert!(at("placement probe at start: ") < header, "{text}");
    assert!(at("placement probe at end: ") > header, "{text}");
    for col in ["median", "min–max", "vs baseline"] {
        assert!(out[header].contains(col), "{col} in {}", out[header]);
    }
    let rows: Vec<&String> = out[header + 1..]
        .iter()
        .filter(|l| l.starts_with("rtt ") || l.starts_with("throughput "))
        .collect();
    // 2 sizes × (5 round-trip + 7 throughput transports), each once.
    assert_eq!(rows.len(), 24, "{text}");
    let spin = rows
        .iter()
        .find(|l| l.starts_with("rtt ") && l.contains(" shm-spin ") && l.contains(" 64 "))
        .unwrap_or_else(|| panic!("no rtt shm-spin 64 row in:\n{text}"));
    // "1.23x raw-spin (1.10–1.40)": the median ratio and its range.
    assert!(
        spin.contains("x raw-spin (") && spin.ends_with(')'),
        "{spin}"
    );
    // The async row is compared with the sync one of the same repetitions.
    let spin_async = rows
        .iter()
        .find(|l| l.starts_with("rtt ") && l.contains(" shm-async ") && l.contains(" 64 "))
        .unwrap_or_else(|| panic!("no rtt shm-async 64 row in:\n{text}"));
    assert!(
        spin_async.contains("x shm-spin (") && spin_async.ends_with(')'),
        "{spin_async}"
    );
}

#[test]
fn bench_rejects_bad_repeat_and_pin() {
    for args in [
        &["bench", "--repeat", "0"][..],
        &["bench", "--pin", "0"],
        &["bench", "--pin", "0,x"],
        &["bench", "--pin", "0,1,2"],
        &["bench", "--pin", "100000,0"],
    ] {
        let (code, _, err) = run(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(!err.contains("unexpected argument"), "{args:?}: {err}");
        assert!(
            err.contains("--repeat") || err.contains("--pin"),
            "{args:?}: {err}"
        );
    }
}
