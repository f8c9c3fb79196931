//! Links GCC's unwinder into the binaries instead of loading `libgcc_s.so.1` at every start.
//!
//! Rust's standard library on `*-linux-gnu` asks for the shared `libgcc_s` only for its
//! unwinder (`_Unwind_*`: panics, backtraces). Loading it costs every `lasso` start a library
//! map and its relocations, and its constructor (`__cpu_indicator_init`) runs CPUID, which traps
//! to the hypervisor in a VM. GCC ships the same unwinder as the static `libgcc_eh.a`: named
//! here, it comes before the standard library's `-lgcc_s` on the link line, so it provides the
//! `_Unwind_*` symbols and the linker's `--as-needed` drops `libgcc_s` (nothing left needs it).
//! Panics unwind exactly as before (same code, same `.eh_frame` lookup through
//! `dl_iterate_phdr`); `tests/binary_startup.rs` checks both the missing `NEEDED` entry and a
//! panic that unwinds and is caught.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let target_env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let crt_static = std::env::var("CARGO_CFG_TARGET_FEATURE")
        .unwrap_or_default()
        .split(',')
        .any(|f| f == "crt-static");
    // A fully static build already links libgcc_eh itself; other C libraries have their own.
    if target_os == "linux" && target_env == "gnu" && !crt_static {
        println!("cargo:rustc-link-lib=static:-bundle=gcc_eh");
    }
}
