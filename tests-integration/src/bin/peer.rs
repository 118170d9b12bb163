//! Helper process for cross-process tests. Each role prints `READY` (servers) or
//! its result lines on stdout; the test reads them as readiness signals. Roles that
//! wait do so until stdin closes, so a test ends them by dropping the handle (or
//! kills them to test crashes).
//!
//! Usage: `peer ROLE ARGS...` — see `main`.

use std::io::{self, BufRead, Read, Write};
use std::time::Duration;

use named_ipc::channel::{ChannelOptions, ShmStream};
use named_ipc::pipe::{Framed, ListenerOptions, PipeListener, PipeMode, PipeStream};
use named_ipc::shm::{Protection, SegmentOptions, ShmSegment};
use named_ipc::sync::{EventMode, NamedEvent, NamedMutex};

fn say(line: &str) {
    let mut o = io::stdout().lock();
    let _ = writeln!(o, "{line}");
    let _ = o.flush();
}

fn mode(s: &str) -> PipeMode {
    match s {
        "message" => PipeMode::Message,
        "byte" | "framed" => PipeMode::Byte,
        other => panic!("bad mode {other}"),
    }
}

/// Exits the process when stdin reaches EOF (the test dropped our stdin).
fn exit_on_stdin_eof() {
    std::thread::spawn(|| {
        let mut sink = Vec::new();
        let _ = io::stdin().read_to_end(&mut sink);
        std::process::exit(0);
    });
}

fn wait_stdin_eof() {
    let mut sink = Vec::new();
    let _ = io::stdin().read_to_end(&mut sink);
}

/// Deterministic payload: message `seq` of `len` bytes.
fn payload(seq: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seq.wrapping_mul(31).wrapping_add(i as u64 * 7) % 251) as u8)
        .collect()
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize, what: &str) -> T {
    args.get(i)
        .unwrap_or_else(|| panic!("missing {what}"))
        .parse()
        .unwrap_or_else(|_| panic!("bad {what}"))
}

fn serve_echo(conn: PipeStream, wire: &str) {
    let r: io::Result<()> = (|| {
        match wire {
            "message" => {
                let mut buf = Vec::new();
                while conn.recv_into(&mut buf)?.is_some() {
                    conn.send(&buf)?;
                }
            }
            "framed" => {
                let mut f = Framed::new(&conn);
                while let Some(m) = f.recv()? {
                    f.send(&m)?;
                }
            }
            _ => {
                let mut buf = vec![0u8; 65536];
                loop {
                    let n = (&conn).read(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    (&conn).write_all(&buf[..n])?;
                }
            }
        }
        Ok(())
    })();
    if let Err(e) = r {
        say(&format!("CLIENT-ERROR {:?} {e}", e.kind()));
    }
}

async fn async_clients(name: String, n: u64) {
    use named_ipc::tokio::PipeStream;
    let mut tasks = Vec::new();
    let (tx, rx) = tokio::sync::watch::channel(false);
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<()>(n as usize);
    for i in 0..n {
        let name = name.clone();
        let mut go = rx.clone();
        let done = done_tx.clone();
        tasks.push(tokio::spawn(async move {
            let c = PipeStream::connect_timeout(&name, Duration::from_secs(60))
                .await
                .expect("connect");
            done.send(()).await.expect("report");
            // Everyone holds a connection before anyone talks.
            go.wait_for(|g| *g).await.expect("go");
            let m = payload(i, (i % 300) as usize);
            c.send(&m).await.expect("send");
            let back = c.recv().await.expect("recv").expect("eof");
            assert_eq!(back, m, "echo of client {i} differs");
            c
        }));
    }
    drop(done_tx);
    for _ in 0..n {
        done_rx.recv().await.expect("a client failed to connect");
    }
    say("CONNECTED");
    tx.send(true).expect("go");
    let mut conns = Vec::new();
    for t in tasks {
        conns.push(t.await.expect("client task"));
    }
    drop(conns);
}

async fn async_echo(name: String, max: u32) {
    use named_ipc::tokio::PipeListener;
    let mut o = ListenerOptions::new();
    o.max_message_size(max);
    let l = PipeListener::bind_with(&name, &o).expect("bind");
    say(&format!("READY {}", std::process::id()));
    exit_on_stdin_eof();
    loop {
        let conn = l.accept().await.expect("accept");
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let r: io::Result<()> = async {
                while conn.recv_into(&mut buf).await?.is_some() {
                    conn.send(&buf).await?;
                }
                Ok(())
            }
            .await;
            if let Err(e) = r {
                say(&format!("CLIENT-ERROR {:?} {e}", e.kind()));
            }
        });
    }
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

