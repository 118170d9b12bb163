//! The server side: a pipe's instances, one always waiting for the next client.

use std::io;
use std::os::windows::io::OwnedHandle;
use std::sync::Mutex;

use windows_sys::Win32::Foundation::{
    ERROR_ACCESS_DENIED, ERROR_BROKEN_PIPE, ERROR_NO_DATA, ERROR_OPERATION_ABORTED,
    ERROR_PIPE_BUSY, ERROR_PIPE_CONNECTED, INVALID_HANDLE_VALUE,
};
use windows_sys::Win32::Storage::FileSystem::{
    FILE_FLAG_FIRST_PIPE_INSTANCE, FILE_FLAG_OVERLAPPED, PIPE_ACCESS_DUPLEX, PIPE_ACCESS_INBOUND,
    PIPE_ACCESS_OUTBOUND,
};
use windows_sys::Win32::System::Pipes::{
    ConnectNamedPipe, CreateNamedPipeW, DisconnectNamedPipe, PIPE_ACCEPT_REMOTE_CLIENTS,
    PIPE_READMODE_BYTE, PIPE_READMODE_MESSAGE, PIPE_REJECT_REMOTE_CLIENTS, PIPE_TYPE_BYTE,
    PIPE_TYPE_MESSAGE, PIPE_WAIT,
};

use super::super::security::SecurityDescriptor;
use super::super::{owned, raw, Overlapped, Started};
use crate::error::{Error, ErrorKind, Result};
use crate::pipe::{Direction, ListenerOptions, PipeMode};
use crate::security::Security;
use crate::sys::{Accept, Wait};

use super::super::flag::Flag;
use super::{code, lock, Addr, Stream};

/// The pipe instance waiting for (or being connected to) the next client.
struct Instance {
    handle: OwnedHandle,
    /// Its event is shared with the threads waiting for a client
    /// ([`Overlapped::shared_event`]).
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
    /// The one instance listening for the next client (`None` after an
    /// accept took it and no new one could be made: all are in use). One,
    /// not one per waiting accept: a client connects to whichever listening
    /// instance the system picks, so every waiting accept must be waiting on
    /// all of them — which one shared instance makes true.
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

    /// A listening instance with no operation in flight (at first, the
    /// instance `bind` created), for a driver that manages instances itself
    /// (the async listener).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(super) fn take_first(&self) -> Option<OwnedHandle> {
        let mut pending = lock(&self.pending);
        if pending.as_ref()?.connecting {
            return None;
        }
        pending.take().map(|i| i.handle)
    }

    /// A new instance of the pipe (`ERROR_PIPE_BUSY` when all are taken).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(super) fn new_instance(&self) -> io::Result<OwnedHandle> {
        self.create_instance(false).map(|i| i.handle)
    }

    /// The stream of an instance a client connected to.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(super) fn connected_stream(&self, handle: OwnedHandle) -> io::Result<Stream> {
        Stream::new(
            handle,
            Overlapped::new()?,
            true,
            self.mode,
            self.max_message,
            self.label.clone(),
        )
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

    /// Accepts one client, or [`Accept::Interrupted`] once `flag` is raised.
    /// [`Accept::Busy`]: no instance is free (all `max_instances`
    /// are connected); the caller waits for one of its streams to close.
    ///
    /// Several threads may accept at once. They share the one listening
    /// instance: each checks it under the lock and waits on its event
    /// without the lock, so one waiting accept never delays another past its
    /// deadline; the first to see it connected takes it and puts a new
    /// instance in its place, and the others (their wait ended by the same
    /// event) go on waiting on that one.
    pub(crate) fn accept(&self, wait: Wait, flag: Option<&Flag>) -> io::Result<Accept<Stream>> {
        let mut wait = wait;
        loop {
            let mut pending = lock(&self.pending);
            if pending.is_none() {
                match self.create_instance(false) {
                    Ok(i) => *pending = Some(i),
                    Err(e) if code(&e) == Some(ERROR_PIPE_BUSY) => return Ok(Accept::Busy),
                    Err(e) => return Err(e),
                }
            }
            let Some(inst) = pending.as_mut() else {
                continue;
            };
            let h = raw(&inst.handle);
            let connected = if inst.connecting {
                match inst.ov.result(h, false) {
                    Ok(Some(_)) => {
                        inst.connecting = false;
                        true
                    }
                    Ok(None) => false,
                    Err(e) => {
                        inst.connecting = false;
                        if code(&e) == Some(ERROR_OPERATION_ABORTED) {
                            // The thread that started the wait for a client
                            // has exited (Windows cancels a thread's I/O
                            // when it ends): start it again from this one.
                            continue;
                        }
                        if code(&e) == Some(ERROR_NO_DATA) || code(&e) == Some(ERROR_BROKEN_PIPE) {
                            // The client left already: listen again.
                            // SAFETY: h is our pipe instance.
                            unsafe { DisconnectNamedPipe(h) };
                            continue;
                        }
                        inst.ov.release_event_holders();
                        *pending = None;
                        return Err(e);
                    }
                }
            } else {
                // SAFETY: no operation is in flight on inst.ov (threads
                // waiting on it only wait on its event); ConnectNamedPipe
                // uses no buffer.
                match unsafe { inst.ov.start(h, |ov| ConnectNamedPipe(h, ov)) } {
                    Ok(Started::Done(..)) => true,
                    Ok(Started::Pending) => {
                        inst.connecting = true;
                        false
                    }
                    Err(e) if code(&e) == Some(ERROR_PIPE_CONNECTED) => true,
                    Err(e) if code(&e) == Some(ERROR_NO_DATA) => {
                        // A client connected and closed before we got here.
                        // SAFETY: h is our pipe instance.
                        unsafe { DisconnectNamedPipe(h) };
                        continue;
                    }
                    Err(e) => {
                        inst.ov.release_event_holders();
                        *pending = None;
                        return Err(e);
                    }
                }
            };
            if !connected {
                // Wait for a client without the lock; whoever sees the
                // instance connected first takes it.
                let event = inst.ov.shared_event();
                drop(pending);
                match event.wait(wait.anchor(), flag.map(Flag::handle))? {
                    Some(true) => continue,
                    Some(false) => return Ok(Accept::Interrupted),
                    None => return Err(wait.expired_error()),
                }
            }
            let Some(Instance { handle, ov, .. }) = pending.take() else {
                continue;
            };
            // Keep an instance listening so clients never see "not found".
            if let Ok(next) = self.create_instance(false) {
                *pending = Some(next);
            }
            drop(pending);
            // Threads still holding this instance's event (their wait ended,
            // or is about to end, on it) must not see the stream's I/O
            // reset it: the stream then gets an event of its own. (No new
            // holder can appear: the instance is out of the pool.)
            let ov = if ov.event_is_shared() {
                ov.release_event_holders();
                Overlapped::new()?
            } else {
                ov
            };
            return Stream::new(
                handle,
                ov,
                true,
                self.mode,
                self.max_message,
                self.label.clone(),
            )
            .map(Accept::Client);
        }
    }

    pub(crate) fn display(&self) -> String {
        self.addr.full.clone()
    }
}
