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
        "--json",
        "--plot",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let allowed = [
        "shm-spin",
        "shm-blocking",
        "pipe",
        "raw-spin",
        "raw-futex",
        "raw-uds",
        "raw-ring",
        "memcpy",
    ];
    let mut seen = Vec::new();
    for line in &out {
        assert!(line.starts_with('{') && line.ends_with('}'), "{line}");
        let field = |k: &str| -> String {
            let at = line
                .find(&format!("\"{k}\": "))
                .unwrap_or_else(|| panic!("no {k} in {line}"));
            let rest = &line[at + k.len() + 4..];
            rest[..rest.find([',', '}']).unwrap()]
                .trim()
                .trim_matches('"')
                .to_owned()
        };
        let test = field("test");
        let transport = field("transport");
        assert!(test == "rtt" || test == "throughput", "{line}");
        assert!(allowed.contains(&transport.as_str()), "{line}");
        assert_eq!(field("size"), "64");
        let num = |k: &str| field(k) == "null" || field(k).parse::<f64>().is_ok_and(|v| v > 0.0);
        for k in ["median_ns", "p99_ns", "msgs_per_s", "bytes_per_s"] {
            assert!(num(k), "{k} in {line}");
        }
        if test == "rtt" {
            assert!(
                field("median_ns") != "null" && field("msgs_per_s") == "null",
                "{line}"
            );
        } else {
            assert!(
                field("median_ns") == "null" && field("bytes_per_s") != "null",
                "{line}"
            );
        }
        seen.push(format!("{test}/{transport}"));
    }
    for want in [
        "rtt/shm-spin",
        "rtt/shm-blocking",
        "rtt/pipe",
        "rtt/raw-spin",
        "rtt/raw-futex",
        "throughput/shm-spin",
        "throughput/raw-ring",
        "throughput/memcpy",
    ] {
        assert!(seen.iter().any(|s| s == want), "missing {want} in {seen:?}");
    }
    assert_eq!(seen.iter().any(|s| s == "rtt/raw-uds"), cfg!(unix));
    let chart = std::fs::read_to_string(&svg).unwrap();
    assert!(
        chart.starts_with("<svg") && chart.contains("shm-spin"),
        "{chart}"
    );
    let _ = std::fs::remove_file(&svg);
}
