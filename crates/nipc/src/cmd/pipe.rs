//! `nipc pipe …`

use std::collections::HashMap;
use std::io::{self, BufRead, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use named_ipc::pipe::{
    list, ConnectOptions, Framed, ListenerOptions, PipeMode, PipeStream, ServerIdentity,
};
use named_ipc::{ErrorKind, Security};

use crate::cli::{
    ConnectArgs, Mode, ModeArgs, PipeCommand, RecvArgs, SendArgs, ServeArgs, ServerUserArg,
};
use crate::out;
use crate::usage;

pub fn run(cmd: PipeCommand) -> Result<()> {
    match cmd {
        PipeCommand::Serve(a) => serve(a),
        PipeCommand::Connect(a) => connect(a),
        PipeCommand::Send(a) => send(a),
        PipeCommand::Recv(a) => recv(a),
        PipeCommand::Path { name } => {
            out::line(&named_ipc::name::pipe_os_name(&name)?)?;
            Ok(())
        }
        PipeCommand::Ls => ls(),
    }
}

fn pipe_mode(m: Mode) -> PipeMode {
    match m {
        Mode::Message => PipeMode::Message,
        Mode::Byte | Mode::Framed => PipeMode::Byte,
    }
}

pub fn seconds(secs: f64, flag: &str) -> Result<Duration> {
    if !(0.0..=1e9).contains(&secs) {
        usage!("{flag} must be a number of seconds between 0 and 1e9, got {secs}");
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A stream that several threads use: `Arc` so the reader thread can own it.
#[derive(Clone)]
struct Shared(Arc<PipeStream>);

impl Read for Shared {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self.0).read(buf)
    }
}

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self.0).write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        (&*self.0).flush()
    }
}

/// Sending half of a connection in one of the three CLI modes. Sends from
/// several threads are serialised so frames never interleave.
struct Sender {
    stream: Arc<PipeStream>,
    mode: Mode,
    framed: Mutex<Framed<Shared>>,
}

impl Sender {
    fn new(stream: Arc<PipeStream>, mode: Mode) -> Result<Sender> {
        let mut framed = Framed::new(Shared(Arc::clone(&stream)));
        if mode == Mode::Framed {
            // On a Windows pipe of message type every write is a message: send
            // size and payload as two, for readers that ReadFile them apart.
            let ty = stream
                .pipe_type()
                .with_context(|| format!("cannot read the type of pipe {:?}", stream.name()))?;
            framed.set_split_writes(ty == PipeMode::Message);
        }
        Ok(Sender {
            framed: Mutex::new(framed),
            stream,
            mode,
        })
    }

    fn send(&self, msg: &[u8]) -> io::Result<()> {
        // One lock for every mode: a byte-mode `write_all` may take several
        // writes, and those must not interleave with another thread's either.
        let mut framed = self.framed.lock().unwrap_or_else(|p| p.into_inner());
        match self.mode {
            Mode::Message => self.stream.send(msg),
            Mode::Byte => framed.get_mut().write_all(msg),
            Mode::Framed => framed.send(msg),
        }
    }
}

/// Receiving half of a connection.
enum Receiver {
    Message(Arc<PipeStream>),
    Byte(Shared, Vec<u8>),
    Framed(Box<Framed<Shared>>),
}

impl Receiver {
    fn new(stream: &Arc<PipeStream>, m: &ModeArgs) -> Receiver {
        match m.mode {
            Mode::Message => Receiver::Message(Arc::clone(stream)),
            Mode::Byte => Receiver::Byte(Shared(Arc::clone(stream)), vec![0; 64 * 1024]),
            Mode::Framed => Receiver::Framed(Box::new(Framed::with_max_message(
                Shared(Arc::clone(stream)),
                m.max_message,
            ))),
        }
    }

    /// The next message (byte mode: the next chunk); `None` at end of stream.
    fn recv(&mut self) -> io::Result<Option<Vec<u8>>> {
        match self {
            Receiver::Message(s) => s.recv(),
            Receiver::Framed(f) => f.recv(),
            Receiver::Byte(s, buf) => {
                let n = s.read(buf)?;
                Ok((n > 0).then(|| buf[..n].to_vec()))
            }
        }
    }
}

fn print(msg: &[u8], mode: Mode, hex: bool) -> Result<()> {
    match mode {
        Mode::Byte => out::raw(msg, hex),
        _ => out::message(msg, hex),
    }
}

