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
use named_ipc::shm::{Protection, ShmSegment};
use named_ipc::sync::{EventMode, NamedEvent, NamedMutex};

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
    shared_memory()?;
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

/// Scenario 3: named shared memory, guarded by a named mutex, with named
/// events for "written" and "read" instead of the spec's sleep.
fn shared_memory() -> Result<()> {
    out::line("== 3. named shared memory + named mutex + named events (CreateFileMapping / OpenFileMapping) ==")?;
    let base = unique("shm");
    let names = [
        base.clone(),
        format!("{base}-lock"),
        format!("{base}-ready"),
        format!("{base}-written"),
        format!("{base}-read"),
    ];
    let seg = ShmSegment::create(&names[0], 4096)?;
    let lock = NamedMutex::create(&names[1])?;
    let ready = NamedEvent::create(&names[2], EventMode::AutoReset, false)?;
    let written = NamedEvent::create(&names[3], EventMode::AutoReset, false)?;
    let read = NamedEvent::create(&names[4], EventMode::AutoReset, false)?;
    say(
        "A",
        &format!(
            "created {} bytes of shared memory {}",
            seg.len(),
            seg.os_name().unwrap_or_default()
        ),
    )?;
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let b = spawn_b("shm", &refs)?;
    if !ready.wait_timeout(Duration::from_secs(30))? {
        bail!("process B did not open the objects within 30 s");
    }
    {
        let guard = lock.lock()?;
        if guard.abandoned() {
            say("A", "the mutex was abandoned by a crashed holder")?;
        }
        seg.write_at(0, b"Shine\0")?;
        say(
            "A",
            "I have written \"Shine\" into share memory (holding the mutex)",
        )?;
    }
    written.set()?;
    say("A", "set event \"written\"; waiting for \"read\"")?;
    if !read.wait_timeout(Duration::from_secs(30))? {
        bail!("process B did not read the shared memory within 30 s");
    }
    say("A", "process B has read it")?;
    wait_b(b)
}

pub fn peer(a: DemoPeerArgs) -> Result<()> {
    let name = a.names.first().context("missing object name")?;
    match a.scenario.as_str() {
        "message" => peer_message(name),
        "framed" => peer_framed(name),
        "shm" => peer_shm(&a.names),
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

fn peer_shm(names: &[String]) -> Result<()> {
    let [seg, lock, ready, written, read] = names else {
        bail!("the shm scenario needs five names");
    };
    let seg = ShmSegment::open(seg, Protection::ReadOnly)?;
    let lock = NamedMutex::open(lock)?;
    let ready = NamedEvent::open(ready)?;
    let written = NamedEvent::open(written)?;
    let read = NamedEvent::open(read)?;
    say(
        "B",
        "opened the shared memory, mutex and events; waiting for \"written\"",
    )?;
    ready.set()?;
    if !written.wait_timeout(Duration::from_secs(30))? {
        bail!("process A did not write within 30 s");
    }
    let mut buf = [0u8; 20];
    {
        let _guard = lock.lock()?;
        seg.read_at(0, &mut buf)?;
    }
    let text = buf.split(|&b| b == 0).next().unwrap_or_default();
    say(
        "B",
        &format!(
            "what I read from share memory is: {}",
            String::from_utf8_lossy(text)
        ),
    )?;
    say("B", "setting event \"read\" and exiting")?;
    read.set()?;
    Ok(())
}
