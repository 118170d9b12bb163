//! When building for Windows, compiles the plain Win32 C test peers in `c/` with
//! mingw-w64 (statically linked, so Wine needs no extra DLLs) and tells the tests
//! where they are through `NIPC_C_PEERS`. On Unix, sets `cfg(tests_as_root)`
//! when building as root (CI does), for the tests that need a second uid.
//!
//! Also sets `cfg(wine)` when the Windows tests will run under Wine (cargo's
//! runner for the target is `wine`, as `ci/windows.sh` sets it, or
//! `NIPC_WINE=1`): tests that cannot run there are `#[cfg_attr(wine, ignore =
//! "reason")]`, so they show as ignored under Wine and still run on Windows.
//! (The same logic is in crates/nipc/build.rs.)

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=c");
    println!("cargo:rerun-if-env-changed=NIPC_MINGW_CC");
    println!("cargo::rustc-check-cfg=cfg(tests_as_root)");
    if std::env::var_os("CARGO_CFG_UNIX").is_some() {
        let uid = Command::new("id").arg("-u").output();
        if uid.is_ok_and(|o| o.status.success() && o.stdout.trim_ascii() == b"0") {
            println!("cargo:rustc-cfg=tests_as_root");
        }
    }
    wine_cfg();
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("windows") {
        return;
    }
    let cc = std::env::var("NIPC_MINGW_CC").unwrap_or_else(|_| "x86_64-w64-mingw32-gcc".into());
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    for prog in [
        "pipe_client",
        "pipe_server",
        "framed_client",
        "framed_msg_server",
        "shm_writer",
        "shm_reader",
    ] {
        let src = format!("c/{prog}.c");
        let exe = out.join(format!("{prog}.exe"));
        let status = Command::new(&cc)
            .args(["-O2", "-static", "-Wall", "-o"])
            .arg(&exe)
            .arg(&src)
            .status()
            .unwrap_or_else(|e| panic!("cannot run {cc} (mingw-w64) to build {src}: {e}"));
        assert!(status.success(), "{cc} failed to build {src}");
    }
    println!("cargo:rustc-env=NIPC_C_PEERS={}", out.display());
}

/// Emits `cfg(wine)` for a Windows target whose tests run under Wine.
fn wine_cfg() {
    println!("cargo:rustc-check-cfg=cfg(wine)");
    println!("cargo:rerun-if-env-changed=NIPC_WINE");
    let target = std::env::var("TARGET").unwrap_or_default();
    let runner = format!(
        "CARGO_TARGET_{}_RUNNER",
        target.to_uppercase().replace(['-', '.'], "_")
    );
    println!("cargo:rerun-if-env-changed={runner}");
    let windows = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("windows");
    let wine = std::env::var("NIPC_WINE").as_deref() == Ok("1")
        || std::env::var(&runner).is_ok_and(|r| r.to_ascii_lowercase().contains("wine"));
    if windows && wine {
        println!("cargo:rustc-cfg=wine");
    }
}