/// Reads stdin as the messages to send: lines without their end-of-line in
/// message and framed mode, raw chunks in byte mode. Calls `f` for each.
fn for_each_stdin_message(mode: Mode, mut f: impl FnMut(&[u8]) -> bool) -> Result<()> {
    let stdin = io::stdin();
    let mut lock = stdin.lock();
    if mode == Mode::Byte {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match lock.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).context("cannot read stdin"),
            };
            if !f(&buf[..n]) {
                return Ok(());
            }
        }
    }
    let mut line = Vec::new();
    loop {
        line.clear();
        if lock
            .read_until(b'\n', &mut line)
            .context("cannot read stdin")?
            == 0
        {
            return Ok(());
        }
        if line.last() == Some(&b'\n') {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        }
        if !f(&line) {
            return Ok(());
        }
    }
}

pub static SHUTDOWN: AtomicBool = AtomicBool::new(false);

/// SIGINT/SIGTERM (Ctrl-C, Ctrl-Break on Windows) ask for a clean shutdown.
pub fn install_shutdown_handler() {
    let _ = ctrlc::set_handler(|| SHUTDOWN.store(true, Ordering::SeqCst));
}

fn serve(a: ServeArgs) -> Result<()> {
    if a.max_instances == 0 || a.max_instances > 255 {
        usage!(
            "--max-instances must be 1..=254, or 255 for unlimited; got {}",
            a.max_instances
        );
    }
    let mut opts = ListenerOptions::new();
    opts.mode(pipe_mode(a.mode.mode))
        .max_instances(a.max_instances)
        .max_message_size(a.mode.max_message);
    if a.allow_all_users {
        opts.security(Security::LocalUsers);
    }
    let listener = opts.create(&a.name)?;
    install_shutdown_handler();
    eprintln!(
        "nipc: listening on pipe {:?} ({}), {:?} mode",
        a.name,
        listener.os_name(),
        a.mode.mode
    );
    let clients: Arc<Mutex<HashMap<u64, Arc<Sender>>>> = Arc::default();
    let first_left = Arc::new(AtomicBool::new(false));
    let fatal: Arc<Mutex<Option<anyhow::Error>>> = Arc::default();

    // stdin lines go to every connected client.
    {
        let clients = Arc::clone(&clients);
        let mode = a.mode.mode;
        std::thread::spawn(move || {
            let _ = for_each_stdin_message(mode, |msg| {
                let targets: Vec<_> = clients
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .values()
                    .cloned()
                    .collect();
                for t in targets {
                    if let Err(e) = t.send(msg) {
                        eprintln!(
                            "nipc: pipe {:?}: cannot send to a client: {e}",
                            t.stream.name()
                        );
                    }
                }
                true
            });
        });
    }

    let next_id = AtomicU64::new(1);
    let stop = || SHUTDOWN.load(Ordering::SeqCst) || (a.once && first_left.load(Ordering::SeqCst));
    while !stop() {
        if let Some(e) = fatal.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Err(e);
        }
        let stream = match listener.accept_timeout(Duration::from_millis(100)) {
            Ok(s) => Arc::new(s),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => continue,
            Err(e) => {
                eprintln!("nipc: {e}");
                continue;
            }
        };
        let id = next_id.fetch_add(1, Ordering::Relaxed);
        let who = stream
            .peer_pid()
            .map(|p| format!("client pid {p}"))
            .unwrap_or_else(|_| format!("client #{id}"));
        let sender = match Sender::new(Arc::clone(&stream), a.mode.mode) {
            Ok(s) => Arc::new(s),
            Err(e) => {
                eprintln!("nipc: {who}: {}", crate::describe(&e));
                continue;
            }
        };
        clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, Arc::clone(&sender));
        // Announced only once stdin lines reach this client.
        eprintln!("nipc: {who} connected");
        let mut rx = Receiver::new(&stream, &a.mode);
        let (clients, first_left, fatal) = (
            Arc::clone(&clients),
            Arc::clone(&first_left),
            Arc::clone(&fatal),
        );
        let (echo, hex, mode, name) = (a.echo, a.hex, a.mode.mode, a.name.clone());
        std::thread::Builder::new()
            .stack_size(128 * 1024)
            .spawn(move || {
                loop {
                    match rx.recv() {
                        Ok(Some(msg)) => {
                            if let Err(e) = print(&msg, mode, hex) {
                                *fatal.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                                break;
                            }
                            if echo {
                                if let Err(e) = sender.send(&msg) {
                                    eprintln!("nipc: pipe {name:?}, {who}: cannot echo: {e}");
                                    break;
                                }
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            // A bad frame or a broken client: report it, drop that
                            // client, keep serving the others.
                            eprintln!("nipc: pipe {name:?}, {who}: {e}; dropping this client");
                            break;
                        }
                    }
                }
                clients
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
                eprintln!("nipc: {who} left");
                first_left.store(true, Ordering::SeqCst);
            })
            .context("cannot start a client thread")?;
    }
    if let Some(e) = fatal.lock().unwrap_or_else(|p| p.into_inner()).take() {
        return Err(e);
    }
    Ok(())
}

