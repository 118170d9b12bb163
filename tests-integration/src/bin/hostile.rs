//! Hostile helper process: peers that break the rules, for the hostile-peer
//! and chaos tests (`tests/hostile.rs`, `tests/chaos.rs`, `tests/soak.rs`).
//! Well-behaved roles live in `peer.rs`.
//!
//! Every role prints a readiness line on stdout (`READY`, `UP`, `CONNECTED`)
//! when the test may go on. Command-driven roles then read one command per
//! stdin line and answer `OK ...` (or `ERR ...`) once it is done, so the tests
//! never sleep to wait for them. Roles end at stdin EOF or when killed.
//!
//! Usage: `hostile ROLE ARGS...` — see `main`.

use std::io::{self, BufRead, Read, Write};
use std::time::Duration;

use named_ipc::channel::{ChannelOptions, ShmListener, ShmStream};
use named_ipc::pipe::{
    ConnectOptions, Framed, ListenerOptions, PipeListener, PipeMode, PipeStream,
};
use named_ipc::shm::{Protection, ShmSegment};
use named_ipc::sync::NamedMutex;
use tests_integration::{chaos_len, check_numbered, numbered, payload, proc_stats};

/// The channel's layout and handshake version this helper speaks
/// (crates/named-ipc/src/channel/header.rs, handshake.rs).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
const LAYOUT_VERSION: u32 = 4;

/// How long a helper waits for anything before giving up (the test fails
/// first, by its own watchdog).
const PATIENCE: Duration = Duration::from_secs(60);

fn say(line: &str) {
    let mut o = io::stdout().lock();
    let _ = writeln!(o, "{line}");
    let _ = o.flush();
}

fn wait_stdin_eof() {
    let mut sink = Vec::new();
    let _ = io::stdin().read_to_end(&mut sink);
}

/// Exits the process when stdin reaches EOF (the test dropped our stdin).
fn exit_on_stdin_eof() {
    std::thread::spawn(|| {
        wait_stdin_eof();
        std::process::exit(0);
    });
}

fn mem_line() -> String {
    match proc_stats(std::process::id()) {
        Some(s) => format!("MEM {s}"),
        None => "MEM unknown".into(),
    }
}

fn describe(e: &io::Error) -> String {
    format!("{:?} {e}", e.kind())
}

/// A pipe or a channel stream, for roles that do the same on both.
enum Conn {
    Pipe(PipeStream),
    Chan(ShmStream),
}

impl Conn {
    fn send(&self, m: &[u8]) -> io::Result<()> {
        match self {
            Conn::Pipe(p) => p.send(m),
            Conn::Chan(c) => c.send(m),
        }
    }

    fn recv_into(&self, buf: &mut Vec<u8>) -> io::Result<Option<usize>> {
        match self {
            Conn::Pipe(p) => p.recv_into(buf),
            Conn::Chan(c) => c.recv_into(buf),
        }
    }

    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Conn::Pipe(p) => p.set_read_timeout(t),
            Conn::Chan(c) => c.set_read_timeout(t),
        }
    }
}

