//! Link-time settings of lasso's binaries (nothing is generated).
//!
//! Every `lasso` command starts with the dynamic loader applying the position-independent
//! binary's ~21,000 relative relocations. As classic `RELA` entries they are a 500 KB table
//! (24 bytes each) that the loader reads page by page at every start; packed (`DT_RELR`, a
//! bitmap per run of adjacent pointers) they are a few KB. The relocated pages, and ASLR, are
//! the same either way. Packing needs GNU ld 2.38+ (or lld) and a glibc that reads `DT_RELR`
//! (2.36+, which the linker then requires by a version reference, so an older loader refuses
//! the binary with a clear message instead of misrunning it). `LASSO_NO_RELR=1` at build time
//! turns it off for older toolchains.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=LASSO_NO_RELR");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" && std::env::var_os("LASSO_NO_RELR").is_none() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
