//! An async shared-memory channel echo (tokio): `server` answers every
//! message upper-cased, one task per client; `client` sends each argument
//! as one message and prints the replies. Blocking channel clients and
//! servers (`named_ipc::channel`) talk to these too.
//!
//! Terminal 1: `cargo run -p named-ipc --features tokio --example async_channel_echo -- server`
//! Terminal 2: `cargo run -p named-ipc --features tokio --example async_channel_echo -- client hello world`

use std::time::Duration;

use named_ipc::tokio::{ShmListener, ShmStream};

const NAME: &str = "named-ipc-channel-example";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("server") => server().await,
        Some("client") => client(args.collect()).await,
        _ => Err("usage: async_channel_echo server | client MESSAGE...".into()),
    }
}

async fn server() -> Result<(), Box<dyn std::error::Error>> {
    let listener = ShmListener::bind(NAME)?;
    eprintln!("channel {NAME:?} ready (Ctrl-C to stop)");
    loop {
        tokio::select! {
            conn = listener.accept() => {
                let conn = conn?;
                tokio::spawn(async move {
                    let who = conn.peer_pid().map(|p| p.to_string()).unwrap_or_default();
                    eprintln!("client {who} connected");
                    // Halves: receiving and sending need no lock.
                    let (mut tx, mut rx) = conn.into_split();
                    let r: std::io::Result<()> = async {
                        // Read each message in place (a guard releases it on
                        // drop) and write the reply into the ring through a
                        // permit (nothing goes until `commit`).
                        while let Some(msg) = rx.recv_in_place().await? {
                            let mut bytes = msg.in_place().to_vec();
                            drop(msg);
                            bytes.make_ascii_uppercase();
                            let mut permit = tx.reserve(bytes.len()).await?;
                            permit.in_place().copy_from_slice(&bytes);
                            permit.commit();
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
            // accept is cancellation-safe: a client whose handshake is under
            // way is simply not served.
            _ = tokio::signal::ctrl_c() => {
                eprintln!("stopping");
                return Ok(());
            }
        }
    }
}

async fn client(words: Vec<String>) -> Result<(), Box<dyn std::error::Error>> {
    let conn = ShmStream::connect_timeout(NAME, Duration::from_secs(5)).await?;
    for word in words {
        conn.send(word.as_bytes()).await?;
        // recv is cancellation-safe: a reply that arrives after the timeout
        // is not lost, the next recv returns it.
        let reply = tokio::time::timeout(Duration::from_secs(5), conn.recv())
            .await
            .map_err(|_| "no reply within 5 s")??
            .ok_or("the server closed the channel")?;
        println!("{}", String::from_utf8_lossy(&reply));
    }
    Ok(())
}
