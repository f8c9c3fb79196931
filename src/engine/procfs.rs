//! Reading the small pseudo-files of procfs, sysfs and cgroupfs (`/proc/<pid>/stat`,
//! `/proc/self/mountinfo`, `cgroup.controllers`) in as few calls as the kernel allows.
//! These files report a size of 0, so `std::fs::read_to_string` starts from a 32-byte probe and
//! doubles its buffer: `/proc/self/mountinfo` took 9 reads and `/proc/<pid>/stat` 5, each on
//! `create`'s and `start`'s critical path. Here one buffer of a few pages takes the whole file
//! in one read (and the end-of-file read that proves it). Owns no state; reads only.

use std::io::Read;

/// First size of the buffer: more than any of these files holds on a usual host (mountinfo of
/// a host with a few dozen mounts is 3-6 KiB); a larger file still reads whole, in more calls.
const FIRST: usize = 8 * 1024;

/// The whole text of a small pseudo-file.
pub fn read_small(path: impl AsRef<std::path::Path>) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; FIRST];
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    buf.truncate(len);
    String::from_utf8(buf).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pseudo_file_reads_whole_as_the_standard_reader_sees_it() {
        // Files whose text cannot change between the two reads (mountinfo could, when a test
        // beside this one mounts).
        for path in ["/proc/self/cgroup", "/proc/sys/kernel/cap_last_cap"] {
            assert_eq!(
                read_small(path).unwrap(),
                std::fs::read_to_string(path).unwrap()
            );
        }
    }

    #[test]
    fn a_file_larger_than_the_first_buffer_reads_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        let text: String = (0..5000).map(|i| format!("line {i}\n")).collect();
        assert!(text.len() > FIRST);
        std::fs::write(&path, &text).unwrap();
        assert_eq!(read_small(&path).unwrap(), text);
    }

    #[test]
    fn a_missing_file_is_an_error_not_an_empty_text() {
        assert!(read_small("/proc/self/no-such-file").is_err());
    }
}
