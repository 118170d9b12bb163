//! Sets `cfg(wine)` when the Windows tests will run under Wine (cargo's runner
//! for the target is `wine`, as `ci/windows.sh` sets it, or `NIPC_WINE=1`):
//! CLI tests that cannot run there are `#[cfg_attr(wine, ignore = "reason")]`,
//! so they show as ignored under Wine and still run on Windows. (The same
//! logic is in tests-integration/build.rs.)

fn main() {
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
