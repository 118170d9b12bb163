//! Native Windows named pipes, always opened for overlapped I/O so that reads,
//! writes and accepts can time out, be nonblocking, and run concurrently from
//! two threads on one handle.

use std::io;
use std::os::windows::io::OwnedHandle;
use std::sync::{Mutex, MutexGuard};

use windows_sys::Win32::Foundation::{
    ERROR_ACCESS_DENIED, ERROR_BROKEN_PIPE, ERROR_FILE_NOT_FOUND, ERROR_NO_DATA, ERROR_PIPE_BUSY,
    ERROR_PIPE_CONNECTED, ERROR_PIPE_NOT_CONNECTED, ERROR_SEM_TIMEOUT, GENERIC_READ, GENERIC_WRITE,
    HANDLE, INVALID_HANDLE_VALUE,
};
use windows_sys::Win32::Security::RevertToSelf;
use windows_sys::Win32::Security::TOKEN_QUERY;
use windows_sys::Win32::Storage::FileSystem::{
    CreateFileW, FindClose, FindFirstFileW, FindNextFileW, FlushFileBuffers, ReadFile, WriteFile,
    FILE_FLAG_FIRST_PIPE_INSTANCE, FILE_FLAG_OVERLAPPED, FILE_READ_ATTRIBUTES,
    FILE_WRITE_ATTRIBUTES, OPEN_EXISTING, PIPE_ACCESS_DUPLEX, PIPE_ACCESS_INBOUND,
    PIPE_ACCESS_OUTBOUND, SECURITY_IDENTIFICATION, SECURITY_SQOS_PRESENT, WIN32_FIND_DATAW,
};
use windows_sys::Win32::System::Pipes::{
    ConnectNamedPipe, CreateNamedPipeW, DisconnectNamedPipe, GetNamedPipeClientProcessId,
    GetNamedPipeInfo, GetNamedPipeServerProcessId, ImpersonateNamedPipeClient, PeekNamedPipe,
    SetNamedPipeHandleState, WaitNamedPipeW, PIPE_ACCEPT_REMOTE_CLIENTS, PIPE_READMODE_BYTE,
    PIPE_READMODE_MESSAGE, PIPE_REJECT_REMOTE_CLIENTS, PIPE_TYPE_BYTE, PIPE_TYPE_MESSAGE,
    PIPE_WAIT,
};
use windows_sys::Win32::System::Threading::{
    GetCurrentThread, OpenProcess, OpenProcessToken, OpenThreadToken,
    PROCESS_QUERY_LIMITED_INFORMATION,
};

use super::security::{token_user_sid, SecurityDescriptor};
use super::{cvt, owned, raw, wide, Overlapped, Started, UserRepr};
use crate::error::{Error, ErrorKind, Result};
use crate::name::{self, PIPE_PREFIX};
use crate::pipe::framing::Received;
use crate::pipe::{Access, ConnectOptions, Direction, ListenerOptions, PipeEntry, PipeMode};
use crate::security::Security;
use crate::sys::{Backoff, Wait};

/// How long a client without a connect timeout waits for a busy pipe: the
/// Windows default `nDefaultTimeOut`, and what Unix clients wait. Never the
/// server's own `nDefaultTimeOut` (`NMPWAIT_USE_DEFAULT_WAIT`), which the
/// server chooses.
const BUSY_WAIT_MS: u32 = 50;

/// The whole `\\.\pipe\NAME` string may be at most this many UTF-16 units.
const MAX_NAME: usize = 256;

/// Where a pipe lives: its full `\\.\pipe\NAME`.
#[derive(Debug, Clone)]
pub(crate) struct Addr {
    full: String,
    wide: Vec<u16>,
    /// `\\server\pipe\NAME`: served on another machine.
    remote: bool,
}

impl Addr {
    pub(crate) fn display(&self) -> String {
        self.full.clone()
    }
}