/// Sets up one connection: `server` binds NAME, prints `READY`, accepts one
/// client; `client` prints `STARTING` and connects. Both print `UP` once
/// connected.
fn establish(kind: &str, side: &str, name: &str) -> Conn {
    if side == "client" {
        say("STARTING");
    }
    let conn = match (kind, side) {
        ("pipe", "server") => {
            let l = PipeListener::bind(name).expect("bind");
            say("READY");
            Conn::Pipe(l.accept().expect("accept"))
        }
        ("pipe", "client") => {
            Conn::Pipe(PipeStream::connect_timeout(name, PATIENCE).expect("connect"))
        }
        ("chan", "server") => {
            let l = ShmListener::bind(name).expect("bind");
            say("READY");
            Conn::Chan(l.accept().expect("accept"))
        }
        ("chan", "client") => {
            Conn::Chan(ShmStream::connect_timeout(name, PATIENCE).expect("connect"))
        }
        other => panic!("bad kind/side {other:?}"),
    };
    say("UP");
    conn
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let role = args.first().map(String::as_str).unwrap_or("");
    let arg = |i: usize| -> &str {
        args.get(i)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("{role}: missing argument {i}"))
    };
    match role {
        // stream-out KIND SIDE NAME: connect, then send numbered messages of
        // `chaos_len` sizes as fast as possible until the other side leaves.
        "stream-out" => {
            let conn = establish(arg(1), arg(2), arg(3));
            let mut seq = 0u64;
            while conn.send(&numbered(seq, chaos_len(seq))).is_ok() {
                seq += 1;
            }
        }
        // stream-in KIND SIDE NAME: connect, then receive numbered messages
        // and check their order and contents; exit 3 on a bad one.
        "stream-in" => {
            let conn = establish(arg(1), arg(2), arg(3));
            let mut buf = Vec::new();
            let mut want = 0u64;
            while let Ok(Some(_)) = conn.recv_into(&mut buf) {
                match check_numbered(&buf) {
                    Ok(seq) if seq == want => want += 1,
                    Ok(seq) => {
                        eprintln!("message {seq} arrived where {want} was due");
                        std::process::exit(3);
                    }
                    Err(e) => {
                        eprintln!("{e}");
                        std::process::exit(3);
                    }
                }
            }
        }
        // hold KIND SIDE NAME: connect, then neither read nor write until
        // stdin closes (or a kill).
        "hold" => {
            let _conn = establish(arg(1), arg(2), arg(3));
            wait_stdin_eof();
        }
        // mutex-churn MUTEX SEG: forever: lock, bump the u64 at 0 of SEG,
        // yield, copy it to the u64 at 8, unlock. A holder killed between the
        // two writes leaves them different, and the next locker must be told
        // (abandoned). A locker told so repairs them first.
        "mutex-churn" => {
            let m = NamedMutex::open_or_create(arg(1)).expect("mutex");
            let seg = ShmSegment::open(arg(2), Protection::ReadWrite).expect("segment");
            say("READY");
            loop {
                // Work outside the lock too, so a kill may land there.
                for _ in 0..3 {
                    std::thread::yield_now();
                }
                let g = m.lock().expect("lock");
                let mut a = [0u8; 8];
                seg.read_at(0, &mut a).expect("read");
                if g.abandoned() {
                    seg.write_at(8, &a).expect("repair");
                }
                let n = u64::from_le_bytes(a) + 1;
                seg.write_at(0, &n.to_le_bytes()).expect("write a");
                std::thread::yield_now();
                seg.write_at(8, &n.to_le_bytes()).expect("write b");
                drop(g);
            }
        }
        // pipe-deaf NAME / chan-deaf NAME: connect and read nothing until a
        // `drain` line on stdin; then read everything, checking that message n
        // is payload(n, its length), and report `GOT n` and how it ended.
        "pipe-deaf" | "chan-deaf" => {
            let conn = if role == "pipe-deaf" {
                Conn::Pipe(PipeStream::connect_timeout(arg(1), PATIENCE).expect("connect"))
            } else {
                Conn::Chan(ShmStream::connect_timeout(arg(1), PATIENCE).expect("connect"))
            };
            say("CONNECTED");
            let mut line = String::new();
            let _ = io::stdin().lock().read_line(&mut line);
            conn.set_read_timeout(Some(PATIENCE)).expect("timeout");
            let mut buf = Vec::new();
            let mut n = 0u64;
            let end = loop {
                match conn.recv_into(&mut buf) {
                    Ok(Some(len)) => {
                        if buf != payload(n, len) {
                            break format!("corrupt message {n} of {len} bytes");
                        }
                        n += 1;
                    }
                    Ok(None) => break "eof".into(),
                    Err(e) => break format!("error {}", describe(&e)),
                }
            };
            say(&format!("GOT {n}"));
            say(&format!("END {end}"));
            wait_stdin_eof();
        }
        // flood KIND NAME SIZE MS: connect (KIND `pipe` or `chan`) with a
        // write timeout of MS ms, send payload(n, SIZE) for n = 0, 1, ... until
        // a send fails, print `SENT n KIND MESSAGE` (n sends returned Ok) and
        // exit at once, running no destructors: whatever a send that returned
        // Ok left in user space is lost.
        "flood" => {
            let conn = if arg(1) == "pipe" {
                Conn::Pipe(PipeStream::connect_timeout(arg(2), PATIENCE).expect("connect"))
            } else {
                Conn::Chan(ShmStream::connect_timeout(arg(2), PATIENCE).expect("connect"))
            };
            let size: usize = arg(3).parse().expect("size");
            let t = Some(Duration::from_millis(arg(4).parse().expect("ms")));
            match &conn {
                Conn::Pipe(p) => p.set_write_timeout(t),
                Conn::Chan(c) => c.set_write_timeout(t),
            }
            .expect("timeout");
            say("CONNECTED");
            let mut n = 0u64;
            let e = loop {
                match conn.send(&payload(n, size)) {
                    Ok(()) => n += 1,
                    Err(e) => break e,
                }
            };
            say(&format!("SENT {n} {}", describe(&e)));
            std::process::exit(0);
        }
        // pipe-measure NAME MODE: a receiver that accepts anything up to
        // 4 GiB - 1 (MODE `message`: message pipe; `framed`: byte pipe with
        // `Framed`). Prints `READY` and its memory, accepts one client, then
        // for each stdin line `recv MS` receives once with that read timeout
        // and prints `RECV ok LEN` or `RECV err KIND MESSAGE`, then `MEM ...`.
        "pipe-measure" => {
            let framed = arg(2) == "framed";
            let l = ListenerOptions::new()
                .mode(if framed {
                    PipeMode::Byte
                } else {
                    PipeMode::Message
                })
                .max_message_size(u32::MAX)
                .create(arg(1))
                .expect("bind");
            say("READY");
            say(&mem_line());
            let conn = l.accept().expect("accept");
            let mut f = Framed::with_max_message(&conn, u32::MAX);
            let mut buf = Vec::new();
            for line in io::stdin().lock().lines() {
                let line = line.expect("stdin");
                let ms: u64 = line
                    .strip_prefix("recv ")
                    .and_then(|s| s.parse().ok())
                    .expect("recv MS");
                conn.set_read_timeout(Some(Duration::from_millis(ms)))
                    .expect("timeout");
                let r = if framed {
                    f.recv_into(&mut buf)
                } else {
                    conn.recv_into(&mut buf)
                };
                match r {
                    Ok(Some(n)) => say(&format!("RECV ok {n}")),
                    Ok(None) => say("RECV eof"),
                    Err(e) => say(&format!("RECV err {}", describe(&e))),
                }
                say(&mem_line());
            }
        }
        // pipe-silent NAME HOW: connect and say nothing (`nothing`), or send
        // two bytes of a frame header (`half-header`, Unix: a byte-mode
        // client on a message pipe), or a header announcing 100 bytes and
        // none of them (`header-only`, Unix). Holds until stdin closes.
        "pipe-silent" => {
            let how = arg(2);
            let mode = if how == "nothing" {
                PipeMode::Message
            } else {
                PipeMode::Byte
            };
            let c = ConnectOptions::new()
                .mode(mode)
                .timeout(PATIENCE)
                .connect(arg(1))
                .expect("connect");
            match how {
                "nothing" => {}
                "half-header" => (&c).write_all(&[100, 0]).expect("write"),
                "header-only" => (&c).write_all(&100u32.to_le_bytes()).expect("write"),
                other => panic!("bad HOW {other}"),
            }
            say("CONNECTED");
            wait_stdin_eof();
        }
        // chan-silent NAME: connect to a channel's rendezvous as a plain pipe
        // client and never start the handshake.
        "chan-silent" => {
            let _c = ConnectOptions::new()
                .mode(PipeMode::Message)
                .timeout(PATIENCE)
                .connect(arg(1))
                .expect("connect");
            say("CONNECTED");
            wait_stdin_eof();
        }
        // soak-clients KIND NAME CONNS MSGS: open CONNS connections, print
        // `CONNECTED`, wait for a `go` line, then on each connection send MSGS
        // numbered messages from one thread while another receives the echoes
        // and checks that each is intact and in order. Prints `P10` once a
        // tenth of all echoes arrived, `DONE n` at the end (`FAIL why` and exit
        // 1 on a lost, reordered or corrupt message or an I/O error), then holds
        // the connections until stdin closes.
        "soak-clients" => soak_clients(
            arg(1),
            arg(2),
            arg(3).parse().expect("conns"),
            arg(4).parse().expect("msgs"),
        ),
        // soak-echo KIND NAME CAPACITY: echo server, a thread per client (KIND
        // `pipe` or `chan`); prints `READY`; ends at stdin EOF. CAPACITY is the
        // ring size for channels (ignored for pipes).
        "soak-echo" => soak_echo(arg(1), arg(2), arg(3).parse().expect("capacity")),
        // fake-chan-server NAME START: a channel server that does the
        // handshake by hand (Linux), then obeys commands (see `fake`).
        #[cfg(target_os = "linux")]
        "fake-chan-server" => fake::server(arg(1), arg(2)),
        // fake-chan-client NAME: a channel client that does the handshake by
        // hand (Linux), then obeys commands (see `fake`).
        #[cfg(target_os = "linux")]
        "fake-chan-client" => fake::client(arg(1)),
        other => {
            eprintln!("hostile: unknown role {other:?}");
            std::process::exit(2);
        }
    }
}

