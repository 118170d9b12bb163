//! Sends each argument as one message to the example server and prints replies.
//!
//! Terminal 1: `cargo run -p named-ipc --example pipe_server`
//! Terminal 2: `cargo run -p named-ipc --example pipe_client -- hello world`

use std::time::Duration;

use named_ipc::pipe::PipeStream;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let conn = PipeStream::connect_timeout("named-ipc-example", Duration::from_secs(5))?;
    for word in std::env::args().skip(1) {
        conn.send(word.as_bytes())?;
        let reply = conn.recv()?.ok_or("the server closed the pipe")?;
        println!("{}", String::from_utf8_lossy(&reply));
    }
    Ok(())
}
