//! What the binaries load at start (`build.rs` links GCC's unwinder statically instead of
//! loading `libgcc_s.so.1`), and that panics still unwind with it. This test binary is linked
//! like `lasso` (the link request comes from the library), so its own process is a witness.

use std::process::Command;

/// The shared objects the dynamic loader maps for `binary`, as it reports them itself.
fn loaded_objects(binary: &str) -> String {
    let out = Command::new(binary)
        .env("LD_TRACE_LOADED_OBJECTS", "1")
        .output()
        .expect("run the loader's trace");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn lasso_starts_without_loading_libgcc_s() {
    for binary in [
        env!("CARGO_BIN_EXE_lasso"),
        env!("CARGO_BIN_EXE_lasso-runc"),
    ] {
        let objects = loaded_objects(binary);
        assert!(objects.contains("libc.so"), "{binary}: {objects}");
        assert!(!objects.contains("libgcc_s"), "{binary}: {objects}");
    }
}

#[test]
fn lasso_starts_without_loading_libm() {
    // `pow` is defined in the binary (src/main.rs), the only thing it took from libm.
    let objects = loaded_objects(env!("CARGO_BIN_EXE_lasso"));
    assert!(!objects.contains("libm.so"), "{objects}");
}

#[test]
fn this_process_has_no_libgcc_s_mapped() {
    // A call into the library links it, and with it the library's link request.
    lasso::phases::mark("binary-startup-test");
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    assert!(maps.contains("libc.so"), "{maps}");
    assert!(!maps.contains("libgcc_s"), "{maps}");
}

#[test]
fn a_panic_unwinds_runs_destructors_and_is_caught() {
    use std::sync::atomic::{AtomicBool, Ordering};
    static DROPPED: AtomicBool = AtomicBool::new(false);
    struct Guard;
    impl Drop for Guard {
        fn drop(&mut self) {
            DROPPED.store(true, Ordering::SeqCst);
        }
    }
    let caught = std::panic::catch_unwind(|| {
        let _guard = Guard;
        panic!("unwind me");
    });
    let payload = caught.expect_err("the panic must reach catch_unwind");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"unwind me"));
    assert!(
        DROPPED.load(Ordering::SeqCst),
        "the guard's destructor did not run"
    );
}

#[test]
fn a_panicking_thread_is_reported_to_its_joiner() {
    let joined = std::thread::spawn(|| -> u32 { panic!("thread panic") }).join();
    assert!(joined.is_err());
}

#[test]
fn a_backtrace_walks_more_than_one_frame() {
    #[inline(never)]
    fn capture() -> std::backtrace::Backtrace {
        std::backtrace::Backtrace::force_capture()
    }
    let trace = capture();
    assert_eq!(trace.status(), std::backtrace::BacktraceStatus::Captured);
    let text = trace.to_string();
    assert!(text.lines().count() > 4, "{text}");
}