pub(crate) fn resolve(name: &str) -> Result<Addr> {
    let bare = name::pipe_base_name(name, "pipe")?;
    let remote =
        name.starts_with(r"\\") && name::strip_prefix_ignore_case(name, PIPE_PREFIX).is_none();
    let full = if remote {
        // \\server\pipe\NAME: a remote pipe, for clients that ask for one.
        name.to_owned()
    } else {
        name::check_plain(name, bare, "pipe")?;
        format!("{PIPE_PREFIX}{bare}")
    };
    let wide = wide(&full);
    if wide.len() - 1 > MAX_NAME {
        return Err(Error::new(
            ErrorKind::InvalidName,
            name,
            format!(
                "pipe name {name:?} is too long: {full} is {} UTF-16 units and Windows allows \
                 {MAX_NAME}; use a shorter name",
                wide.len() - 1
            ),
        ));
    }
    Ok(Addr { full, wide, remote })
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn code(e: &io::Error) -> Option<u32> {
    e.raw_os_error().map(|c| c as u32)
}

// ------------------------------------------------------------------ listener --

/// A pipe instance waiting for (or being connected to) a client.
struct Instance {
    handle: OwnedHandle,
    ov: Overlapped,
    /// A `ConnectNamedPipe` is in flight on `ov`.
    connecting: bool,
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(inst) = lock(&self.pending).take() {
            if inst.connecting {
                // The OVERLAPPED must outlive the operation.
                let _ = inst.ov.cancel(raw(&inst.handle));
            }
        }
    }
}

pub(crate) struct Listener {
    addr: Addr,
    open_mode: u32,
    pipe_mode: u32,
    max_instances: u32,
    bufsizes: (u32, u32),
    default_timeout_ms: u32,
    sd: SecurityDescriptor,
    mode: PipeMode,
    max_message: u32,
    label: String,
    pending: Mutex<Option<Instance>>,
}

impl Listener {
    pub(crate) fn bind(name: &str, addr: &Addr, opts: &ListenerOptions) -> Result<Listener> {
        let what = format!("cannot create pipe {name:?} ({})", addr.full);
        let sd = match &opts.sddl {
            Some(s) => SecurityDescriptor::from_sddl(s).map_err(|e| {
                Error::from_io(e, name, &what, "the SDDL security descriptor is invalid")
            })?,
            None => SecurityDescriptor::default_for(opts.security == Security::LocalUsers)
                .map_err(|e| {
                    Error::from_io(e, name, &what, "cannot build the security descriptor")
                })?,
        };
        let access = match opts.direction {
            Direction::Duplex => PIPE_ACCESS_DUPLEX,
            Direction::Inbound => PIPE_ACCESS_INBOUND,
            Direction::Outbound => PIPE_ACCESS_OUTBOUND,
        };
        let ty = match opts.mode {
            PipeMode::Message => PIPE_TYPE_MESSAGE | PIPE_READMODE_MESSAGE,
            PipeMode::Byte => PIPE_TYPE_BYTE | PIPE_READMODE_BYTE,
        };
        let remote = if opts.reject_remote_clients {
            PIPE_REJECT_REMOTE_CLIENTS
        } else {
            PIPE_ACCEPT_REMOTE_CLIENTS
        };
        let l = Listener {
            addr: addr.clone(),
            open_mode: access | FILE_FLAG_OVERLAPPED,
            pipe_mode: ty | PIPE_WAIT | remote,
            max_instances: opts.max_instances,
            bufsizes: opts.buffer_sizes.unwrap_or((65536, 65536)),
            default_timeout_ms: opts
                .default_timeout
                .as_millis()
                .clamp(1, u128::from(u32::MAX - 1)) as u32,
            sd,
            mode: opts.mode,
            max_message: opts.max_message,
            label: format!("pipe {name:?}"),
            pending: Mutex::new(None),
        };
        let first = l.create_instance(true).map_err(|e| {
            if code(&e) == Some(ERROR_ACCESS_DENIED) || code(&e) == Some(ERROR_PIPE_BUSY) {
                // FILE_FLAG_FIRST_PIPE_INSTANCE fails with access denied when the
                // name exists.
                Error::new(
                    ErrorKind::AlreadyExists,
                    name,
                    format!("{what}: it is already in use by another server (or its security does not admit you); stop that server or choose another name"),
                )
                .with_source(e)
            } else {
                Error::from_io(e, name, &what, "")
            }
        })?;
        *lock(&l.pending) = Some(first);
        Ok(l)
    }

