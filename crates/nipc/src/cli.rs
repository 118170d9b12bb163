//! Command-line syntax. Parsing only; `cmd/*` validates and runs.

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Named pipes and shared memory from the command line (named-ipc).
///
/// Exit status: 0 success, 1 runtime error, 2 usage error.
#[derive(Debug, Parser)]
#[command(name = "nipc", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Named pipes: serve, connect, send, recv, path, ls.
    #[command(subcommand)]
    Pipe(PipeCommand),
    /// Named shared memory: create, write, read, rm, ls, gc.
    #[command(subcommand)]
    Shm(ShmCommand),
    /// Runs three scenarios (message pipe, size-prefixed byte pipe, shared memory
    /// with a mutex and an event) with two real processes and shows who did what.
    Demo,
    /// Two-process benchmarks: the shared-memory channel and the pipe against
    /// raw baselines measured in the same run.
    Bench(BenchArgs),
    /// Internal: the benchmark's second process.
    #[command(name = "__bench-peer", hide = true)]
    BenchPeer(BenchPeerArgs),
    /// Internal: the demo's second process.
    #[command(name = "__demo-peer", hide = true)]
    DemoPeer(DemoPeerArgs),
}

#[derive(Debug, Subcommand)]
pub enum PipeCommand {
    /// Create a pipe server: print messages from every client, one per line;
    /// send each stdin line to every connected client.
    Serve(ServeArgs),
    /// Connect to a pipe server, like netcat: stdin lines become messages,
    /// received messages become stdout lines.
    Connect(ConnectArgs),
    /// Connect, send each MSG as one message, and exit.
    Send(SendArgs),
    /// Connect and print received messages, one per line.
    Recv(RecvArgs),
    /// Print the OS-level name of a pipe (\\.\pipe\NAME or the socket path).
    Path {
        /// Pipe name.
        name: String,
    },
    /// List pipes: name, state (live/stale/unknown), server pid, OS name; tab-separated.
    Ls,
}

/// Wire mode of a pipe on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// One message per line; boundaries kept (native message pipe on Windows,
    /// u32-LE length-prefixed frames on Unix).
    Message,
    /// Raw bytes: stdin is sent as read, received bytes are written as they come.
    Byte,
    /// Byte pipe carrying u32-LE length-prefixed frames: a 4-byte size, then the
    /// bytes (on a message-type Windows pipe, written as two messages).
    Framed,
}

#[derive(Debug, Args)]
pub struct ModeArgs {
    /// Wire mode; both ends must agree.
    #[arg(long, value_enum, default_value_t = Mode::Message)]
    pub mode: Mode,
    /// Largest message accepted, in bytes (up to 4294967295).
    #[arg(long, value_name = "BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_message: u32,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Pipe name (NAME, \\.\pipe\NAME, or on Unix an absolute socket path).
    pub name: String,
    #[command(flatten)]
    pub mode: ModeArgs,
    /// Send each message back to its sender (and still print it).
    #[arg(long)]
    pub echo: bool,
    /// Exit after the first client leaves.
    #[arg(long)]
    pub once: bool,
    /// Most clients at once: 1..=254, or 255 for unlimited.
    #[arg(long, value_name = "N", default_value_t = 255)]
    pub max_instances: u32,
    /// Print messages as lowercase hex, one per line.
    #[arg(long)]
    pub hex: bool,
    /// Admit every local user, not only you (Unix: needs an absolute-path name).
    #[arg(long)]
    pub allow_all_users: bool,
}

#[derive(Debug, Args)]
pub struct TimeoutArg {
    /// Seconds to wait for the pipe to appear or for a free instance (0: do not wait).
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    pub timeout: f64,
}

#[derive(Debug, Args)]
pub struct ServerUserArg {
    /// Which user the server must run as: `me` (you), `any`, or a user (a uid
    /// on Unix, a SID on Windows). A server running as anyone else is refused
    /// before anything is sent, so a pipe another user created first gets
    /// nothing.
    #[arg(long, value_name = "WHO", default_value = "me")]
    pub server_user: String,
}

#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// Pipe name.
    pub name: String,
    #[command(flatten)]
    pub mode: ModeArgs,
    #[command(flatten)]
    pub timeout: TimeoutArg,
    #[command(flatten)]
    pub server: ServerUserArg,
    /// Print messages as lowercase hex, one per line.
    #[arg(long)]
    pub hex: bool,
    /// After stdin ends, keep printing replies for this many seconds unless the
    /// peer closes first.
    #[arg(long, value_name = "SECS", default_value_t = 1.0)]
    pub linger: f64,
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// Pipe name.
    pub name: String,
    /// Messages to send, one message each.
    #[arg(required = true)]
    pub messages: Vec<String>,
    #[command(flatten)]
    pub mode: ModeArgs,
    #[command(flatten)]
    pub timeout: TimeoutArg,
    #[command(flatten)]
    pub server: ServerUserArg,
}

