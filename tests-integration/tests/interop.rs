//! Plain programs that know only the OS API and the documented wire format talk
//! to `nipc` and to the library: Python on Unix (the u32-LE framed socket), C
//! programs compiled with mingw on Windows (the spec's Win32 calls).

mod common;

use common::*;

#[cfg(unix)]
mod unix {
    use super::*;
    use named_ipc::pipe::PipeStream;

    fn python(script: &str, args: &[&str]) -> Peer {
        let mut all = vec!["-c", script];
        all.extend_from_slice(args);
        Peer::start(std::path::Path::new("python3"), &all)
    }

    const CLIENT: &str = r#"
import socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
def recv_exact(n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise SystemExit("eof")
        b += c
    return b
for msg in [b"", b"hi", bytes(range(256)) * 400]:
    s.sendall(struct.pack("<I", len(msg)) + msg)
    (n,) = struct.unpack("<I", recv_exact(4))
    print(n, recv_exact(n) == msg, flush=True)
"#;

    #[test]
    fn a_python_client_speaks_the_wire_format_to_nipc_serve() {
        let name = unique("py-client");
        let mut srv = Peer::start(&nipc_exe(), &["pipe", "serve", &name, "--echo", "--hex"]);
        srv.expect_stderr("listening on pipe");
        let path = named_ipc::name::pipe_os_name(&name).unwrap();
        let mut py = python(CLIENT, &[&path]);
        assert_eq!(py.line(), "0 True");
        assert_eq!(py.line(), "2 True");
        assert_eq!(py.line(), "102400 True");
        py.wait_ok();
        assert_eq!(srv.line(), "");
        assert_eq!(srv.line(), "6869");
    }

    const SERVER: &str = r#"
import os, socket, struct, sys
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
s.listen(1)
print("ready", flush=True)
c, _ = s.accept()
(n,) = struct.unpack("<I", c.recv(4, socket.MSG_WAITALL))
msg = c.recv(n, socket.MSG_WAITALL) if n else b""
reply = b"py:" + msg
c.sendall(struct.pack("<I", len(reply)) + reply)
c.close()
os.unlink(path)
"#;

    const PY_SHM: &str = r#"
import sys
from multiprocessing import shared_memory, resource_tracker
name, action = sys.argv[1], sys.argv[2]
if action == "create":
    m = shared_memory.SharedMemory(name=name, create=True, size=4096)
    m.buf[:12] = b"from python\0"
    print("ready", flush=True)
    sys.stdin.read()
    m.close(); m.unlink()
else:
    m = shared_memory.SharedMemory(name=name)
    # Python 3.8-3.12 would unlink a segment it only opened: opt out.
    resource_tracker.unregister(m._name, "shared_memory")
    print(m.size, bytes(m.buf[:5]).decode(), flush=True)
    m.buf[:6] = b"PYTHON"
    m.close()
"#;

    #[test]
    fn python_shared_memory_and_nipc_see_the_same_bytes() {
        // nipc writes, Python reads and writes back, nipc reads.
        let name = unique("py-shm");
        Peer::start(&nipc_exe(), &["shm", "write", &name, "Shine"]).wait_ok();
        let mut py = python(PY_SHM, &[&name, "open"]);
        assert_eq!(py.line(), "4096 Shine");
        py.wait_ok();
        let seg =
            named_ipc::shm::ShmSegment::open(&name, named_ipc::shm::Protection::ReadOnly).unwrap();
        let mut buf = [0u8; 6];
        seg.read_at(0, &mut buf).unwrap();
        assert_eq!(&buf, b"PYTHON");
        named_ipc::shm::ShmSegment::remove(&name).unwrap();

        // Python creates, nipc reads.
        let name = unique("py-shm2");
        let mut py = python(PY_SHM, &[&name, "create"]);
        py.expect("ready");
        let mut r = Peer::start(&nipc_exe(), &["shm", "read", &name]);
        assert_eq!(r.line(), "from python");
        r.wait_ok();
        py.wait_ok();
    }

    #[test]
    fn the_library_talks_to_a_python_server() {
        let path = std::env::temp_dir().join(format!("{}.sock", unique("py-server")));
        let path = path.to_str().unwrap().to_owned();
        let mut py = python(SERVER, &[&path]);
        py.expect("ready");
        let c = PipeStream::connect_timeout(&path, STEP).unwrap();
        c.send(b"hello").unwrap();
        assert_eq!(c.recv().unwrap().unwrap(), b"py:hello");
        assert_eq!(c.recv().unwrap(), None);
        py.wait_ok();
    }
}

#[cfg(windows)]
mod windows {
    use super::*;
    use std::io::Write;
    use std::path::PathBuf;

    fn c_peer(prog: &str) -> PathBuf {
        PathBuf::from(env!("NIPC_C_PEERS")).join(format!("{prog}.exe"))
    }