    fn create_instance(&self, first: bool) -> io::Result<Instance> {
        let sa = self.sd.attributes();
        let mut open_mode = self.open_mode;
        if first {
            open_mode |= FILE_FLAG_FIRST_PIPE_INSTANCE;
        }
        // SAFETY: the name is NUL-terminated; sa points at our live descriptor.
        let h = unsafe {
            CreateNamedPipeW(
                self.addr.wide.as_ptr(),
                open_mode,
                self.pipe_mode,
                self.max_instances,
                self.bufsizes.1,
                self.bufsizes.0,
                self.default_timeout_ms,
                &sa,
            )
        };
        let handle = owned(h, INVALID_HANDLE_VALUE)?;
        Ok(Instance {
            handle,
            ov: Overlapped::new()?,
            connecting: false,
        })
    }

    /// Accepts one client. `Ok(None)`: no instance is free (all `max_instances`
    /// are connected); the caller waits for one of its streams to close.
    pub(crate) fn accept(&self, wait: Wait) -> io::Result<Option<Stream>> {
        let mut pending = lock(&self.pending);
        loop {
            let mut inst = match pending.take() {
                Some(i) => i,
                None => match self.create_instance(false) {
                    Ok(i) => i,
                    Err(e) if code(&e) == Some(ERROR_PIPE_BUSY) => return Ok(None),
                    Err(e) => return Err(e),
                },
            };
            let h = raw(&inst.handle);
            let connected = if inst.connecting {
                match inst.ov.wait(h, wait) {
                    Ok(Some(_)) => {
                        inst.connecting = false;
                        true
                    }
                    Ok(None) => {
                        // Still waiting for a client: keep the operation in flight.
                        *pending = Some(inst);
                        return Err(wait.expired_error());
                    }
                    Err(e) => {
                        inst.connecting = false;
                        if code(&e) == Some(ERROR_NO_DATA) || code(&e) == Some(ERROR_BROKEN_PIPE) {
                            // The client left already: recycle the instance.
                            // SAFETY: h is our pipe instance.
                            unsafe { DisconnectNamedPipe(h) };
                            *pending = Some(inst);
                            continue;
                        }
                        return Err(e);
                    }
                }
            } else {
                // SAFETY: no operation is in flight on inst.ov; ConnectNamedPipe
                // uses no buffer.
                match unsafe { inst.ov.start(h, |ov| ConnectNamedPipe(h, ov)) } {
                    Ok(Started::Done(..)) => true,
                    Ok(Started::Pending) => {
                        inst.connecting = true;
                        *pending = Some(inst);
                        continue;
                    }
                    Err(e) if code(&e) == Some(ERROR_PIPE_CONNECTED) => true,
                    Err(e) if code(&e) == Some(ERROR_NO_DATA) => {
                        // A client connected and closed before we got here.
                        // SAFETY: h is our pipe instance.
                        unsafe { DisconnectNamedPipe(h) };
                        *pending = Some(inst);
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            };
            debug_assert!(connected);
            // Keep an instance listening so clients never see "not found".
            *pending = self.create_instance(false).ok();
            let Instance { handle, ov, .. } = inst;
            return Stream::new(
                handle,
                ov,
                true,
                self.mode,
                self.max_message,
                self.label.clone(),
            )
            .map(Some);
        }
    }

    pub(crate) fn display(&self) -> String {
        self.addr.full.clone()
    }
}

// -------------------------------------------------------------------- stream --

struct Rx {
    ov: Overlapped,
    /// Bytes of the current message read by an interrupted `recv_msg`.
    stash: Vec<u8>,
    /// Inside a message (after `ERROR_MORE_DATA`).
    mid: bool,
    poison: Option<(io::ErrorKind, String)>,
}

struct Tx {
    ov: Overlapped,
    /// A write still in flight and the buffer it reads from.
    in_flight: Option<Vec<u8>>,
    /// Spare buffer for copies, reused.
    spare: Vec<u8>,
}

/// One connected end of a named pipe.
pub(crate) struct Stream {
    handle: OwnedHandle,
    server: bool,
    /// A client of a pipe on another machine.
    remote: bool,
    mode: PipeMode,
    max_message: u32,
    label: String,
    rx: Mutex<Rx>,
    tx: Mutex<Tx>,
}

impl Drop for Stream {
    fn drop(&mut self) {
        let tx = self.tx.get_mut().unwrap_or_else(|p| p.into_inner());
        if tx.in_flight.is_some() {
            // The buffer must outlive the write: finish or cancel it.
            let _ = tx.ov.cancel(raw(&self.handle));
        }
    }
}

impl Stream {
    fn new(
        handle: OwnedHandle,
        rx_ov: Overlapped,
        server: bool,
        mode: PipeMode,
        max_message: u32,
        label: String,
    ) -> io::Result<Stream> {
        Ok(Stream {
            handle,
            server,
            remote: false,
            mode,
            max_message,
            label,
            rx: Mutex::new(Rx {
                ov: rx_ov,
                stash: Vec::new(),
                mid: false,
                poison: None,
            }),
            tx: Mutex::new(Tx {
                ov: Overlapped::new()?,
                in_flight: None,
                spare: Vec::new(),
            }),
        })
    }

    pub(crate) fn connect(
        addr: &Addr,
        opts: &ConnectOptions,
        _name: &str,
        wait: Wait,
    ) -> io::Result<Stream> {
        let access = match opts.access {
            Access::ReadWrite => GENERIC_READ | GENERIC_WRITE,
            Access::Read => GENERIC_READ | FILE_WRITE_ATTRIBUTES,
            Access::Write => GENERIC_WRITE | FILE_READ_ATTRIBUTES,
        };
        let mut backoff = Backoff::new();
        let mut waited_default = false;
        let handle = loop {
            // SAFETY: the name is NUL-terminated; no security attributes.
            let h = unsafe {
                CreateFileW(
                    addr.wide.as_ptr(),
                    access,
                    0,
                    std::ptr::null(),
                    OPEN_EXISTING,
                    FILE_FLAG_OVERLAPPED | SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION,
                    std::ptr::null_mut(),
                )
            };
            let e = match owned(h, INVALID_HANDLE_VALUE) {
                Ok(h) => break h,
                Err(e) => e,
            };
            match code(&e) {
                Some(ERROR_PIPE_BUSY) => {
                    // Wait for an instance; WaitNamedPipe sleeps in the kernel.
                    // Without a timeout, briefly: NMPWAIT_USE_DEFAULT_WAIT would
                    // wait the server's nDefaultTimeOut, which the server
                    // chooses (up to ~49 days).
                    let ms = match wait {
                        Wait::Never if !waited_default => {
                            waited_default = true;
                            BUSY_WAIT_MS
                        }
                        Wait::Never => return Err(e),
                        w => match w.remaining_ms_ceil() {
                            Some(0) => return Err(e),
                            Some(ms) => ms.min(u64::from(u32::MAX - 2)) as u32,
                            None => u32::MAX - 1,
                        },
                    };
                    // SAFETY: the name is NUL-terminated.
                    if unsafe { WaitNamedPipeW(addr.wide.as_ptr(), ms) } == 0 {
                        let we = io::Error::last_os_error();
                        if code(&we) == Some(ERROR_SEM_TIMEOUT) {
                            return Err(e);
                        }
                        // The pipe vanished (server restarting), or the instance we
                        // waited for closed (Wine: ERROR_HANDLES_CLOSED): try again
                        // within the deadline.
                        if !backoff.sleep(wait) {
                            return Err(if code(&we) == Some(ERROR_FILE_NOT_FOUND) {
                                we
                            } else {
                                e
                            });
                        }
                    }
                }
                Some(ERROR_FILE_NOT_FOUND) => {
                    if !backoff.sleep(wait) {
                        return Err(e);
                    }
                }
                _ => return Err(e),
            }
        };
        if opts.mode == PipeMode::Message && opts.access != Access::Write {
            let mode = PIPE_READMODE_MESSAGE;
            // SAFETY: handle is our open pipe; mode lives for the call.
            if let Err(e) = cvt(unsafe {
                SetNamedPipeHandleState(raw(&handle), &mode, std::ptr::null(), std::ptr::null())
            }) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("the server created a byte-mode pipe, so message mode is not available ({e}); connect in byte mode"),
                ));
            }
        }
        let label = format!("pipe {:?}", _name);
        let mut s = Stream::new(
            handle,
            Overlapped::new()?,
            false,
            opts.mode,
            opts.max_message,
            label,
        )?;
        s.remote = addr.remote;
        Ok(s)
    }

    fn h(&self) -> HANDLE {
        raw(&self.handle)
    }

    /// Bytes left in the message being read (`PeekNamedPipe`).
    fn left_in_message(&self) -> io::Result<u32> {
        let mut left = 0u32;
        // SAFETY: a peek without buffer; left is a valid out-pointer.
        cvt(unsafe {
            PeekNamedPipe(
                self.h(),
                std::ptr::null_mut(),
                0,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                &mut left,
            )
        })?;
        Ok(left)
    }

    /// One overlapped `ReadFile` into `buf`, completed or cancelled per `wait`.
    fn read_once(&self, rx: &Rx, buf: &mut [u8], wait: Wait) -> io::Result<(u32, bool)> {
        // SAFETY: buf is valid for writes of its length for this whole call.
        unsafe { self.read_raw(rx, buf.as_mut_ptr(), buf.len(), wait) }
    }

    /// Reads into the spare capacity of `out` and extends its length by what
    /// arrived, without initialising the spare part first.
    fn read_spare(&self, rx: &Rx, out: &mut Vec<u8>, wait: Wait) -> io::Result<(u32, bool)> {
        let spare = out.spare_capacity_mut();
        // SAFETY: the spare capacity is valid for writes of its length while
        // `out` is borrowed, which covers the whole call.
        let r = unsafe { self.read_raw(rx, spare.as_mut_ptr().cast(), spare.len(), wait) };
        if let Ok((n, _)) = r {
            // SAFETY: the OS wrote n (<= spare length) bytes right after the
            // initialised part.
            unsafe { out.set_len(out.len() + n as usize) };
        }
        r
    }

    /// # Safety
    /// `p` must be valid for writes of `len` bytes until this returns.
    unsafe fn read_raw(
        &self,
        rx: &Rx,
        p: *mut u8,
        len: usize,
        wait: Wait,
    ) -> io::Result<(u32, bool)> {
        let len = len.min(u32::MAX as usize) as u32;
        let h = self.h();
        // SAFETY: no operation is in flight on rx.ov (we hold the lock and every
        // read completes or is cancelled within this call); p is valid per the
        // caller's contract until then.
        unsafe {
            rx.ov
                .run(h, wait, |ov| ReadFile(h, p, len, std::ptr::null_mut(), ov))
        }
    }

    fn poison(rx: &mut Rx, kind: io::ErrorKind, msg: String) -> io::Error {
        rx.poison = Some((kind, msg.clone()));
        io::Error::new(kind, msg)
    }

    fn check_poison(rx: &Rx) -> io::Result<()> {
        match &rx.poison {
            Some((k, m)) => Err(io::Error::new(*k, m.clone())),
            None => Ok(()),
        }
    }

    fn too_big(&self, rx: &mut Rx, total: u64) -> io::Error {
        let msg = format!(
            "{}: incoming message of {total} bytes exceeds the limit of {} bytes (raise the \
             receiver's max message size)",
            self.label, self.max_message
        );
        Self::poison(rx, io::ErrorKind::InvalidData, msg)
    }

    pub(crate) fn recv_msg(&self, out: &mut Vec<u8>, wait: Wait) -> io::Result<Option<usize>> {
        let mut rx = lock(&self.rx);
        Self::check_poison(&rx)?;
        out.clear();
        std::mem::swap(out, &mut rx.stash);
        loop {
            if out.capacity() == out.len() {
                out.reserve(4096.max(out.len()));
            }
            match self.read_spare(&rx, out, wait) {
                Ok((_, false)) => {
                    let first = !rx.mid;
                    rx.mid = false;
                    if first && out.len() as u64 > u64::from(self.max_message) {
                        return Err(self.too_big(&mut rx, out.len() as u64));
                    }
                    return Ok(Some(out.len()));
                }
                Ok((_, true)) => {
                    let left = self.left_in_message()?;
                    let total = out.len() as u64 + u64::from(left);
                    if !rx.mid && total > u64::from(self.max_message) {
                        return Err(self.too_big(&mut rx, total));
                    }
                    rx.mid = true;
                    out.reserve_exact(left as usize);
                }
                Err(e) => {
                    if code(&e) == Some(ERROR_BROKEN_PIPE)
                        || code(&e) == Some(ERROR_PIPE_NOT_CONNECTED)
                    {
                        if out.is_empty() && !rx.mid {
                            return Ok(None);
                        }
                        let got = out.len();
                        let msg = format!("{}: the peer closed the pipe in the middle of a message ({got} bytes received)", self.label);
                        return Err(Self::poison(&mut rx, io::ErrorKind::UnexpectedEof, msg));
                    }
                    // Keep what arrived for the next call.
                    std::mem::swap(out, &mut rx.stash);
                    out.clear();
                    return Err(e);
                }
            }
        }
    }

    pub(crate) fn recv_msg_slice(
        &self,
        out: &mut [u8],
        wait: Wait,
    ) -> io::Result<Option<Received>> {
        let mut rx = lock(&self.rx);
        Self::check_poison(&rx)?;
        if !rx.stash.is_empty() {
            let n = out.len().min(rx.stash.len());
            out[..n].copy_from_slice(&rx.stash[..n]);
            rx.stash.drain(..n);
            let left = if rx.mid {
                u64::from(self.left_in_message()?)
            } else {
                0
            };
            return Ok(Some(Received {
                len: n,
                remaining: rx.stash.len() as u64 + left,
            }));
        }
        match self.read_once(&rx, out, wait) {
            Ok((n, more)) => {
                if !more {
                    let first = !rx.mid;
                    rx.mid = false;
                    if first && n > self.max_message {
                        return Err(self.too_big(&mut rx, u64::from(n)));
                    }
                    return Ok(Some(Received {
                        len: n as usize,
                        remaining: 0,
                    }));
                }
                let left = self.left_in_message()?;
                let total = u64::from(n) + u64::from(left);
                if !rx.mid && total > u64::from(self.max_message) {
                    return Err(self.too_big(&mut rx, total));
                }
                rx.mid = true;
                Ok(Some(Received {
                    len: n as usize,
                    remaining: u64::from(left),
                }))
            }
            Err(e)
                if code(&e) == Some(ERROR_BROKEN_PIPE)
                    || code(&e) == Some(ERROR_PIPE_NOT_CONNECTED) =>
            {
                if rx.mid {
                    let msg = format!(
                        "{}: the peer closed the pipe in the middle of a message",
                        self.label
                    );
                    return Err(Self::poison(&mut rx, io::ErrorKind::UnexpectedEof, msg));
                }
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    pub(crate) fn read(&self, buf: &mut [u8], wait: Wait) -> io::Result<usize> {
        if self.mode == PipeMode::Message {
            // Message bytes without boundaries; skip empty messages (a 0 would
            // read as end of stream).
            loop {
                match self.recv_msg_slice(buf, wait)? {
                    None => return Ok(0),
                    Some(r) if r.len == 0 && r.remaining == 0 && !buf.is_empty() => continue,
                    Some(r) => return Ok(r.len),
                }
            }
        }
        let rx = lock(&self.rx);
        match self.read_once(&rx, buf, wait) {
            Ok((n, _)) => Ok(n as usize),
            Err(e)
                if code(&e) == Some(ERROR_BROKEN_PIPE)
                    || code(&e) == Some(ERROR_PIPE_NOT_CONNECTED) =>
            {
                Ok(0)
            }
            Err(e) => Err(e),
        }
    }

    /// Waits for an earlier write still in flight.
    fn finish_in_flight(&self, tx: &mut Tx, wait: Wait) -> io::Result<()> {
        if tx.in_flight.is_none() {
            return Ok(());
        }
        match tx.ov.wait(self.h(), wait) {
            Ok(None) => Err(wait.expired_error()),
            r => {
                if let Some(mut b) = tx.in_flight.take() {
                    b.clear();
                    tx.spare = b;
                }
                r.map(drop)
            }
        }
    }

    /// Writes `data` as one `WriteFile` (one message in message mode).
    fn write_op(&self, data: &[u8], wait: Wait) -> io::Result<usize> {
        let len = u32::try_from(data.len()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "a single write is limited to 4 GiB - 1 bytes",
            )
        })?;
        let mut tx = lock(&self.tx);
        self.finish_in_flight(&mut tx, wait)?;
        let h = self.h();
        if wait == Wait::Block {
            let p = data.as_ptr();
            // SAFETY: nothing in flight on tx.ov; data outlives the call, which
            // completes before returning.
            let (n, _) = unsafe {
                tx.ov.run(h, Wait::Block, |ov| {
                    WriteFile(h, p, len, std::ptr::null_mut(), ov)
                })
            }?;
            return Ok(n as usize);
        }
        // A write that cannot finish now stays in flight from our own copy: the
        // data is accepted and goes out as the reader drains the pipe.
        let mut buf = std::mem::take(&mut tx.spare);
        buf.clear();
        buf.extend_from_slice(data);
        let p = buf.as_ptr();
        // SAFETY: nothing in flight on tx.ov; buf is kept in tx.in_flight (heap
        // storage does not move) until the write completes.
        match unsafe {
            tx.ov
                .start(h, |ov| WriteFile(h, p, len, std::ptr::null_mut(), ov))
        }? {
            Started::Done(n, _) => {
                tx.spare = buf;
                Ok(n as usize)
            }
            Started::Pending => {
                tx.in_flight = Some(buf);
                match tx.ov.wait(h, wait) {
                    Ok(None) => Ok(data.len()),
                    Ok(Some((n, _))) => {
                        if let Some(b) = tx.in_flight.take() {
                            tx.spare = b;
                        }
                        Ok(n as usize)
                    }
                    Err(e) => {
                        tx.in_flight = None;
                        Err(e)
                    }
                }
            }
        }
    }

    pub(crate) fn send_msg(&self, msg: &[u8], wait: Wait) -> io::Result<()> {
        self.write_op(msg, wait).map(drop)
    }

    pub(crate) fn write(&self, buf: &[u8], wait: Wait) -> io::Result<usize> {
        let n = buf.len().min(u32::MAX as usize);
        self.write_op(&buf[..n], wait)
    }

    pub(crate) fn flush(&self, wait: Wait) -> io::Result<()> {
        let mut tx = lock(&self.tx);
        self.finish_in_flight(&mut tx, wait)
    }

    pub(crate) fn disconnect(&self) -> io::Result<()> {
        self.flush(Wait::Block)?;
        if self.server {
            // SAFETY: our pipe handle.
            cvt(unsafe { FlushFileBuffers(self.h()) })?;
            // SAFETY: our pipe handle.
            cvt(unsafe { DisconnectNamedPipe(self.h()) })?;
        }
        Ok(())
    }

    /// The pipe's type (`GetNamedPipeInfo`), which decides how writes travel
    /// whatever this end's read mode.
    pub(crate) fn pipe_type(&self) -> io::Result<PipeMode> {
        let mut flags = 0u32;
        // SAFETY: our pipe handle; flags is a valid out-pointer, the other
        // outputs are optional and not asked for.
        cvt(unsafe {
            GetNamedPipeInfo(
                self.h(),
                &mut flags,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        })?;
        Ok(if flags & PIPE_TYPE_MESSAGE != 0 {
            PipeMode::Message
        } else {
            PipeMode::Byte
        })
    }

    pub(crate) fn peer_pid(&self) -> io::Result<u32> {
        let mut pid = 0u32;
        // SAFETY: our pipe handle; pid is a valid out-pointer.
        cvt(unsafe {
            if self.server {
                GetNamedPipeClientProcessId(self.h(), &mut pid)
            } else {
                GetNamedPipeServerProcessId(self.h(), &mut pid)
            }
        })?;
        Ok(pid)
    }

    pub(crate) fn peer_user(&self) -> io::Result<UserRepr> {
        if self.server {
            if let Ok(sid) = self.client_user_by_impersonation() {
                return Ok(UserRepr(sid));
            }
        } else if self.remote {
            // Its pid is another machine's: a local process of that number is
            // someone else.
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the pipe is served on another machine, whose users cannot be read here",
            ));
        }
        let pid = self.peer_pid()?;
        // SAFETY: plain OpenProcess; the handle is owned below.
        let p = unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid) };
        let p = owned(p, std::ptr::null_mut())?;
        let mut token: HANDLE = std::ptr::null_mut();
        // SAFETY: p is a process handle we own; token receives a new handle.
        cvt(unsafe { OpenProcessToken(raw(&p), TOKEN_QUERY, &mut token) })?;
        let token = owned(token, std::ptr::null_mut())?;
        token_user_sid(raw(&token)).map(UserRepr)
    }

    /// The client's user, read from its token while impersonating it (possible
    /// at the identification level our clients grant).
    fn client_user_by_impersonation(&self) -> io::Result<String> {
        // SAFETY: our server pipe handle.
        cvt(unsafe { ImpersonateNamedPipeClient(self.h()) })?;
        let mut token: HANDLE = std::ptr::null_mut();
        // SAFETY: reading the impersonation token of this thread.
        let r = cvt(unsafe { OpenThreadToken(GetCurrentThread(), TOKEN_QUERY, 1, &mut token) });
        // SAFETY: ends the impersonation started above; must run on every path.
        if unsafe { RevertToSelf() } == 0 {
            // The thread would go on with the client's identity. Microsoft's
            // advice when RevertToSelf fails is to end the process: nothing
            // this thread does afterwards could be trusted.
            let e = io::Error::last_os_error();
            eprintln!(
                "named-ipc: RevertToSelf failed ({e}) after reading the user of a client of \
                 {}; stopping the process rather than run on as that client",
                self.label
            );
            std::process::abort();
        }
        r?;
        let token = owned(token, std::ptr::null_mut())?;
        token_user_sid(raw(&token))
    }
}

