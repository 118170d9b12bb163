//! Windows: the DACL a pipe gets. Wine stores and returns security descriptors
//! but does not enforce them, so these tests read the DACL back rather than try
//! to be refused.
#![cfg(windows)]
#![allow(unsafe_code)]

mod common;

use common::*;
use named_ipc::os::windows::{ListenerOptionsExt, UserIdExt};
use named_ipc::pipe::{ListenerOptions, PipeListener, UserId};
use named_ipc::Security;
use windows_sys::Win32::Foundation::{CloseHandle, LocalFree, GENERIC_READ, INVALID_HANDLE_VALUE};
use windows_sys::Win32::Security::Authorization::{
    ConvertSecurityDescriptorToStringSecurityDescriptorW, GetSecurityInfo, SDDL_REVISION_1,
    SE_KERNEL_OBJECT,
};
use windows_sys::Win32::Security::{DACL_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR};
use windows_sys::Win32::Storage::FileSystem::{CreateFileW, OPEN_EXISTING, READ_CONTROL};

/// Opens the pipe as a client with READ_CONTROL and returns its DACL as SDDL,
/// or `None` if the OS would not report it (Windows and Wine both do: the
/// tests fail then rather than pass without looking).
fn dacl_of(l: &PipeListener) -> Option<String> {
    let name: Vec<u16> = l.os_name().encode_utf16().chain(Some(0)).collect();
    // SAFETY: plain CreateFileW on a NUL-terminated name; the handle is closed below.
    let h = unsafe {
        CreateFileW(
            name.as_ptr(),
            GENERIC_READ | READ_CONTROL,
            0,
            std::ptr::null(),
            OPEN_EXISTING,
            0,
            std::ptr::null_mut(),
        )
    };
    assert_ne!(h, INVALID_HANDLE_VALUE, "cannot open {}", l.os_name());
    let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
    // SAFETY: h is open; sd receives a LocalAlloc'd descriptor freed below.
    let rc = unsafe {
        GetSecurityInfo(
            h,
            SE_KERNEL_OBJECT,
            DACL_SECURITY_INFORMATION,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            &mut sd,
        )
    };
    // SAFETY: h is ours.
    unsafe { CloseHandle(h) };
    if rc != 0 {
        return None;
    }
    let mut s: *mut u16 = std::ptr::null_mut();
    // SAFETY: sd is a valid descriptor; s receives a LocalAlloc'd string.
    let ok = unsafe {
        ConvertSecurityDescriptorToStringSecurityDescriptorW(
            sd,
            SDDL_REVISION_1,
            DACL_SECURITY_INFORMATION,
            &mut s,
            std::ptr::null_mut(),
        )
    };
    let text = (ok != 0).then(|| {
        // SAFETY: s is NUL-terminated UTF-16 from the OS.
        unsafe {
            let mut n = 0;
            while *s.add(n) != 0 {
                n += 1;
            }
            String::from_utf16_lossy(std::slice::from_raw_parts(s, n))
        }
    });
    // SAFETY: both came from LocalAlloc in the OS.
    unsafe {
        LocalFree(s.cast());
        LocalFree(sd);
    }
    text
}

#[test]
fn the_default_dacl_is_protected_and_owner_only() {
    let l = PipeListener::bind(&unique("dacl")).unwrap();
    let sddl = dacl_of(&l).expect("cannot read the pipe's DACL back");
    let me = UserId::current().unwrap();
    assert!(sddl.starts_with("D:P"), "not protected: {sddl}");
    assert!(sddl.contains(me.sid()), "owner missing: {sddl}");
    assert!(sddl.contains(";;;SY)"), "SYSTEM missing: {sddl}");
    for other in [";;;WD)", ";;;AN)", ";;;AU)", ";;;BU)"] {
        assert!(!sddl.contains(other), "{other} admitted: {sddl}");
    }
}

#[test]
fn local_users_may_read_and_write_but_not_create_instances() {
    let l = ListenerOptions::new()
        .security(Security::LocalUsers)
        .create(&unique("dacl-au"))
        .unwrap();
    let sddl = dacl_of(&l).expect("cannot read the pipe's DACL back");
    let au = sddl
        .split(')')
        .find(|ace| ace.ends_with(";;;AU"))
        .unwrap_or_else(|| panic!("no AU entry: {sddl}"));
    // 0x12019b: FILE_GENERIC_READ | FILE_GENERIC_WRITE without
    // FILE_CREATE_PIPE_INSTANCE (0x4).
    assert!(au.to_ascii_lowercase().contains("0x12019b"), "{au}");
}

#[test]
fn a_custom_sddl_is_applied_and_a_bad_one_is_refused() {
    let me = UserId::current().unwrap();
    let sddl = format!("D:P(A;;GA;;;{})", me.sid());
    let l = ListenerOptions::new()
        .security_descriptor_sddl(&sddl)
        .create(&unique("dacl-custom"))
        .unwrap();
    let got = dacl_of(&l).expect("cannot read the pipe's DACL back");
    assert!(got.contains(me.sid()) && !got.contains(";;;SY)"), "{got}");
    let e = ListenerOptions::new()
        .security_descriptor_sddl("this is not SDDL")
        .create(&unique("dacl-bad"))
        .unwrap_err();
    assert!(e.to_string().contains("SDDL"), "{e}");
}
