//! Masked paths (`linux.maskedPaths`): each masked directory gets an empty read-only tmpfs of
//! its own, a masked file /dev/null. Checked from inside a real container (lasso-runc, busybox
//! bundle, root in the container with the default capabilities): each masked directory hides
//! what was there, takes no write, and is a read-only mount in the container's mount table.

mod runc_support;
use runc_support::*;

#[test]
fn every_masked_directory_is_empty_and_read_only() {
    if !can_run() {
        return;
    }
    let runc = Runc::new();
    let b = Bundle::new(
        "for d in /secret-a /secret-b /secret-c; do \
           echo $d entries=$(ls -A $d | wc -l); \
           touch $d/new 2>/dev/null && echo $d-writable; \
           mkdir $d/sub 2>/dev/null && echo $d-mkdir; \
         done; \
         cat /secret-b/key 2>/dev/null && echo key-readable; \
         awk '$5 ~ /^\\/secret-/ {print $5, $6}' /proc/self/mountinfo",
    );
    for (dir, file) in [("secret-a", "a"), ("secret-b", "key"), ("secret-c", "c")] {
        let d = b.rootfs().join(dir);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(file), "hidden").unwrap();
    }
    b.edit(|s| {
        // A file mask between the directories, and a path that does not exist (skipped).
        s["linux"]["maskedPaths"] = serde_json::json!([
            "/secret-a",
            "/proc/keys",
            "/secret-b",
            "/secret-c",
            "/no-such-dir"
        ]);
    });
    let (code, out, err) = runc.run(&b, &unique_id("masks"));
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    for d in ["/secret-a", "/secret-b", "/secret-c"] {
        assert!(
            out.contains(&format!("{d} entries=0\n")),
            "{d} not hidden: {out}"
        );
        assert!(!out.contains(&format!("{d}-writable")), "{out}");
        assert!(!out.contains(&format!("{d}-mkdir")), "{out}");
        assert!(
            out.contains(&format!("{d} ro,")),
            "{d} is not a read-only mount: {out}"
        );
    }
    assert!(!out.contains("key-readable"), "{out}");
}
