//! cfg aliases for the platform families the Unix backend distinguishes, so
//! the code says `#[cfg(linux_like)]` instead of repeating `any(...)` lists.
//!
//! - `linux_like`: Linux and Android (futex, memfd + seals, `SO_PEERCRED`,
//!   robust mutexes, `MSG_CMSG_CLOEXEC`).
//! - `apple`: macOS, iOS, tvOS, watchOS, visionOS (`__ulock`, `SO_NOSIGPIPE`,
//!   `LOCAL_PEERPID`, 31-byte shm names).
//! - `sock_cloexec`: systems with `SOCK_CLOEXEC`/`SOCK_NONBLOCK`, `accept4`,
//!   `MSG_NOSIGNAL` and `MSG_CMSG_CLOEXEC` (Linux, Android, FreeBSD, NetBSD,
//!   OpenBSD).
fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    for alias in ["linux_like", "apple", "sock_cloexec"] {
        println!("cargo::rustc-check-cfg=cfg({alias})");
    }
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let vendor = std::env::var("CARGO_CFG_TARGET_VENDOR").unwrap_or_default();
    let linux_like = matches!(os.as_str(), "linux" | "android");
    if linux_like {
        println!("cargo::rustc-cfg=linux_like");
    }
    if vendor == "apple" {
        println!("cargo::rustc-cfg=apple");
    }
    if linux_like || matches!(os.as_str(), "freebsd" | "netbsd" | "openbsd") {
        println!("cargo::rustc-cfg=sock_cloexec");
    }
}