/// Connects to `name` as the client options on the command line say.
fn connect_to(name: &str, m: &ModeArgs, timeout: f64, who: &ServerUserArg) -> Result<PipeStream> {
    let t = seconds(timeout, "--timeout")?;
    let identity = match who.server_user.as_str() {
        "me" => ServerIdentity::SameUser,
        "any" => ServerIdentity::Any,
        user => match user.parse() {
            Ok(u) => ServerIdentity::User(u),
            Err(e) => usage!("--server-user: {e}; use me, any, or a uid (Unix) / SID (Windows)"),
        },
    };
    let mut o = ConnectOptions::new();
    o.mode(pipe_mode(m.mode))
        .max_message_size(m.max_message)
        .server_identity(identity);
    if !t.is_zero() {
        o.timeout(t);
    }
    o.connect(name).map_err(|e| {
        // The library names its API; say what to pass here instead.
        if e.kind() == ErrorKind::PermissionDenied && e.to_string().contains("ServerIdentity") {
            anyhow::anyhow!(
                "{e} (nipc: pass --server-user any to accept any server, or --server-user \
                 USER for the one running as USER)"
            )
        } else {
            e.into()
        }
    })
}

fn connect(a: ConnectArgs) -> Result<()> {
    let linger = seconds(a.linger, "--linger")?;
    let stream = Arc::new(connect_to(&a.name, &a.mode, a.timeout.timeout, &a.server)?);
    let sender = Sender::new(Arc::clone(&stream), a.mode.mode)?;
    let mut rx = Receiver::new(&stream, &a.mode);
    let (mode, hex) = (a.mode.mode, a.hex);
    let (done_tx, done_rx) = std::sync::mpsc::channel::<Result<()>>();
    std::thread::spawn(move || {
        let r = (|| -> Result<()> {
            while let Some(msg) = rx.recv()? {
                print(&msg, mode, hex)?;
            }
            Ok(())
        })();
        let _ = done_tx.send(r);
    });
    let mut send_err = None;
    for_each_stdin_message(a.mode.mode, |msg| {
        if let Ok(r) = done_rx.try_recv() {
            // The peer closed (or failed) while we were reading stdin.
            finish(r);
        }
        match sender.send(msg) {
            Ok(()) => true,
            Err(e) => {
                send_err = Some(e);
                false
            }
        }
    })?;
    let _ = (&*stream).flush();
    match done_rx.recv_timeout(if send_err.is_some() {
        Duration::from_secs(1)
    } else {
        linger
    }) {
        Ok(r) => finish(r),
        Err(_) => {
            if let Some(e) = send_err {
                if e.kind() != io::ErrorKind::BrokenPipe {
                    return Err(e).context(format!("cannot send to pipe {:?}", a.name));
                }
            }
            Ok(())
        }
    }
}

/// Ends the process with the reader thread's outcome (the main thread may be
/// blocked reading stdin, so returning is not enough).
fn finish(r: Result<()>) -> ! {
    let code = match r {
        Ok(()) => 0,
        Err(e) if e.chain().any(|c| c.is::<out::StdoutClosed>()) => 0,
        Err(e) => {
            eprintln!("nipc: error: {}", crate::describe(&e));
            1
        }
    };
    let _ = io::stdout().flush();
    std::process::exit(code)
}

fn send(a: SendArgs) -> Result<()> {
    let stream = Arc::new(connect_to(&a.name, &a.mode, a.timeout.timeout, &a.server)?);
    let sender = Sender::new(Arc::clone(&stream), a.mode.mode)?;
    for m in &a.messages {
        sender
            .send(m.as_bytes())
            .with_context(|| format!("cannot send to pipe {:?}", a.name))?;
    }
    (&*stream)
        .flush()
        .with_context(|| format!("cannot send to pipe {:?}", a.name))?;
    Ok(())
}

fn recv(a: RecvArgs) -> Result<()> {
    let stream = Arc::new(connect_to(&a.name, &a.mode, a.timeout.timeout, &a.server)?);
    let mut rx = Receiver::new(&stream, &a.mode);
    let mut n = 0u64;
    while a.count.is_none_or(|c| n < c) {
        match rx
            .recv()
            .with_context(|| format!("cannot receive from pipe {:?}", a.name))?
        {
            Some(msg) => print(&msg, a.mode.mode, a.hex)?,
            None => break,
        }
        n += 1;
    }
    Ok(())
}

fn ls() -> Result<()> {
    for p in list().context("cannot list pipes")? {
        let state = match p.alive {
            Some(true) => "live",
            Some(false) => "stale",
            None => "unknown",
        };
        let pid = p
            .server_pid
            .map_or_else(|| "-".to_owned(), |p| p.to_string());
        out::line(&format!("{}\t{state}\t{pid}\t{}", p.name, p.os_name))?;
    }
    Ok(())
}
