//! `start` in the process that ran `create` (as `lasso run` and `lasso-runc run` do) takes the
//! state `create` wrote from memory instead of reading `state.json` back, but still works out
//! the live status: an init killed between `create` and `start` is refused as stopped, never
//! started, and a healthy one starts and runs to its exit. One test per file: `create` clones
//! this process, so no other test thread should be allocating meanwhile.

mod runc_support;
use lasso::engine::container::{wait_child, ContainerError, CreateOptions, Runtime};
use runc_support::*;

#[test]
fn start_in_the_creating_process_checks_liveness_and_runs_the_container() {
    if !can_run() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let rt = Runtime::new(root.path().join("engine"));
    let b = Bundle::new("exit 7");
    let opts = |id: &str| CreateOptions {
        id: id.into(),
        bundle: b.path().to_path_buf(),
        ..CreateOptions::default()
    };

    // Killed between create and start: refused, with the status the state file gives too.
    let id = unique_id("here-dead");
    let c = rt.create(&opts(&id)).unwrap();
    // SAFETY: a plain kill(2) of our own child, then its reaping.
    unsafe { libc::kill(c.state.pid, libc::SIGKILL) };
    let _ = wait_child(c.state.pid);
    match rt.start(&id) {
        Err(ContainerError::NotCreated { status, .. }) => assert_eq!(status, "stopped"),
        other => panic!("a dead init was not refused: {other:?}"),
    }
    rt.delete(&id, true).unwrap();

    // Healthy: started from the memo, it runs its command to the end.
    let id = unique_id("here-ok");
    let c = rt.create(&opts(&id)).unwrap();
    assert_eq!(rt.load(&id).unwrap().status.as_str(), "created");
    rt.start(&id).unwrap();
    assert_eq!(wait_child(c.state.pid).unwrap(), 7);
    assert_eq!(rt.load(&id).unwrap().status.as_str(), "stopped");
    rt.delete(&id, false).unwrap();
    assert!(rt.store.ids().unwrap().is_empty());
}