fn main() {
    raise_fd_limit();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let role = args.first().map(String::as_str).unwrap_or("");
    match role {
        // echo NAME WIRE MAX_INSTANCES MAX_MESSAGE: echo server, one thread per client.
        "echo" => {
            let name = &args[1];
            let wire = args[2].clone();
            let mut o = ListenerOptions::new();
            o.mode(mode(&wire))
                .max_instances(arg(&args, 3, "max instances"))
                .max_message_size(arg(&args, 4, "max message"));
            let l = o.create(name).expect("bind");
            say(&format!("READY {}", std::process::id()));
            exit_on_stdin_eof();
            for conn in l.incoming() {
                let conn = conn.expect("accept");
                let wire = wire.clone();
                std::thread::Builder::new()
                    .stack_size(64 * 1024)
                    .spawn(move || serve_echo(conn, &wire))
                    .expect("thread");
            }
        }
        // send-then-exit NAME COUNT SIZE HOW: accept one client, send COUNT messages,
        // then leave by `drop`, `disconnect` or `exit` (process exit, no cleanup).
        "send-then-exit" => {
            let l = bind(&args[1]);
            say("READY");
            let count: u64 = arg(&args, 2, "count");
            let size: usize = arg(&args, 3, "size");
            let conn = l.accept().expect("accept");
            for seq in 0..count {
                conn.send(&payload(seq, size)).expect("send");
            }
            match args[4].as_str() {
                "disconnect" => conn.disconnect().expect("disconnect"),
                "exit" => std::process::exit(0),
                _ => drop(conn),
            }
        }
        // server-hold NAME: accept one client, report it, block in recv until the
        // client goes away, and report how recv ended.
        "server-hold" => {
            let l = bind(&args[1]);
            say("READY");
            let conn = l.accept().expect("accept");
            say("ACCEPTED");
            match conn.recv() {
                Ok(None) => say("RECV-END eof"),
                Ok(Some(m)) => say(&format!("RECV-END message {}", m.len())),
                Err(e) => say(&format!("RECV-END error {:?}", e.kind())),
            }
        }
        // connect-hold NAME: connect, report, then wait for stdin EOF (or a kill).
        "connect-hold" => {
            let c =
                PipeStream::connect_timeout(&args[1], Duration::from_secs(20)).expect("connect");
            say(&format!("CONNECTED {}", c.peer_pid().unwrap_or(0)));
            wait_stdin_eof();
        }
        // client-recv-block NAME: connect and block in recv; report how it ended.
        "client-recv-block" => {
            let c =
                PipeStream::connect_timeout(&args[1], Duration::from_secs(20)).expect("connect");
            say("CONNECTED");
            match c.recv() {
                Ok(None) => say("RECV-END eof"),
                Ok(Some(m)) => say(&format!("RECV-END message {}", m.len())),
                Err(e) => say(&format!("RECV-END error {:?}", e.kind())),
            }
        }
        // client-echo NAME COUNT SIZES: connect, send and check COUNT echoes of each
        // size (comma-separated), print OK.
        "client-echo" => {
            let c =
                PipeStream::connect_timeout(&args[1], Duration::from_secs(20)).expect("connect");
            c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
            let count: u64 = arg(&args, 2, "count");
            let sizes: Vec<usize> = args[3].split(',').map(|s| s.parse().unwrap()).collect();
            let mut buf = Vec::new();
            for seq in 0..count {
                for &size in &sizes {
                    let p = payload(seq, size);
                    c.send(&p).expect("send");
                    c.recv_into(&mut buf).expect("recv").expect("eof");
                    assert_eq!(buf, p, "echo of message {seq} ({size} bytes) differs");
                }
            }
            say("OK");
        }
        // info-server NAME: accept one client and tell it what we see of it.
        "info-server" => {
            let l = bind(&args[1]);
            say("READY");
            let conn = l.accept().expect("accept");
            let pid = conn
                .peer_pid()
                .map(|p| p.to_string())
                .unwrap_or_else(|e| format!("error:{e}"));
            let user = conn
                .peer_user()
                .map(|u| u.to_string())
                .unwrap_or_else(|e| format!("error:{e}"));
            let me = named_ipc::pipe::UserId::current()
                .map(|u| u.to_string())
                .unwrap_or_default();
            conn.send(format!("pid={pid} user={user} server_user={me}").as_bytes())
                .expect("send");
            let _ = conn.recv();
        }
        // bind NAME: try to create the pipe and report; hold it until stdin EOF.
        "bind" => match ListenerOptions::new().create(&args[1]) {
            Ok(_l) => {
                say("BOUND");
                wait_stdin_eof();
            }
            Err(e) => say(&format!("ERR {:?} {e}", e.kind())),
        },
        // client-many NAME N: hold N connections at once, then echo a message on
        // each, print OK.
        "client-many" => {
            let n: usize = arg(&args, 2, "count");
            let conns: Vec<PipeStream> = (0..n)
                .map(|_| {
                    PipeStream::connect_timeout(&args[1], Duration::from_secs(60)).expect("connect")
                })
                .collect();
            say("CONNECTED");
            for (i, c) in conns.iter().enumerate() {
                c.send(&payload(i as u64, 100)).expect("send");
            }
            for (i, c) in conns.iter().enumerate() {
                c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
                assert_eq!(
                    c.recv().expect("recv").expect("eof"),
                    payload(i as u64, 100)
                );
            }
            say("OK");
            wait_stdin_eof();
        }
        // async-clients NAME N: N async clients (one task each, on a
        // multi-thread runtime) connect at once, print CONNECTED when all
        // are, then each echoes one message and checks it; print OK.
        "async-clients" => {
            let name = args[1].clone();
            let n: u64 = arg(&args, 2, "count");
            tokio::runtime::Runtime::new()
                .expect("runtime")
                .block_on(async_clients(name, n));
            say("OK");
            wait_stdin_eof();
        }
        // async-echo NAME MAX_MESSAGE: async echo server, one task per client.
        "async-echo" => {
            let name = args[1].clone();
            let max: u32 = arg(&args, 2, "max message");
            tokio::runtime::Runtime::new()
                .expect("runtime")
                .block_on(async_echo(name, max));
        }
        // shm-create NAME SIZE TEXT: create a segment, write TEXT at 0, then serve
        // stdin commands until EOF: `read OFF LEN` prints hex, `write OFF TEXT`
        // writes, `add OFF N` adds 1 to the u32 at OFF N times (atomically).
        "shm-create" => {
            let seg = ShmSegment::create(&args[1], arg(&args, 2, "size")).expect("create");
            seg.write_at(0, args[3].as_bytes()).expect("write");
            say("READY");
            shm_commands(&seg);
        }
        // shm-open NAME ACCESS: open an existing segment and serve stdin commands.
        "shm-open" => {
            let seg = ShmSegment::open(&args[1], access(&args[2])).expect("open");
            say(&format!("READY {}", seg.len()));
            shm_commands(&seg);
        }
        // shm-file PATH ACCESS: map a file and serve stdin commands.
        "shm-file" => {
            let seg = ShmSegment::map_file(&args[1], access(&args[2])).expect("map");
            say(&format!("READY {}", seg.len()));
            shm_commands(&seg);
        }
        // shm-token TOKEN: map a segment inherited from the parent.
        "shm-token" => {
            let seg = ShmSegment::from_child_token(&args[1], Protection::ReadWrite).expect("token");
            say(&format!("READY {}", seg.len()));
            shm_commands(&seg);
        }
        // shm-keep NAME SIZE: create a segment that outlives this process, exit.
        "shm-keep" => {
            let seg = SegmentOptions::new()
                .remove_on_drop(false)
                .create(&args[1], arg(&args, 2, "size"))
                .expect("create");
            drop(seg);
            say("DONE");
        }
        // own KIND NAME: create a segment (4096 bytes), mutex or event named NAME
        // (fails if it exists), report `READY`, wait for stdin EOF, then drop it
        // (the creator's drop removes what it still owns).
        "own" => {
            let name = &args[2];
            let held: Box<dyn std::any::Any> = match args[1].as_str() {
                "segment" => Box::new(ShmSegment::create(name, 4096).expect("create segment")),
                "mutex" => Box::new(NamedMutex::create(name).expect("create mutex")),
                "event" => Box::new(
                    NamedEvent::create(name, EventMode::ManualReset, false).expect("create event"),
                ),
                other => panic!("bad kind {other}"),
            };
            say("READY");
            wait_stdin_eof();
            drop(held);
            say("DROPPED");
        }
        // open KIND NAME: open an existing segment, mutex or event; print `OK`
        // or `ERR <ErrorKind> <message>`.
        "open" => {
            let name = &args[2];
            let r = match args[1].as_str() {
                "segment" => ShmSegment::open(name, Protection::ReadOnly).map(drop),
                "mutex" => NamedMutex::open(name).map(drop),
                "event" => NamedEvent::open(name).map(drop),
                other => panic!("bad kind {other}"),
            };
            match r {
                Ok(()) => say("OK"),
                Err(e) => say(&format!("ERR {:?} {e}", e.kind())),
            }
        }
        // try-create KIND NAME: create and drop a segment, mutex or event; print
        // `OK` or `ERR <ErrorKind> <message>`.
        "try-create" => {
            let name = &args[2];
            let r = match args[1].as_str() {
                "segment" => ShmSegment::create(name, 4096).map(drop),
                "mutex" => NamedMutex::create(name).map(drop),
                "event" => NamedEvent::create(name, EventMode::AutoReset, false).map(drop),
                other => panic!("bad kind {other}"),
            };
            match r {
                Ok(()) => say("OK"),
                Err(e) => say(&format!("ERR {:?} {e}", e.kind())),
            }
        }
        // mutex-hold NAME: lock the mutex, report, wait for stdin EOF (or a kill).
        "mutex-hold" => {
            let m = NamedMutex::open_or_create(&args[1]).expect("mutex");
            let g = m.lock().expect("lock");
            say(if g.abandoned() {
                "LOCKED abandoned"
            } else {
                "LOCKED"
            });
            wait_stdin_eof();
            drop(g);
        }
        // mutex-count MUTEX SEG N: N times, under the mutex, read the u64 at 0 of
        // SEG, yield, and write it back plus one (a race without the mutex).
        "mutex-count" => {
            let m = NamedMutex::open(&args[1]).expect("mutex");
            let seg = ShmSegment::open(&args[2], Protection::ReadWrite).expect("segment");
            let n: u64 = arg(&args, 3, "count");
            say("READY");
            for _ in 0..n {
                let g = m.lock().expect("lock");
                let mut b = [0u8; 8];
                seg.read_at(0, &mut b).unwrap();
                std::thread::yield_now();
                seg.write_at(0, &(u64::from_le_bytes(b) + 1).to_le_bytes())
                    .unwrap();
                drop(g);
            }
            say("DONE");
        }
        // event-wait NAME MS: wait on the event up to MS ms, report the outcome.
        "event-wait" => {
            let e = NamedEvent::open(&args[1]).expect("event");
            say("WAITING");
            let got = e
                .wait_timeout(Duration::from_millis(arg(&args, 2, "ms")))
                .expect("wait");
            say(if got { "SIGNALLED" } else { "TIMEOUT" });
        }
        // event-wait-threads NAME N MS: N threads wait on the event up to MS ms
        // each; prints `WAITING TID,TID,…` (Linux thread ids, 0 elsewhere) once
        // every thread is about to wait, then `RESULT S/N` with S the number
        // of threads whose wait saw the event set.
        "event-wait-threads" => {
            let e = std::sync::Arc::new(NamedEvent::open(&args[1]).expect("event"));
            let n: usize = arg(&args, 2, "threads");
            let ms: u64 = arg(&args, 3, "ms");
            let (tx, rx) = std::sync::mpsc::channel();
            let threads: Vec<_> = (0..n)
                .map(|_| {
                    let (e, tx) = (e.clone(), tx.clone());
                    std::thread::spawn(move || {
                        tx.send(thread_id()).expect("send");
                        e.wait_timeout(Duration::from_millis(ms)).expect("wait")
                    })
                })
                .collect();
            let tids: Vec<String> = (0..n)
                .map(|_| rx.recv().expect("tid").to_string())
                .collect();
            say(&format!("WAITING {}", tids.join(",")));
            let got = threads
                .into_iter()
                .map(|t| t.join().expect("waiter"))
                .filter(|&g| g)
                .count();
            say(&format!("RESULT {got}/{n}"));
        }
        // event-set NAME: set the event (creating an auto-reset one if needed).
        "event-set" => {
            let e =
                NamedEvent::open_or_create(&args[1], EventMode::AutoReset, false).expect("event");
            e.set().expect("set");
            say("SET");
            wait_stdin_eof();
        }
        // chan-echo NAME CAPACITY: channel echo server, a thread per client.
        "chan-echo" => {
            let l = ChannelOptions::new()
                .capacity(arg(&args, 2, "capacity"))
                .bind(&args[1])
                .expect("bind");
            say("READY");
            exit_on_stdin_eof();
            loop {
                // A client that leaves during the handshake (e.g. one that
                // refused this server) costs only its own connection.
                let s = match l.accept() {
                    Ok(s) => s,
                    Err(e) => {
                        say(&format!("CLIENT-ERROR {:?} {e}", e.kind()));
                        continue;
                    }
                };
                std::thread::spawn(move || {
                    let mut buf = Vec::new();
                    let r: io::Result<()> = (|| {
                        while s.recv_into(&mut buf)?.is_some() {
                            s.send(&buf)?;
                        }
                        Ok(())
                    })();
                    if let Err(e) = r {
                        say(&format!("CLIENT-ERROR {:?} {e}", e.kind()));
                    }
                });
            }
        }
        // chan-send-then-exit NAME COUNT SIZE HOW: accept one client, send COUNT
        // messages, then `drop` the stream or `exit` the process.
        "chan-send-then-exit" => {
            let l = ChannelOptions::new().bind(&args[1]).expect("bind");
            say("READY");
            let s = l.accept().expect("accept");
            for seq in 0..arg::<u64>(&args, 2, "count") {
                s.send(&payload(seq, arg(&args, 3, "size"))).expect("send");
            }
            if args[4] == "exit" {
                std::process::exit(0);
            }
            drop(s);
            say("DONE");
            wait_stdin_eof();
        }
        // chan-hold NAME: accept one client and never read or write.
        "chan-hold" => {
            let l = ChannelOptions::new()
                .capacity(4096)
                .bind(&args[1])
                .expect("bind");
            say("READY");
            let _s = l.accept().expect("accept");
            say("ACCEPTED");
            wait_stdin_eof();
        }
        // chan-connect-hold NAME: connect, never read or write.
        "chan-connect-hold" => {
            let _s =
                ShmStream::connect_timeout(&args[1], Duration::from_secs(30)).expect("connect");
            say("CONNECTED");
            wait_stdin_eof();
        }
        // chan-sink NAME: accept one client; check that messages carry
        // sequence numbers 0, 1, 2, ... in their first 8 bytes, and that the
        // rest is the deterministic payload; print the count at EOF.
        "chan-sink" => {
            let l = ChannelOptions::new().bind(&args[1]).expect("bind");
            say("READY");
            let s = l.accept().expect("accept");
            let mut buf = Vec::new();
            let mut n = 0u64;
            while s.recv_into(&mut buf).expect("recv").is_some() {
                let seq = u64::from_le_bytes(buf[..8].try_into().expect("8 bytes"));
                assert_eq!(seq, n, "message out of order or lost");
                assert!(
                    buf[8..] == payload(seq, buf.len() - 8),
                    "message {seq} corrupted"
                );
                n += 1;
            }
            say(&format!("GOT {n}"));
        }
        // echo-as UID PATH (Unix, started as root): become UID, then serve
        // message-mode echo on the absolute socket PATH, open to every user.
        "echo-as" => {
            become_user(arg(&args, 1, "uid"));
            let l = ListenerOptions::new()
                .security(named_ipc::Security::LocalUsers)
                .create(&args[2])
                .expect("bind");
            say("READY");
            exit_on_stdin_eof();
            for conn in l.incoming() {
                let conn = conn.expect("accept");
                std::thread::spawn(move || serve_echo(conn, "message"));
            }
        }
        // chan-hostile NAME SLOTS: a fake channel server (Windows). It answers a
        // client's hello with a handshake naming the 5 handle values in SLOTS
        // (comma-separated: a number, or `event`, `mutex`, `section:SIZE`,
        // `reserved:SIZE` (a SEC_RESERVE section) for a real object of this
        // process, kept open), then reports what the client
        // did: `CLIENT-SAID <text>`, `CLIENT-LEFT` or `CLIENT-ERROR <kind>`.
        "chan-hostile" => hostile_channel_server(&args[1], &args[2]),
        // lines: print stdin lines back with a prefix (used to test spawning).
        "lines" => {
            for line in io::stdin().lock().lines() {
                say(&format!("got {}", line.unwrap()));
            }
        }
        other => {
            eprintln!("peer: unknown role {other:?}");
            std::process::exit(2);
        }
    }
}

