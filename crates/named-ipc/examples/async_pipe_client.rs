//! Sends each argument as one message to the example server and prints
//! the replies, with the async API (tokio), giving each reply 5 seconds.
//!
//! Terminal 1: `cargo run -p named-ipc --features tokio --example async_pipe_server`
//! Terminal 2: `cargo run -p named-ipc --features tokio --example async_pipe_client -- hello world`

use std::time::Duration;

use named_ipc::tokio::PipeStream;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let conn = PipeStream::connect_timeout("named-ipc-example", Duration::from_secs(5)).await?;
    for word in std::env::args().skip(1) {
        conn.send(word.as_bytes()).await?;
        // recv is cancellation-safe: a reply that arrives after the timeout
        // is not lost, the next recv would return it.
        let reply = tokio::time::timeout(Duration::from_secs(5), conn.recv())
            .await
            .map_err(|_| "no reply within 5 s")??
            .ok_or("the server closed the pipe")?;
        println!("{}", String::from_utf8_lossy(&reply));
    }
    Ok(())
}
