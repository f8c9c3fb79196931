//! Tests of the state store (`engine::state`): ids, atomic writes, staged states, liveness.
use super::*;

#[test]
fn ids_that_climb_out_of_the_root_are_refused() {
    for bad in ["", "..", "../x", "a/b", ".hidden", "a b"] {
        assert!(check_id(bad).is_err(), "{bad:?} accepted");
    }
    check_id("web-1.test_2").unwrap();
}

#[test]
fn a_replaced_state_file_holds_the_new_bytes_and_leaves_no_temporary() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    write_atomic(&path, b"first").unwrap();
    write_atomic(&path, b"second, longer").unwrap();
    write_atomic(&path, b"third").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"third");
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["state.json"], "stray files left: {names:?}");
}

#[test]
fn a_directory_in_place_of_a_state_file_is_refused_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pid");
    fs::create_dir(&path).unwrap();
    fs::write(path.join("inside"), b"x").unwrap();
    assert!(write_atomic(&path, b"1234").is_err());
    assert!(
        path.join("inside").is_file(),
        "the directory was moved away"
    );
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn own_start_time_is_read_and_a_dead_pid_is_not_alive() {
    let me = std::process::id() as i32;
    let start = process_start_time(me).expect("own stat");
    assert!(is_alive(me, start));
    assert!(
        !is_alive(me, start + 1),
        "a different start time must not count"
    );
}

#[test]
fn a_state_saved_before_the_hooks_flag_still_reads_the_spec_for_hooks() {
    let old = r#"{"id":"c","bundle":"/b","rootfs":"/b/rootfs","pid":1,"pid_start":2,
        "created":"","annotations":{},"rootless":false,"owner":0}"#;
    let st: Persisted = serde_json::from_str(old).unwrap();
    assert!(st.may_have_post_hooks());
    let mut none = st.clone();
    none.post_hooks = Some(false);
    let back: Persisted = serde_json::from_str(&serde_json::to_string(&none).unwrap()).unwrap();
    assert!(!back.may_have_post_hooks());
    let spec: oci_spec::runtime::Spec = serde_json::from_str(
        r#"{"ociVersion":"1.0.2","hooks":{"poststop":[{"path":"/bin/true"}]}}"#,
    )
    .unwrap();
    assert!(has_post_hooks(&spec));
    assert!(!has_post_hooks(&oci_spec::runtime::Spec::default()));
}

#[test]
fn a_staged_state_is_invisible_until_committed() {
    let root = tempfile::tempdir().unwrap();
    let store = StateStore::new(root.path().join("engine"));
    let _lock = store.claim("c1").unwrap();
    let st: Persisted = serde_json::from_str(
        r#"{"id":"c1","bundle":"/b","rootfs":"/b/rootfs","pid":1,"pid_start":2,
            "created":"","annotations":{},"rootless":false,"owner":0}"#,
    )
    .unwrap();
    let staged = store.stage(&st).unwrap();
    // Nothing lists or loads a container whose state is only staged.
    assert!(store.ids().unwrap().is_empty());
    assert!(matches!(store.load("c1"), Err(StateError::NotFound(_))));
    staged.commit().unwrap();
    assert_eq!(store.ids().unwrap(), vec!["c1".to_string()]);
    assert_eq!(store.load("c1").unwrap().pid_start, 2);
    // The directory holds the state and the lock, no temporary.
    let mut names: Vec<String> = fs::read_dir(store.dir("c1"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["lock", "state.json"]);
}

#[test]
fn a_claim_makes_a_missing_root_and_refuses_a_taken_id() {
    let root = tempfile::tempdir().unwrap();
    let store = StateStore::new(root.path().join("a/b/engine"));
    drop(store.claim("c1").unwrap());
    assert!(matches!(store.claim("c1"), Err(StateError::Exists(_))));
    drop(store.claim("c2").unwrap());
}
