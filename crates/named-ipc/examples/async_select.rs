//! One task serving a pipe and a shared-memory channel at once with
//! `tokio::select!`: whichever has a message first is answered first. Both
//! receives are cancellation-safe, so the one that loses the race loses
//! nothing — its next call returns the message.
//!
//! Terminal 1: `cargo run -p named-ipc --features tokio --example async_select`
//! Terminal 2: `cargo run -p named-ipc --features tokio --example async_pipe_client -- via the pipe`
//! Terminal 3: `cargo run -p named-ipc --features tokio --example async_channel_echo -- client via the channel`

use named_ipc::tokio::{PipeListener, ShmListener};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The names the example clients use.
    let pipes = PipeListener::bind("named-ipc-example")?;
    let channels = ShmListener::bind("named-ipc-channel-example")?;
    eprintln!("waiting for one pipe client and one channel client");
    let (pipe, chan) = tokio::try_join!(pipes.accept(), channels.accept())?;
    let (mut pipe_open, mut chan_open) = (true, true);
    let (mut pbuf, mut cbuf) = (Vec::new(), Vec::new());
    while pipe_open || chan_open {
        tokio::select! {
            got = pipe.recv_into(&mut pbuf), if pipe_open => match got? {
                Some(_) => {
                    eprintln!("pipe: {}", String::from_utf8_lossy(&pbuf));
                    pbuf.make_ascii_uppercase();
                    pipe.send(&pbuf).await?;
                }
                None => pipe_open = false,
            },
            got = chan.recv_into(&mut cbuf), if chan_open => match got? {
                Some(_) => {
                    eprintln!("channel: {}", String::from_utf8_lossy(&cbuf));
                    cbuf.make_ascii_uppercase();
                    chan.send(&cbuf).await?;
                }
                None => chan_open = false,
            },
        }
    }
    eprintln!("both clients left");
    Ok(())
}
