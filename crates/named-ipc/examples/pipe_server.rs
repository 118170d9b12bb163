//! An echo server: every message a client sends comes back upper-cased.
//!
//! Terminal 1: `cargo run -p named-ipc --example pipe_server`
//! Terminal 2: `cargo run -p named-ipc --example pipe_client -- hello world`

use named_ipc::pipe::PipeListener;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let name = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "named-ipc-example".into());
    let listener = PipeListener::bind(&name)?;
    eprintln!("listening on {} (Ctrl-C to stop)", listener.os_name());
    for conn in listener.incoming() {
        let conn = conn?;
        std::thread::spawn(move || -> std::io::Result<()> {
            let who = conn.peer_pid().map(|p| p.to_string()).unwrap_or_default();
            eprintln!("client {who} connected");
            while let Some(msg) = conn.recv()? {
                conn.send(&msg.to_ascii_uppercase())?;
            }
            eprintln!("client {who} left");
            Ok(())
        });
    }
    Ok(())
}