    #[test]
    fn a_spec_style_c_client_talks_to_nipc_serve() {
        let name = unique("c-client");
        let mut srv = Peer::start(&nipc_exe(), &["pipe", "serve", &name, "--echo"]);
        srv.expect_stderr("listening on pipe");
        let mut c = Peer::start(&c_peer("pipe_client"), &[&name, "hello", "from-C"]);
        assert_eq!(c.line(), "reply: hello");
        assert_eq!(c.line(), "reply: from-C");
        assert_eq!(c.line(), "done");
        c.wait_ok();
        assert_eq!(srv.line(), "hello");
        assert_eq!(srv.line(), "from-C");
    }

    #[test]
    fn nipc_connect_talks_to_a_spec_style_c_server() {
        let name = unique("c-server");
        let mut srv = Peer::start(&c_peer("pipe_server"), &[&name]);
        srv.expect("ready");
        let mut c = Peer::start(&nipc_exe(), &["pipe", "connect", &name]);
        writeln!(c.stdin(), "one").unwrap();
        c.stdin().flush().unwrap();
        assert_eq!(c.line(), "ack:one");
        writeln!(c.stdin(), "two").unwrap();
        c.stdin().flush().unwrap();
        assert_eq!(c.line(), "ack:two");
        assert_eq!(srv.line(), "got: one");
        assert_eq!(srv.line(), "got: two");
        c.close_stdin();
        c.wait_ok();
        assert_eq!(srv.line(), "client left");
        srv.wait_ok();
    }

    #[test]
    fn the_spec_pipewithsize_client_talks_to_nipc_framed_serve() {
        let name = unique("c-framed");
        let mut srv = Peer::start(&nipc_exe(), &["pipe", "serve", &name, "--mode", "framed"]);
        srv.expect_stderr("listening on pipe");
        let mut c = Peer::start(&c_peer("framed_client"), &[&name, "a", "bb", "ccc"]);
        assert_eq!(c.line(), "sent");
        c.wait_ok();
        assert_eq!(srv.line(), "a");
        assert_eq!(srv.line(), "bb");
        assert_eq!(srv.line(), "ccc");
    }

    /// The spec's size-prefixed reader reads the size, then the payload, as
    /// two `ReadFile`s; on a pipe created in message type each reads one
    /// message, so `--mode framed` must write them as two messages there.
    #[test]
    fn nipc_framed_talks_to_a_message_type_server_that_reads_the_size_first() {
        let name = unique("c-framed-msg");
        let mut srv = Peer::start(&c_peer("framed_msg_server"), &[&name, "2"]);
        srv.expect("ready");
        let mut c = Peer::start(&nipc_exe(), &["pipe", "connect", &name, "--mode", "framed"]);
        for text in ["one", "two"] {
            writeln!(c.stdin(), "{text}").unwrap();
            c.stdin().flush().unwrap();
            assert_eq!(srv.line(), format!("size:{}", text.len()));
            assert_eq!(srv.line(), format!("got: {text}"));
            // The server's reply is one message holding size and text; nipc
            // reads it as a byte stream.
            assert_eq!(c.line(), format!("ack:{text}"));
        }
        c.close_stdin();
        c.wait_ok();
        assert_eq!(srv.line(), "client left");

        let mut s = Peer::start(
            &nipc_exe(),
            &["pipe", "send", &name, "--mode", "framed", "a", "", "ccc"],
        );
        s.wait_ok();
        for text in ["a", "", "ccc"] {
            assert_eq!(srv.line(), format!("size:{}", text.len()));
            assert_eq!(srv.line(), format!("got: {text}"));
        }
        assert_eq!(srv.line(), "client left");
        srv.wait_ok();
    }

    #[test]
    fn nipc_reads_what_the_spec_process_a_wrote() {
        let name = unique("c-shm-a");
        let mut a = Peer::start(&c_peer("shm_writer"), &[&name, "Shine"]);
        a.expect("written");
        let mut r = Peer::start(&nipc_exe(), &["shm", "read", &name]);
        assert_eq!(r.line(), "Shine");
        r.wait_ok();
        // The library sees the same bytes, with no header in front.
        let seg =
            named_ipc::shm::ShmSegment::open(&name, named_ipc::shm::Protection::ReadOnly).unwrap();
        let mut buf = [0u8; 6];
        seg.read_at(0, &mut buf).unwrap();
        assert_eq!(&buf, b"Shine\0");
    }

    #[test]
    fn the_spec_process_b_reads_what_nipc_wrote() {
        let name = unique("c-shm-b");
        let mut w = Peer::start(
            &nipc_exe(),
            &["shm", "write", &name, "Shine", "--hold", "120"],
        );
        w.expect_stderr("holding");
        let mut b = Peer::start(&c_peer("shm_reader"), &[&name]);
        assert_eq!(b.line(), "what I read from share memory is: Shine");
        b.wait_ok();
    }
}