/// Every pipe under `\\.\pipe\`.
pub(crate) fn list() -> io::Result<Vec<PipeEntry>> {
    let pattern = wide(&format!("{PIPE_PREFIX}*"));
    // SAFETY: all-zero is a valid WIN32_FIND_DATAW.
    let mut data: WIN32_FIND_DATAW = unsafe { std::mem::zeroed() };
    // SAFETY: pattern is NUL-terminated; data is a valid out-pointer.
    let h = unsafe { FindFirstFileW(pattern.as_ptr(), &mut data) };
    if h == INVALID_HANDLE_VALUE {
        let e = io::Error::last_os_error();
        if code(&e) == Some(ERROR_FILE_NOT_FOUND) {
            return Ok(Vec::new());
        }
        return Err(e);
    }
    let mut out = Vec::new();
    loop {
        let n = data
            .cFileName
            .iter()
            .position(|&c| c == 0)
            .unwrap_or(data.cFileName.len());
        let name = String::from_utf16_lossy(&data.cFileName[..n]);
        out.push(PipeEntry {
            os_name: format!("{PIPE_PREFIX}{name}"),
            name,
            server_pid: None,
            alive: Some(true),
        });
        // SAFETY: h is our find handle; data is a valid out-pointer.
        if unsafe { FindNextFileW(h, &mut data) } == 0 {
            break;
        }
    }
    // SAFETY: h is our find handle.
    unsafe { FindClose(h) };
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}