fn soak_echo(kind: &str, name: &str, capacity: usize) {
    raise_fd_limit();
    let serve = |conn: Conn| {
        std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(move || {
                let mut buf = Vec::new();
                let r: io::Result<()> = (|| {
                    while conn.recv_into(&mut buf)?.is_some() {
                        conn.send(&buf)?;
                    }
                    Ok(())
                })();
                if let Err(e) = r {
                    say(&format!("CLIENT-ERROR {}", describe(&e)));
                }
            })
            .expect("thread");
    };
    if kind == "pipe" {
        let l = ListenerOptions::new()
            .max_instances(255)
            .create(name)
            .expect("bind");
        say("READY");
        exit_on_stdin_eof();
        for c in l.incoming() {
            serve(Conn::Pipe(c.expect("accept")));
        }
    } else {
        let l = ChannelOptions::new()
            .capacity(capacity)
            .bind(name)
            .expect("bind");
        say("READY");
        exit_on_stdin_eof();
        loop {
            serve(Conn::Chan(l.accept().expect("accept")));
        }
    }
}

fn soak_len(seq: u64) -> usize {
    (seq.wrapping_mul(7919) % 200) as usize
}

fn soak_clients(kind: &str, name: &str, conns: usize, msgs: u64) {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    raise_fd_limit();
    let fail = |why: String| -> ! {
        say(&format!("FAIL {why}"));
        std::process::exit(1);
    };
    // The sending and the receiving half of each connection.
    type Tx = Box<dyn FnMut(&[u8]) -> io::Result<()> + Send>;
    type Rx = Box<dyn FnMut(&mut Vec<u8>) -> io::Result<Option<usize>> + Send>;
    let mut halves: Vec<(Tx, Rx)> = Vec::new();
    for _ in 0..conns {
        match kind {
            "pipe" => {
                let c = Arc::new(
                    PipeStream::connect_timeout(name, PATIENCE)
                        .unwrap_or_else(|e| fail(format!("connect: {e}"))),
                );
                let (a, b) = (Arc::clone(&c), c);
                halves.push((
                    Box::new(move |m| a.send(m)),
                    Box::new(move |buf| b.recv_into(buf)),
                ));
            }
            _ => {
                let c = ShmStream::connect_timeout(name, PATIENCE)
                    .unwrap_or_else(|e| fail(format!("connect: {e}")));
                let (mut tx, mut rx) = c.split();
                halves.push((
                    Box::new(move |m| tx.send(m)),
                    Box::new(move |buf| rx.recv_into(buf)),
                ));
            }
        }
    }
    // Message 0 goes through on each connection before the rest start: the
    // server has accepted every connection by then.
    let mut buf = Vec::new();
    for (i, (send, recv)) in halves.iter_mut().enumerate() {
        let m = numbered(0, soak_len(0));
        if let Err(e) = send(&m).and_then(|()| recv(&mut buf)) {
            fail(format!("connection {i}: first echo: {e}"));
        }
        if buf != m {
            fail(format!("connection {i}: first echo differs"));
        }
    }
    say("CONNECTED");
    let mut line = String::new();
    let _ = io::stdin().lock().read_line(&mut line);
    let total = conns as u64 * msgs;
    let tenth = total / 10;
    let received = Arc::new(AtomicU64::new(conns as u64));
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for (i, (mut send, mut recv)) in halves.into_iter().enumerate() {
        senders.push(
            std::thread::Builder::new()
                .stack_size(128 * 1024)
                .spawn(move || {
                    for seq in 1..msgs {
                        if let Err(e) = send(&numbered(seq, soak_len(seq))) {
                            fail(format!("connection {i}: send {seq}: {e}"));
                        }
                    }
                    send
                })
                .expect("thread"),
        );
        let received = Arc::clone(&received);
        receivers.push(
            std::thread::Builder::new()
                .stack_size(128 * 1024)
                .spawn(move || {
                    let mut buf = Vec::new();
                    for want in 1..msgs {
                        match recv(&mut buf) {
                            Ok(Some(_)) => match check_numbered(&buf) {
                                Ok(seq) if seq == want && buf.len() == 8 + soak_len(seq) => {}
                                Ok(seq) => fail(format!(
                                    "connection {i}: message {seq} ({} bytes) where {want} was due",
                                    buf.len()
                                )),
                                Err(e) => fail(format!("connection {i}: {e}")),
                            },
                            Ok(None) => fail(format!("connection {i}: closed at message {want}")),
                            Err(e) => fail(format!("connection {i}: receive {want}: {e}")),
                        }
                        if received.fetch_add(1, Ordering::Relaxed) + 1 == tenth {
                            say("P10");
                        }
                    }
                    recv
                })
                .expect("thread"),
        );
    }
    // Keep every connection open until told to leave.
    let _open: Vec<(Tx, Rx)> = senders
        .into_iter()
        .zip(receivers)
        .map(|(s, r)| (s.join().expect("sender"), r.join().expect("receiver")))
        .collect();
    say(&format!("DONE {}", received.load(Ordering::Relaxed)));
    wait_stdin_eof();
}