#[derive(Debug, Args)]
pub struct RecvArgs {
    /// Pipe name.
    pub name: String,
    /// Stop after N messages (default: until the peer closes).
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    #[command(flatten)]
    pub mode: ModeArgs,
    #[command(flatten)]
    pub timeout: TimeoutArg,
    #[command(flatten)]
    pub server: ServerUserArg,
    /// Print messages as lowercase hex, one per line.
    #[arg(long)]
    pub hex: bool,
}

#[derive(Debug, Subcommand)]
pub enum ShmCommand {
    /// Create a segment (fails if the name exists). Unix: it persists until
    /// `nipc shm rm`; Windows: it lives while a process holds it (use --hold).
    Create {
        /// Segment name (NAME, /NAME, Local\NAME or Global\NAME).
        name: String,
        /// Size in bytes (may exceed 4 GiB).
        #[arg(long, value_name = "BYTES")]
        size: u64,
        #[command(flatten)]
        hold: HoldArg,
    },
    /// Write TEXT and a terminating NUL at OFFSET, creating the segment (SIZE
    /// bytes, default 4096) if it does not exist.
    Write {
        /// Segment name.
        name: String,
        /// Text to write (a NUL byte is appended, as strcpy does).
        text: String,
        /// Byte offset.
        #[arg(long, value_name = "N", default_value_t = 0)]
        offset: u64,
        /// Size if the segment has to be created.
        #[arg(long, value_name = "BYTES", default_value_t = 4096)]
        size: u64,
        #[command(flatten)]
        hold: HoldArg,
    },
    /// Print the segment's bytes from OFFSET up to the first NUL (or LEN bytes).
    Read {
        /// Segment name.
        name: String,
        /// Byte offset.
        #[arg(long, value_name = "N", default_value_t = 0)]
        offset: u64,
        /// Print exactly N bytes instead of stopping at a NUL.
        #[arg(long, value_name = "N")]
        len: Option<u64>,
        /// Print lowercase hex instead of text.
        #[arg(long)]
        hex: bool,
    },
    /// Remove a segment's name (Unix). Windows cannot: a mapping lives until
    /// its last holder closes it.
    Rm {
        /// Segment name.
        name: String,
    },
    /// List segments: NAME, SIZE, OWNER PID, OWNER state (alive/dead/kept/unknown), KIND; tab-separated.
    Ls,
    /// Remove what named-ipc owners that died left behind; never other objects.
    Gc,
}

#[derive(Debug, Args)]
pub struct HoldArg {
    /// Keep the segment open this many seconds before exiting (Windows deletes
    /// a mapping with its last handle).
    #[arg(long, value_name = "SECS", default_value_t = 0.0)]
    pub hold: f64,
}

/// Which benchmarks to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Suite {
    /// The pipe and its baseline (a raw Unix socket); the async pipe
    /// (pipe-async) against the pipe.
    Pipe,
    /// The shared-memory channel and its baselines (raw spin, raw futex, raw
    /// ring, memcpy); the async channel (shm-async) against shm-spin.
    Shm,
    /// Both.
    All,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// What to measure.
    #[arg(value_enum, default_value_t = Suite::All)]
    pub suite: Suite,
    /// Message sizes in bytes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "64,4096,65536,1048576")]
    pub sizes: Vec<usize>,
    /// One JSON object per line instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Also write an SVG chart of round-trip medians to FILE.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<std::path::PathBuf>,
    /// Seconds per measurement (each transport, size and repetition).
    #[arg(long, value_name = "SECS", default_value_t = 0.5)]
    pub duration: f64,
    /// Repetitions: each measures every transport once, round-robin; rows show
    /// the median and min–max over them, ratios are taken within each.
    #[arg(long, value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub repeat: u32,
    /// Pin this process to CPU A and the second process to CPU B, or `none`
    /// (default: the first two CPUs this process may use, if there are two;
    /// Linux and Windows only).
    #[arg(long, value_name = "A,B|none")]
    pub pin: Option<String>,
    /// Measure only these rows (transport names, comma-separated), with the
    /// baselines their ratios need.
    #[arg(long, value_delimiter = ',', value_name = "ROWS")]
    pub only: Vec<String>,
}

#[derive(Debug, Args)]
pub struct BenchPeerArgs {
    /// Pin this process to this CPU first.
    #[arg(long, value_name = "CPU")]
    pub pin: Option<usize>,
    /// What to do.
    pub role: String,
    /// The object to attach to (name, token or path).
    pub target: String,
    /// Message size.
    pub size: usize,
    /// Role-specific extra argument.
    pub extra: Option<String>,
}

#[derive(Debug, Args)]
pub struct DemoPeerArgs {
    /// Which scenario to play.
    pub scenario: String,
    /// Object name(s) the first process created.
    pub names: Vec<String>,
}