/// This thread's kernel id (Linux), for tests that check where it sleeps.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn thread_id() -> i64 {
    // SAFETY: gettid has no preconditions and cannot fail.
    i64::from(unsafe { libc::gettid() })
}

#[cfg(not(target_os = "linux"))]
fn thread_id() -> i64 {
    0
}

fn access(s: &str) -> Protection {
    match s {
        "ro" => Protection::ReadOnly,
        "rw" => Protection::ReadWrite,
        "cow" => Protection::CopyOnWrite,
        other => panic!("bad access {other}"),
    }
}

/// Serves `read`/`write`/`add` commands on stdin against `seg` until EOF.
fn shm_commands(seg: &ShmSegment) {
    for line in io::stdin().lock().lines() {
        let line = line.expect("stdin");
        let mut parts = line.splitn(3, ' ');
        let cmd = parts.next().unwrap_or("");
        let off: u64 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        let rest = parts.next().unwrap_or("");
        match cmd {
            "read" => {
                let mut buf = vec![0u8; rest.parse().unwrap_or(0)];
                match seg.read_at(off, &mut buf) {
                    Ok(()) => say(&format!("DATA {}", String::from_utf8_lossy(&buf))),
                    Err(e) => say(&format!("ERR {:?} {e}", e.kind())),
                }
            }
            "write" => match seg.write_at(off, rest.as_bytes()) {
                Ok(()) => say("OK"),
                Err(e) => say(&format!("ERR {:?} {e}", e.kind())),
            },
            "add" => {
                let a = seg.atomic_u32(off).expect("atomic");
                for _ in 0..rest.parse::<u32>().unwrap_or(0) {
                    a.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                say("OK");
            }
            other => say(&format!("ERR unknown command {other:?}")),
        }
    }
}

/// Drops root for `uid` (group too), for the `echo-as` role.
#[cfg(unix)]
#[allow(unsafe_code)]
fn become_user(uid: u32) {
    // SAFETY: plain credential calls; the results are checked.
    unsafe {
        assert_eq!(libc::setgid(uid), 0, "setgid {uid}");
        assert_eq!(libc::setuid(uid), 0, "setuid {uid}");
    }
}

#[cfg(not(unix))]
fn become_user(_uid: u32) {
    eprintln!("peer: echo-as is a Unix role");
    std::process::exit(2);
}

/// See the `chan-hostile` role.
#[cfg(windows)]
#[allow(unsafe_code)]
fn hostile_channel_server(name: &str, slots: &str) {
    use windows_sys::Win32::Foundation::INVALID_HANDLE_VALUE;
    use windows_sys::Win32::System::Memory::{CreateFileMappingW, PAGE_READWRITE, SEC_RESERVE};
    use windows_sys::Win32::System::Threading::{CreateEventW, CreateMutexW};
    let (null, nil) = (std::ptr::null(), std::ptr::null());
    let values: Vec<u64> = slots
        .split(',')
        .map(|slot| {
            let h = match slot {
                // SAFETY: an unnamed auto-reset event; kept open until exit.
                "event" => unsafe { CreateEventW(null, 0, 0, nil) },
                // SAFETY: an unnamed mutex; kept open until exit.
                "mutex" => unsafe { CreateMutexW(null, 0, nil) },
                s if s.starts_with("section:") || s.starts_with("reserved:") => {
                    let (kind, size) = s.split_once(':').expect("kind:size");
                    let size: u32 = size.parse().expect("section size");
                    let flags = if kind == "reserved" { SEC_RESERVE } else { 0 };
                    // SAFETY: an unnamed section; kept open until exit.
                    unsafe {
                        CreateFileMappingW(
                            INVALID_HANDLE_VALUE,
                            null,
                            PAGE_READWRITE | flags,
                            0,
                            size,
                            nil,
                        )
                    }
                }
                number => return number.parse().expect("slot value"),
            };
            assert!(!h.is_null(), "cannot create {slot}");
            h as usize as u64
        })
        .collect();
    let l = bind(name);
    say("READY");
    let conn = l.accept().expect("accept");
    let hi = conn.recv().expect("client hello").expect("client left");
    assert_eq!(&hi[..8], b"NIPC-CL1", "not a channel client");
    // The handshake of channel/header.rs, version 4, 4 KiB rings.
    let capacity = 4096u64;
    let mut hello = b"NIPC-HS1".to_vec();
    hello.extend_from_slice(&4u32.to_le_bytes());
    hello.extend_from_slice(&(16u32 << 20).to_le_bytes());
    hello.extend_from_slice(&capacity.to_le_bytes());
    hello.extend_from_slice(&(64 + 2 * (320 + capacity)).to_le_bytes());
    hello.extend_from_slice(&std::process::id().to_le_bytes());
    hello.extend_from_slice(&(values.len() as u32).to_le_bytes());
    for v in &values {
        hello.extend_from_slice(&v.to_le_bytes());
    }
    conn.send(&hello).expect("send");
    match conn.recv() {
        Ok(None) => say("CLIENT-LEFT"),
        Ok(Some(m)) => say(&format!("CLIENT-SAID {}", String::from_utf8_lossy(&m))),
        Err(e) => say(&format!("CLIENT-ERROR {:?}", e.kind())),
    }
}

#[cfg(not(windows))]
fn hostile_channel_server(_name: &str, _slots: &str) {
    eprintln!("peer: chan-hostile is a Windows role");
    std::process::exit(2);
}

/// A default (message-mode) listener.
fn bind(name: &str) -> PipeListener {
    PipeListener::bind(name).expect("bind")
}