/// Servers of a thousand clients need more descriptors than some defaults (1024).
#[cfg(unix)]
#[allow(unsafe_code)]
fn raise_fd_limit() {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: r is a valid out-pointer; raising the soft limit to the hard one.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max.min(65536);
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

#[cfg(not(unix))]
fn raise_fd_limit() {}

/// Fake channel ends for Linux, where the segment is a sealed memfd passed
/// over the rendezvous socket (`SCM_RIGHTS`). (On Windows the handshake
/// carries section and event handles the client duplicates; these roles do
/// not speak it.) The wire and the layout are those documented in
/// `crates/named-ipc/src/channel/{header,handshake,ring}.rs`, written here by
/// hand so a test can break them.
///
/// After the handshake, each command line (see `run` below) acts on the
/// shared segment and answers `OK` when done. "tx" is the ring we produce on
/// (the victim consumes it), "rx" the ring the victim produces on.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
mod fake {
    use crate::LAYOUT_VERSION;
    use std::io::{self, BufRead, Read, Write};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
    use std::os::unix::net::{UnixListener, UnixStream};
    use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::Instant;

    use super::{payload, say, wait_stdin_eof, PATIENCE};

    const HEADER: usize = 64;
    const CONTROL: usize = 320;
    const HEAD: usize = 64;
    const DATA_WAITING: usize = 128;
    const DATA_SEQ: usize = 132;
    const SPACE_WAITING: usize = 192;
    const SPACE_SEQ: usize = 196;
    const CLOSED_PRODUCER: usize = 256;
    const FLAG_MORE: u32 = 1;
    const FLAG_FIRST: u32 = 4;
    const FLAG_PAD: u32 = 2;
    /// Set in every header a real producer publishes (layout version 4).
    const FLAG_RECORD: u32 = 8;

    fn total(cap: usize) -> usize {
        HEADER + 2 * (CONTROL + cap)
    }

    fn pad8(n: usize) -> usize {
        (n + 7) & !7
    }

    /// The shared segment as seen by the fake end.
    struct Seg {
        ptr: *mut u8,
        len: usize,
        cap: usize,
        /// Ring we produce on, ring we consume.
        tx: usize,
        rx: usize,
        /// Our producer position on tx, and how many messages we published.
        tail: u64,
        sent: u64,
        /// Where the last record we published starts (its header).
        last: Option<usize>,
    }

    // SAFETY: the mapping lives until the process exits (never unmapped), and
    // every access goes through atomics or raw copies.
    unsafe impl Send for Seg {}
    // SAFETY: as above.
    unsafe impl Sync for Seg {}

    impl Seg {
        fn base(&self, ring: usize) -> usize {
            HEADER + ring * (CONTROL + self.cap)
        }

        fn u64_at(&self, off: usize) -> &AtomicU64 {
            assert!(off.is_multiple_of(8) && off + 8 <= self.len);
            // SAFETY: in bounds and 8-aligned (the mapping is page-aligned);
            // the mapping is never unmapped; atomics are valid for any bits.
            unsafe { &*(self.ptr.add(off) as *const AtomicU64) }
        }

        fn u32_at(&self, off: usize) -> &AtomicU32 {
            assert!(off.is_multiple_of(4) && off + 4 <= self.len);
            // SAFETY: as for u64_at, 4-aligned.
            unsafe { &*(self.ptr.add(off) as *const AtomicU32) }
        }

        fn write(&self, off: usize, bytes: &[u8]) {
            assert!(off + bytes.len() <= self.len);
            // SAFETY: in bounds of the live mapping; a plain copy into memory
            // the victim may read concurrently (that is the point).
            unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr.add(off), bytes.len()) }
        }

        fn data(&self, ring: usize) -> usize {
            self.base(ring) + CONTROL
        }

        /// Bumps a bell's sequence word and wakes its sleepers.
        fn ring_bell(&self, seq_off: usize) {
            let w = self.u32_at(seq_off);
            w.fetch_add(1, Ordering::SeqCst);
            // SAFETY: FUTEX_WAKE on a live, aligned u32 of a shared mapping
            // touches no memory.
            unsafe {
                libc::syscall(
                    libc::SYS_futex,
                    w.as_ptr(),
                    libc::FUTEX_WAKE,
                    i32::MAX,
                    std::ptr::null::<libc::timespec>(),
                    std::ptr::null::<u32>(),
                    0u32,
                );
            }
        }

        fn wake_victim_reader(&self) {
            self.ring_bell(self.base(self.tx) + DATA_SEQ);
        }

        fn wake_victim_writer(&self) {
            self.ring_bell(self.base(self.rx) + SPACE_SEQ);
        }

        fn victim_head(&self) -> u64 {
            self.u64_at(self.base(self.tx) + HEAD)
                .load(Ordering::Acquire)
        }

        /// Writes one record (and padding before it if it would not fit
        /// before the end) at our tail, waiting for room, and publishes it as
        /// the real producer does: payload, the next header slot cleared,
        /// then the header (after padding: the record's header, then the
        /// padding's). Returns false if no room came within PATIENCE or
        /// `stop` was set.
        fn push(&mut self, body: &[u8], flags: u32, stop: &AtomicBool) -> bool {
            let cap = self.cap as u64;
            let need = (8 + pad8(body.len())) as u64;
            let pos = self.tail % cap;
            let pad = if cap - pos < need { cap - pos } else { 0 };
            let deadline = Instant::now() + PATIENCE;
            // The record, the padding before it, and the next header slot.
            while cap - (self.tail - self.victim_head().min(self.tail)) < pad + need + 8 {
                if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                    return false;
                }
                std::thread::yield_now();
            }
            let d = self.data(self.tx);
            let start = (self.tail + pad) % cap;
            let at = d + start as usize;
            self.write(at + 8, body);
            self.header(d + ((start + need) % cap) as usize)
                .store(0, Ordering::Release);
            let h = body.len() as u64 | (u64::from(flags | FLAG_RECORD) << 32);
            self.header(at).store(h, Ordering::Release);
            if pad > 0 {
                let p = pad | (u64::from(FLAG_PAD | FLAG_RECORD) << 32);
                self.header(d + pos as usize).store(p, Ordering::Release);
            }
            self.last = Some(at);
            self.tail += pad + need;
            self.wake_victim_reader();
            true
        }

        /// The header word at `off` (an absolute offset into the segment).
        fn header(&self, off: usize) -> &AtomicU64 {
            self.u64_at(off)
        }

        /// Consumes every record the victim published on rx; returns how many.
        fn drain(&self) -> u64 {
            let base = self.base(self.rx);
            let d = self.data(self.rx);
            let head = self.u64_at(base + HEAD);
            let mut at = head.load(Ordering::Relaxed);
            let mut n = 0;
            loop {
                let pos = (at % self.cap as u64) as usize;
                let h = self.header(d + pos).load(Ordering::Acquire);
                if h == 0 {
                    break;
                }
                let (len, flags) = (h as u32 as usize, (h >> 32) as u32);
                if flags & FLAG_PAD != 0 {
                    if len == 0 {
                        break;
                    }
                    at += len as u64;
                } else {
                    at += (8 + pad8(len)) as u64;
                    n += 1;
                }
            }
            head.store(at, Ordering::Release);
            self.wake_victim_writer();
            n
        }
    }

    /// Runs `f` on a thread until `stop` is set.
    fn background(
        stop: &Arc<AtomicBool>,
        threads: &mut Vec<std::thread::JoinHandle<()>>,
        f: impl FnOnce(Arc<AtomicBool>) + Send + 'static,
    ) {
        let stop = Arc::clone(stop);
        threads.push(std::thread::spawn(move || f(stop)));
    }

    /// Command loop. Commands:
    /// - `publish LEN`: one valid record of payload(n, LEN), n counting from 0
    /// - `head V`: set the rx head (the victim's producer reads it) to V
    /// - `record LEN FLAGS ADVANCE`: a record header (LEN, FLAGS exactly as
    ///   given: a real producer always sets RECORD, 8) at our tail, zero
    ///   payload, then the tail moves by ADVANCE
    /// - `zero-more`: fill the ring with empty records flagged "more"
    /// - `more-stream`: in the background, a message announcing 4 GiB − 1
    ///   bytes, then 1-byte "more" records forever
    /// - `unannounced-stream`: 1-byte "more" records forever, without the
    ///   first record that announces the message's length
    /// - `closed V`: the tx producer's closed flag
    /// - `flicker`: in the background, flip that flag 1/0 forever
    /// - `bells`: in the background, garbage in the victim's waiting/seq
    ///   words, with wake-ups
    /// - `scribble`: rewrite the last published record: length 0xFFFFFFF0,
    ///   flags 0xFFFF, payload bytes 0xEE
    /// - `drain`: consume what the victim sent (answers `OK n`)
    /// - `stop`: end background activity
    fn run(mut seg: Seg) {
        let seg_stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        let never = AtomicBool::new(false);
        for line in io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            let w: Vec<&str> = line.split_whitespace().collect();
            let num = |i: usize| -> u64 {
                let s = w.get(i).copied().unwrap_or("0");
                match s.strip_prefix("0x") {
                    Some(h) => u64::from_str_radix(h, 16).expect("hex"),
                    None => s.parse().expect("number"),
                }
            };
            let txb = seg.base(seg.tx);
            match w.first().copied().unwrap_or("") {
                "publish" => {
                    let body = payload(seg.sent, num(1) as usize);
                    if seg.push(&body, 0, &never) {
                        seg.sent += 1;
                        say("OK");
                    } else {
                        say("ERR no room");
                    }
                }
                "head" => {
                    seg.u64_at(seg.base(seg.rx) + HEAD)
                        .store(num(1), Ordering::Release);
                    seg.wake_victim_writer();
                    say("OK");
                }
                "record" => {
                    let at = seg.data(seg.tx) + (seg.tail % seg.cap as u64) as usize;
                    let h = num(1) | (num(2) << 32);
                    seg.header(at).store(h, Ordering::Release);
                    seg.tail += num(3);
                    seg.wake_victim_reader();
                    say("OK");
                }
                "zero-more" => {
                    let mut n = 0;
                    // `push` gives up at once when full (its stop flag is set).
                    let full = AtomicBool::new(true);
                    while seg.push(&[], FLAG_MORE, &full) {
                        n += 1;
                    }
                    say(&format!("OK {n}"));
                }
                "more-stream" | "unannounced-stream" => {
                    // The background thread owns the producer from now on
                    // (later `publish` commands would not know its tail).
                    let mut mine = Seg { last: None, ..seg };
                    let announce = w[0] == "more-stream";
                    background(&seg_stop, &mut threads, move |stop| {
                        if announce {
                            // A message of 4 GiB − 1 bytes, announced in its
                            // first record, then endless 1-byte pieces.
                            let mut first = u64::from(u32::MAX).to_le_bytes().to_vec();
                            first.push(7);
                            if !mine.push(&first, FLAG_FIRST | FLAG_MORE, &stop) {
                                return;
                            }
                        }
                        while !stop.load(Ordering::Relaxed) && mine.push(&[7], FLAG_MORE, &stop) {}
                    });
                    say("OK");
                }
                "closed" => {
                    seg.u32_at(txb + CLOSED_PRODUCER)
                        .store(num(1) as u32, Ordering::Release);
                    seg.wake_victim_reader();
                    say("OK");
                }
                "flicker" => {
                    let s = Seg { last: None, ..seg };
                    background(&seg_stop, &mut threads, move |stop| {
                        let mut v = 0;
                        while !stop.load(Ordering::Relaxed) {
                            v ^= 1;
                            s.u32_at(txb + CLOSED_PRODUCER).store(v, Ordering::Release);
                            s.wake_victim_reader();
                            std::thread::yield_now();
                        }
                        s.u32_at(txb + CLOSED_PRODUCER).store(0, Ordering::Release);
                    });
                    say("OK");
                }
                "bells" => {
                    let s = Seg { last: None, ..seg };
                    background(&seg_stop, &mut threads, move |stop| {
                        let rxb = s.base(s.rx);
                        let mut x = 0x1234_5678u32;
                        while !stop.load(Ordering::Relaxed) {
                            x ^= x << 13;
                            x ^= x >> 17;
                            x ^= x << 5;
                            for off in [
                                txb + DATA_WAITING,
                                txb + DATA_SEQ,
                                rxb + SPACE_WAITING,
                                rxb + SPACE_SEQ,
                            ] {
                                s.u32_at(off).store(x, Ordering::Relaxed);
                            }
                            s.wake_victim_reader();
                            s.wake_victim_writer();
                            std::thread::yield_now();
                        }
                    });
                    say("OK");
                }
                "scribble" => match seg.last {
                    Some(at) => {
                        let len = (seg.data(seg.tx) + seg.cap - at - 8).min(seg.cap / 4);
                        seg.header(at)
                            .store(0xFFFF_FFF0u64 | (0xFFFFu64 << 32), Ordering::Release);
                        seg.write(at + 8, &vec![0xEE; len]);
                        say("OK");
                    }
                    None => say("ERR nothing published yet"),
                },
                "drain" => say(&format!("OK {}", seg.drain())),
                "stop" => {
                    seg_stop.store(true, Ordering::Relaxed);
                    for t in threads.drain(..) {
                        let _ = t.join();
                    }
                    seg_stop.store(false, Ordering::Relaxed);
                    say("OK");
                }
                other => say(&format!("ERR unknown command {other:?}")),
            }
        }
    }

    fn cvt(r: libc::c_int, what: &str) -> io::Result<libc::c_int> {
        if r < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("{what}: {e}")));
        }
        Ok(r)
    }

    /// A fresh memfd of `len` bytes, sealed against resizing like the real
    /// server's, mapped shared.
    fn segment(len: usize) -> io::Result<(OwnedFd, *mut u8)> {
        // SAFETY: a NUL-terminated name and flags; returns a new descriptor.
        let fd = cvt(
            unsafe {
                libc::memfd_create(
                    c"nipc-hostile".as_ptr(),
                    libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
                )
            },
            "memfd_create",
        )?;
        // SAFETY: fd was just returned to us and is owned from here on.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: ftruncate/fcntl on our own descriptor.
        unsafe {
            cvt(
                libc::ftruncate(fd.as_raw_fd(), len as libc::off_t),
                "ftruncate",
            )?;
            cvt(
                libc::fcntl(
                    fd.as_raw_fd(),
                    libc::F_ADD_SEALS,
                    libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL,
                ),
                "F_ADD_SEALS",
            )?;
        }
        let ptr = map(&fd, len)?;
        Ok((fd, ptr))
    }

    fn map(fd: &OwnedFd, len: usize) -> io::Result<*mut u8> {
        // SAFETY: a fresh shared mapping of `len` bytes of a descriptor we
        // hold; never unmapped (the process exits first).
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(p.cast())
    }

    /// Sends `bytes` with `fd` attached (SCM_RIGHTS), then the rest plainly.
    fn send_with_fd(sock: &UnixStream, bytes: &[u8], fd: Option<RawFd>) -> io::Result<()> {
        let mut iov = libc::iovec {
            iov_base: bytes.as_ptr() as *mut libc::c_void,
            iov_len: bytes.len(),
        };
        // SAFETY: CMSG_SPACE only computes a size.
        let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
        let mut cbuf = vec![0u64; space.div_ceil(8)];
        // SAFETY: all-zero is a valid msghdr.
        let mut m: libc::msghdr = unsafe { std::mem::zeroed() };
        m.msg_iov = &mut iov;
        m.msg_iovlen = 1;
        if let Some(fd) = fd {
            m.msg_control = cbuf.as_mut_ptr().cast();
            m.msg_controllen = space as _;
            // SAFETY: the control buffer has room for one cmsg with one fd.
            unsafe {
                let c = libc::CMSG_FIRSTHDR(&m);
                (*c).cmsg_level = libc::SOL_SOCKET;
                (*c).cmsg_type = libc::SCM_RIGHTS;
                (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
                std::ptr::copy_nonoverlapping(
                    (&fd as *const RawFd).cast::<u8>(),
                    libc::CMSG_DATA(c),
                    std::mem::size_of::<RawFd>(),
                );
            }
        }
        // SAFETY: m points at live buffers.
        let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &m, libc::MSG_NOSIGNAL) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut s = sock;
        s.write_all(&bytes[n as usize..])
    }

    /// Receives `buf.len()` bytes and the descriptor that came with them.
    fn recv_with_fd(sock: &UnixStream, buf: &mut [u8]) -> io::Result<Option<OwnedFd>> {
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: CMSG_SPACE only computes a size.
        let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
        let mut cbuf = vec![0u64; space.div_ceil(8)];
        // SAFETY: all-zero is a valid msghdr.
        let mut m: libc::msghdr = unsafe { std::mem::zeroed() };
        m.msg_iov = &mut iov;
        m.msg_iovlen = 1;
        m.msg_control = cbuf.as_mut_ptr().cast();
        m.msg_controllen = space as _;
        // SAFETY: m points at live buffers.
        let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut m, libc::MSG_CMSG_CLOEXEC) };
        if n <= 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "no handshake from the server",
            ));
        }
        let mut fd = None;
        // SAFETY: walking the control messages the kernel wrote into cbuf.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&m);
            if !c.is_null()
                && (*c).cmsg_level == libc::SOL_SOCKET
                && (*c).cmsg_type == libc::SCM_RIGHTS
            {
                let mut raw: RawFd = -1;
                std::ptr::copy_nonoverlapping(
                    libc::CMSG_DATA(c),
                    (&mut raw as *mut RawFd).cast::<u8>(),
                    std::mem::size_of::<RawFd>(),
                );
                fd = Some(OwnedFd::from_raw_fd(raw));
            }
        }
        let mut s = sock;
        s.read_exact(&mut buf[n as usize..])?;
        Ok(fd)
    }

    /// Reads exactly `buf.len()` bytes, keeping every descriptor attached
    /// to the first part (up to 4).
    fn recv_fds(sock: &UnixStream, buf: &mut [u8]) -> io::Result<Vec<OwnedFd>> {
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: CMSG_SPACE only computes a size.
        let space = unsafe { libc::CMSG_SPACE(4 * std::mem::size_of::<RawFd>() as u32) } as usize;
        let mut cbuf = vec![0u64; space.div_ceil(8)];
        // SAFETY: all-zero is a valid msghdr.
        let mut m: libc::msghdr = unsafe { std::mem::zeroed() };
        m.msg_iov = &mut iov;
        m.msg_iovlen = 1;
        m.msg_control = cbuf.as_mut_ptr().cast();
        m.msg_controllen = space as _;
        // SAFETY: m points at live buffers.
        let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut m, libc::MSG_CMSG_CLOEXEC) };
        if n <= 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "no client hello",
            ));
        }
        let mut fds = Vec::new();
        // SAFETY: walking the control messages the kernel wrote into cbuf;
        // each descriptor in them is new and ours.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&m);
            if !c.is_null()
                && (*c).cmsg_level == libc::SOL_SOCKET
                && (*c).cmsg_type == libc::SCM_RIGHTS
            {
                let data_len = (*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                for i in 0..data_len / std::mem::size_of::<RawFd>() {
                    let mut raw: RawFd = -1;
                    std::ptr::copy_nonoverlapping(
                        libc::CMSG_DATA(c).add(i * std::mem::size_of::<RawFd>()),
                        (&mut raw as *mut RawFd).cast::<u8>(),
                        std::mem::size_of::<RawFd>(),
                    );
                    fds.push(OwnedFd::from_raw_fd(raw));
                }
            }
        }
        let mut s = sock;
        s.read_exact(&mut buf[n as usize..])?;
        Ok(fds)
    }

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut v = (body.len() as u32).to_le_bytes().to_vec();
        v.extend_from_slice(body);
        v
    }

    /// The server role. START says how the handshake goes:
    /// `ok` (a correct one, ring capacity 4096), `bad-magic` / `bad-offsets`
    /// (segment header), `bad-hello` (hello magic), `hello-handles` (a Unix
    /// hello that lists handles), `no-fd` (no descriptor attached),
    /// `cap-mismatch` (the hello and the segment disagree on the ring size),
    /// `silent` (never answer), `flood-wakers` (a correct one, then the
    /// async client's wake-up descriptors are rung without end; prints
    /// `FLOODING`).
    pub(super) fn server(name: &str, start: &str) {
        let path = named_ipc::name::pipe_os_name(name).expect("name");
        let path = std::path::Path::new(&path);
        if let Some(dir) = path.parent() {
            use std::os::unix::fs::DirBuilderExt;
            let _ = std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir);
        }
        let _ = std::fs::remove_file(path);
        let l = UnixListener::bind(path).expect("bind");
        say("READY");
        let (sock, _) = l.accept().expect("accept");
        // Nobody else may connect; and the name is not left behind.
        drop(l);
        let _ = std::fs::remove_file(path);
        let mut hi = [0u8; 4 + 28];
        // An async client attaches its wake-up descriptors (eventfds) to its
        // hello: `flood-wakers` keeps them, to ring them without end.
        let wakers = recv_fds(&sock, &mut hi).expect("client hello");
        assert_eq!(&hi[..4], &28u32.to_le_bytes(), "client hello length");
        assert_eq!(&hi[4..12], b"NIPC-CL1", "client hello magic");
        if start == "silent" {
            say("HANDSHAKING");
            wait_stdin_eof();
            return;
        }
        let cap = 4096usize;
        let len = total(cap);
        let (fd, ptr) = segment(len).expect("segment");
        let mut h = [0u8; HEADER];
        h[..8].copy_from_slice(b"NIPC-CH1");
        h[8..12].copy_from_slice(&LAYOUT_VERSION.to_ne_bytes());
        let (r0, r1) = (HEADER as u64, (HEADER + CONTROL + cap) as u64);
        h[16..24].copy_from_slice(&(cap as u64).to_ne_bytes());
        h[24..32].copy_from_slice(&r0.to_ne_bytes());
        h[32..40].copy_from_slice(&r1.to_ne_bytes());
        h[40..48].copy_from_slice(&(len as u64).to_ne_bytes());
        match start {
            "bad-magic" => h[..8].copy_from_slice(b"NIPC-XXX"),
            "bad-offsets" => h[32..40].copy_from_slice(&(r1 + 8).to_ne_bytes()),
            "cap-mismatch" => {
                // A consistent header for a smaller ring than the hello says.
                let small = 2048u64;
                h[16..24].copy_from_slice(&small.to_ne_bytes());
                h[32..40].copy_from_slice(&(HEADER as u64 + 320 + small).to_ne_bytes());
                h[40..48].copy_from_slice(&(HEADER as u64 + 2 * (320 + small)).to_ne_bytes());
            }
            _ => {}
        }
        let seg = Seg {
            ptr,
            len,
            cap,
            tx: 1,
            rx: 0,
            tail: 0,
            sent: 0,
            last: None,
        };
        seg.write(0, &h);
        let mut hello = Vec::new();
        hello.extend_from_slice(if start == "bad-hello" {
            b"NIPC-HSX"
        } else {
            b"NIPC-HS1"
        });
        hello.extend_from_slice(&LAYOUT_VERSION.to_le_bytes());
        hello.extend_from_slice(&(16u32 << 20).to_le_bytes());
        hello.extend_from_slice(&(cap as u64).to_le_bytes());
        hello.extend_from_slice(&(len as u64).to_le_bytes());
        hello.extend_from_slice(&std::process::id().to_le_bytes());
        // Handles, wake-up descriptors, a reserved zero, handle values.
        if start == "hello-handles" {
            hello.extend_from_slice(&1u32.to_le_bytes());
            hello.extend_from_slice(&0u32.to_le_bytes());
            hello.extend_from_slice(&0u32.to_le_bytes());
            hello.extend_from_slice(&3u64.to_le_bytes());
        } else {
            hello.extend_from_slice(&[0u8; 12]);
        }
        let attach = (start != "no-fd").then(|| fd.as_raw_fd());
        send_with_fd(&sock, &frame(&hello), attach).expect("send hello");
        say("HANDSHAKEN");
        if start == "flood-wakers" {
            // Ring the client's wake-up descriptors without end, publishing
            // nothing: its async waits are woken again and again for nothing.
            assert!(
                !wakers.is_empty(),
                "the client attached no wake-up descriptors"
            );
            std::thread::spawn(move || loop {
                for fd in &wakers {
                    // SAFETY: writes 8 bytes from a live buffer to a
                    // descriptor we own; an error (a full counter) is fine.
                    unsafe { libc::write(fd.as_raw_fd(), (&1u64 as *const u64).cast(), 8) };
                }
            });
            say("FLOODING");
        }
        // Keep the socket open: its hang-up is how the victim learns we left.
        let _keep = sock;
        run(seg);
    }

    /// The client role: connects to a real channel server, does the
    /// handshake by hand, prints `CONNECTED`, then obeys commands.
    pub(super) fn client(name: &str) {
        let path = named_ipc::name::pipe_os_name(name).expect("name");
        let sock = UnixStream::connect(&path).expect("connect");
        sock.set_read_timeout(Some(PATIENCE)).expect("timeout");
        let mut hi = b"NIPC-CL1".to_vec();
        hi.extend_from_slice(&LAYOUT_VERSION.to_le_bytes());
        hi.extend_from_slice(&(64u32 << 10).to_le_bytes());
        // No ring size asked for: the server's; no wake-up descriptors (a
        // blocking client: the server wakes us through futexes).
        hi.extend_from_slice(&0u64.to_le_bytes());
        hi.extend_from_slice(&0u32.to_le_bytes());
        (&sock).write_all(&frame(&hi)).expect("client hello");
        let mut b = [0u8; 4 + 48];
        let fd = recv_with_fd(&sock, &mut b)
            .expect("server hello")
            .expect("no segment descriptor");
        assert_eq!(&b[..4], &48u32.to_le_bytes(), "server hello length");
        assert_eq!(&b[4..12], b"NIPC-HS1", "server hello magic");
        let cap = u64::from_le_bytes(b[4 + 16..4 + 24].try_into().expect("8")) as usize;
        let len = u64::from_le_bytes(b[4 + 24..4 + 32].try_into().expect("8")) as usize;
        assert_eq!(len, total(cap), "segment length");
        let ptr = map(&fd, len).expect("map");
        say("CONNECTED");
        let _keep = (sock, fd);
        run(Seg {
            ptr,
            len,
            cap,
            tx: 0,
            rx: 1,
            tail: 0,
            sent: 0,
            last: None,
        });
    }
}
