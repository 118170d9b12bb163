//! `nipc demo`: the spec's scenarios with two real processes.
//!
//! This process is A. It creates each object, then starts itself again as
//! process B (`nipc __demo-peer SCENARIO NAME`). The two take turns, each step
//! waiting for the other's message, so the interleaved output is in a fixed order.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use named_ipc::pipe::{ConnectOptions, Framed, ListenerOptions, PipeMode, PipeStream};

use crate::cli::DemoPeerArgs;
use crate::out;

const WORDS: [&str; 3] = ["hello", "from", "process-B"];

fn say(who: &str, text: &str) -> Result<()> {
    out::line(&format!("[{who} pid {:>6}] {text}", std::process::id()))
}

fn spawn_b(scenario: &str, names: &[&str]) -> Result<Child> {
    let exe =
        std::env::current_exe().context("cannot find the nipc executable to start process B")?;
    std::io::stdout().flush().ok();
    Command::new(exe)
        .arg("__demo-peer")
        .arg(scenario)
        .args(names)
        .stdin(Stdio::null())
        .spawn()
        .context("cannot start process B")
}

fn wait_b(mut child: Child) -> Result<()> {
    let status = child.wait().context("cannot wait for process B")?;
    if !status.success() {
        bail!("process B failed ({status})");
    }
    Ok(())
}

fn unique(tag: &str) -> String {
    format!("named-ipc-demo-{}-{tag}", std::process::id())
}

pub fn run() -> Result<()> {
    out::line("named-ipc demo: process A (this one) starts process B and they talk.")?;
    out::line("")?;
    message_pipe()?;
    out::line("")?;
    framed_pipe()?;
    out::line("")?;
    out::line("demo complete.")?;
    Ok(())
}

/// Scenario 1: a duplex message-mode pipe, both ways.
fn message_pipe() -> Result<()> {
    out::line("== 1. message-mode pipe, both directions (CreateNamedPipe / CreateFile) ==")?;
    let name = unique("msg");
    let listener = ListenerOptions::new()
        .mode(PipeMode::Message)
        .create(&name)?;
    say("A", &format!("created message pipe {}", listener.os_name()))?;
    let b = spawn_b("message", &[&name])?;
    let conn = listener.accept_timeout(Duration::from_secs(30))?;
    say("A", &format!("client connected: pid {}", conn.peer_pid()?))?;
    say("A", "sent \"welcome\"")?;
    conn.send(b"welcome")?;
    for _ in WORDS {
        let msg = conn.recv()?.context("process B left early")?;
        let text = String::from_utf8_lossy(&msg).into_owned();
        say(
            "A",
            &format!("received message {text:?} ({} bytes)", msg.len()),
        )?;
        let reply = format!("ack:{text}");
        say("A", &format!("sent reply {reply:?}"))?;
        conn.send(reply.as_bytes())?;
    }
    match conn.recv()? {
        None => say("A", "process B closed the pipe")?,
        Some(m) => bail!("unexpected message {m:?}"),
    }
    drop(conn);
    wait_b(b)
}

/// Scenario 2: a byte-mode pipe carrying u32-LE size-prefixed frames.
fn framed_pipe() -> Result<()> {
    out::line("== 2. byte-mode pipe with a 4-byte little-endian size prefix (pipewithsize) ==")?;
    let name = unique("framed");
    let listener = ListenerOptions::new().mode(PipeMode::Byte).create(&name)?;
    say("A", &format!("created byte pipe {}", listener.os_name()))?;
    let b = spawn_b("framed", &[&name])?;
    let conn = listener.accept_timeout(Duration::from_secs(30))?;
    let mut framed = Framed::new(&conn);
    for _ in WORDS {
        let msg = framed.recv()?.context("process B left early")?;
        say("A", &format!("size:{}", msg.len()))?;
        say("A", &format!("payload: {}", String::from_utf8_lossy(&msg)))?;
        framed.send(b"ok")?;
    }
    drop(framed);
    drop(conn);
    wait_b(b)
}

pub fn peer(a: DemoPeerArgs) -> Result<()> {
    let name = a.names.first().context("missing object name")?;
    match a.scenario.as_str() {
        "message" => peer_message(name),
        "framed" => peer_framed(name),
        other => bail!("unknown demo scenario {other:?}"),
    }
}

fn connect(name: &str, mode: PipeMode) -> Result<PipeStream> {
    Ok(ConnectOptions::new()
        .mode(mode)
        .timeout(Duration::from_secs(30))
        .connect(name)?)
}

fn peer_message(name: &str) -> Result<()> {
    let s = connect(name, PipeMode::Message)?;
    let welcome = s.recv()?.context("process A closed early")?;
    say(
        "B",
        &format!(
            "opened the pipe (server pid {}), received {:?}",
            s.peer_pid()?,
            String::from_utf8_lossy(&welcome)
        ),
    )?;
    for w in WORDS {
        say("B", &format!("sent message {w:?}"))?;
        s.send(w.as_bytes())?;
        let reply = s.recv()?.context("process A closed early")?;
        say(
            "B",
            &format!("received reply {:?}", String::from_utf8_lossy(&reply)),
        )?;
    }
    say("B", "closing the pipe and exiting")
}

fn peer_framed(name: &str) -> Result<()> {
    let s = connect(name, PipeMode::Byte)?;
    let mut framed = Framed::new(&s);
    for w in WORDS {
        let wire: Vec<String> = (w.len() as u32)
            .to_le_bytes()
            .iter()
            .chain(w.as_bytes())
            .map(|b| format!("{b:02x}"))
            .collect();
        say("B", &format!("sent {w:?} as {}", wire.join(" ")))?;
        framed.send(w.as_bytes())?;
        framed.recv()?.context("process A closed early")?;
    }
    say("B", "done; exiting")
}
