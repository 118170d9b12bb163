//! Security descriptors and SIDs.

use std::io;
use std::os::windows::io::OwnedHandle;

use windows_sys::Win32::Foundation::{LocalFree, HANDLE, HLOCAL};
use windows_sys::Win32::Security::Authorization::{
    ConvertSidToStringSidW, ConvertStringSecurityDescriptorToSecurityDescriptorW,
    ConvertStringSidToSidW, SDDL_REVISION_1,
};
use windows_sys::Win32::Security::{
    GetTokenInformation, TokenUser, PSECURITY_DESCRIPTOR, PSID, SECURITY_ATTRIBUTES, TOKEN_QUERY,
    TOKEN_USER,
};
use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};

use super::{cvt, owned, raw, wide};

/// Read and write for clients, without `FILE_CREATE_PIPE_INSTANCE` (which equals
/// `FILE_APPEND_DATA`): `FILE_GENERIC_READ | FILE_GENERIC_WRITE` minus 0x4, so
/// other users may talk to the pipe but not serve it.
const CLIENT_RW: &str = "0x12019b";

/// A self-relative security descriptor allocated by the OS.
pub(crate) struct SecurityDescriptor {
    sd: PSECURITY_DESCRIPTOR,
}

// SAFETY: the descriptor is an immutable heap block owned by this value.
unsafe impl Send for SecurityDescriptor {}
// SAFETY: as above; the OS only reads it.
unsafe impl Sync for SecurityDescriptor {}

impl SecurityDescriptor {
    /// Parses an SDDL string.
    pub(crate) fn from_sddl(sddl: &str) -> io::Result<SecurityDescriptor> {
        let w = wide(sddl);
        let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
        // SAFETY: w is NUL-terminated; sd receives a LocalAlloc'd block we free.
        cvt(unsafe {
            ConvertStringSecurityDescriptorToSecurityDescriptorW(
                w.as_ptr(),
                SDDL_REVISION_1,
                &mut sd,
                std::ptr::null_mut(),
            )
        })?;
        Ok(SecurityDescriptor { sd })
    }

    /// Protected DACL: the current user and SYSTEM get full control; with
    /// `local_users`, Authenticated Users may also read and write.
    pub(crate) fn default_for(local_users: bool) -> io::Result<SecurityDescriptor> {
        let me = current_user_sid()?;
        let mut sddl = format!("D:P(A;;GA;;;{me})(A;;GA;;;SY)");
        if local_users {
            sddl.push_str(&format!("(A;;{CLIENT_RW};;;AU)"));
        }
        SecurityDescriptor::from_sddl(&sddl)
    }

    /// `SECURITY_ATTRIBUTES` pointing at this descriptor; handles not inheritable.
    pub(crate) fn attributes(&self) -> SECURITY_ATTRIBUTES {
        SECURITY_ATTRIBUTES {
            nLength: std::mem::size_of::<SECURITY_ATTRIBUTES>() as u32,
            lpSecurityDescriptor: self.sd,
            bInheritHandle: 0,
        }
    }
}

impl Drop for SecurityDescriptor {
    fn drop(&mut self) {
        // SAFETY: sd came from ConvertStringSecurityDescriptorToSecurityDescriptorW.
        unsafe { LocalFree(self.sd as HLOCAL) };
    }
}

/// The user SID of a token, as a string.
pub(crate) fn token_user_sid(token: HANDLE) -> io::Result<String> {
    let mut len = 0u32;
    // SAFETY: a size query with no buffer.
    unsafe { GetTokenInformation(token, TokenUser, std::ptr::null_mut(), 0, &mut len) };
    if len == 0 {
        return Err(io::Error::last_os_error());
    }
    // u64 elements: TOKEN_USER needs pointer alignment.
    let mut buf = vec![0u64; (len as usize).div_ceil(8)];
    // SAFETY: buf has room for len bytes.
    cvt(unsafe { GetTokenInformation(token, TokenUser, buf.as_mut_ptr().cast(), len, &mut len) })?;
    // SAFETY: the OS filled buf with a TOKEN_USER.
    let sid = unsafe { (*(buf.as_ptr() as *const TOKEN_USER)).User.Sid };
    // sid points into buf, which lives until we return.
    sid_string(sid)
}

/// A SID's string form.
fn sid_string(sid: PSID) -> io::Result<String> {
    let mut s: *mut u16 = std::ptr::null_mut();
    // SAFETY: the caller's sid is valid for this call; s receives a
    // LocalAlloc'd string.
    cvt(unsafe { ConvertSidToStringSidW(sid, &mut s) })?;
    // SAFETY: s is NUL-terminated UTF-16 from the OS.
    let text = unsafe {
        let mut n = 0;
        while *s.add(n) != 0 {
            n += 1;
        }
        String::from_utf16_lossy(std::slice::from_raw_parts(s, n))
    };
    // SAFETY: s came from ConvertSidToStringSidW.
    unsafe { LocalFree(s as HLOCAL) };
    Ok(text)
}

/// `text` parsed as a SID and written back the way Windows writes SIDs.
pub(crate) fn normalize_sid(text: &str) -> io::Result<String> {
    let w = wide(text);
    let mut sid: PSID = std::ptr::null_mut();
    // SAFETY: w is NUL-terminated; sid receives a LocalAlloc'd SID freed below.
    if unsafe { ConvertStringSidToSidW(w.as_ptr(), &mut sid) } == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "expected a SID, such as S-1-5-21-…",
        ));
    }
    let r = sid_string(sid);
    // SAFETY: sid came from ConvertStringSidToSidW.
    unsafe { LocalFree(sid as HLOCAL) };
    r
}

/// The SID of the user this process runs as.
pub(crate) fn current_user_sid() -> io::Result<String> {
    let mut token: HANDLE = std::ptr::null_mut();
    // SAFETY: the pseudo-handle of our process; token receives a new handle.
    cvt(unsafe { OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut token) })?;
    let token: OwnedHandle = owned(token, std::ptr::null_mut())?;
    token_user_sid(raw(&token))
}
