//! An async echo server (tokio): every message a client sends comes back
//! upper-cased, one task per client. Blocking clients (`pipe_client`) and
//! async ones (`async_pipe_client`) both work.
//!
//! Terminal 1: `cargo run -p named-ipc --features tokio --example async_pipe_server`
//! Terminal 2: `cargo run -p named-ipc --features tokio --example async_pipe_client -- hello world`

use named_ipc::tokio::PipeListener;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let name = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "named-ipc-example".into());
    let listener = PipeListener::bind(&name)?;
    eprintln!("listening on {} (Ctrl-C to stop)", listener.os_name());
    loop {
        tokio::select! {
            conn = listener.accept() => {
                let conn = conn?;
                tokio::spawn(async move {
                    let who = conn.peer_pid().map(|p| p.to_string()).unwrap_or_default();
                    eprintln!("client {who} connected");
                    let mut buf = Vec::new();
                    let r: std::io::Result<()> = async {
                        while conn.recv_into(&mut buf).await?.is_some() {
                            buf.make_ascii_uppercase();
                            conn.send(&buf).await?;
                        }
                        Ok(())
                    }
                    .await;
                    match r {
                        Ok(()) => eprintln!("client {who} left"),
                        Err(e) => eprintln!("client {who}: {e}"),
                    }
                });
            }
            // accept is cancellation-safe: stopping here loses no client
            // that connected meanwhile (it simply is not served).
            _ = tokio::signal::ctrl_c() => {
                eprintln!("stopping");
                return Ok(());
            }
        }
    }
}
