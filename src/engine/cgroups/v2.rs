//! cgroup v2 file formats, including the conversions from the v1-shaped OCI fields (shares to
//! weight, memory+swap to swap, blkio weight to io weight) that runc and crun also apply.

use std::collections::HashMap;
use std::path::Path;

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxThrottleDevice};

use super::{fs, CgroupError};

fn invalid(field: &str, why: impl Into<String>) -> CgroupError {
    CgroupError::InvalidValue {
        field: field.to_owned(),
        why: why.into(),
    }
}

fn unsupported(field: &str, why: &str) -> CgroupError {
    CgroupError::Unsupported {
        field: field.to_owned(),
        why: why.to_owned(),
    }
}

fn limit(v: i64) -> String {
    if v < 0 {
        "max".into()
    } else {
        v.to_string()
    }
}

/// OCI `swap` is memory+swap (v1 semantics); v2's `memory.swap.max` is swap alone.
pub fn swap_max(limit_bytes: Option<i64>, swap: i64) -> Result<String, CgroupError> {
    if swap == -1 {
        return Ok("max".into());
    }
    match limit_bytes {
        None => Err(invalid(
            "memory.swap",
            "on cgroup v2 a swap limit needs memory.limit too (OCI swap is memory+swap)",
        )),
        Some(-1) => Err(invalid(
            "memory.swap",
            "a finite memory+swap with an unlimited memory.limit cannot be expressed",
        )),
        Some(l) if swap < l => Err(invalid(
            "memory.swap",
            format!("memory+swap ({swap}) must be at least memory.limit ({l})"),
        )),
        Some(l) => Ok((swap - l).to_string()),
    }
}

pub fn memory(dir: &Path, m: &LinuxMemory) -> Result<(), CgroupError> {
    #[allow(deprecated)]
    if m.kernel().is_some() || m.kernel_tcp().is_some() {
        tracing::warn!("linux.resources.memory.kernel/kernelTCP ignored: cgroup v2 has no kernel-memory limits");
    }
    if m.swappiness().is_some() {
        return Err(unsupported(
            "memory.swappiness",
            "cgroup v2 has no per-cgroup swappiness",
        ));
    }
    if m.disable_oom_killer() == Some(true) {
        return Err(unsupported(
            "memory.disableOOMKiller",
            "cgroup v2 cannot disable the OOM killer",
        ));
    }
    let lim = m.limit().filter(|l| *l != 0);
    if let Some(l) = lim {
        fs::write(&dir.join("memory.max"), &limit(l))?;
    }
    if let Some(s) = m.swap().filter(|s| *s != 0) {
        fs::write(&dir.join("memory.swap.max"), &swap_max(lim, s)?)?;
    }
    if let Some(r) = m.reservation() {
        fs::write(&dir.join("memory.low"), &limit(r))?;
    }
    Ok(())
}

/// shares in [2, 262144] map onto weight in [1, 10000].
pub fn shares_to_weight(shares: u64) -> u64 {
    let s = shares.clamp(2, 262_144);
    1 + ((s - 2) * 9999) / 262_142
}

pub fn cpu(dir: &Path, c: &LinuxCpu) -> Result<(), CgroupError> {
    if c.realtime_runtime().is_some_and(|v| v != 0) || c.realtime_period().is_some_and(|v| v != 0) {
        return Err(unsupported(
            "cpu.realtimeRuntime",
            "cgroup v2 has no real-time CPU budget",
        ));
    }
    if let Some(s) = c.shares().filter(|s| *s != 0) {
        fs::write(&dir.join("cpu.weight"), &shares_to_weight(s).to_string())?;
    }
    let quota = c.quota().filter(|q| *q != 0);
    let period = c.period().filter(|p| *p != 0);
    if quota.is_some() || period.is_some() {
        // cpu.max holds both numbers; keep the one the spec does not set.
        let cur = std::fs::read_to_string(dir.join("cpu.max")).unwrap_or_default();
        let mut it = cur.split_whitespace();
        let old_q = it.next().unwrap_or("max").to_owned();
        let old_p = it.next().unwrap_or("100000").to_owned();
        let q = quota.map_or(old_q, limit);
        let p = period.map_or(old_p, |p| p.to_string());
        fs::write(&dir.join("cpu.max"), &format!("{q} {p}"))?;
    }
    if let Some(b) = c.burst() {
        fs::write(&dir.join("cpu.max.burst"), &b.to_string())?;
    }
    if let Some(i) = c.idle() {
        fs::write(&dir.join("cpu.idle"), &i.to_string())?;
    }
    Ok(())
}

/// blkio weight [10, 1000] onto io weight [1, 10000].
pub fn blkio_to_io_weight(w: u16) -> u64 {
    let w = u64::from(w.clamp(10, 1000));
    1 + (w - 10) * 9999 / 990
}

pub fn io(dir: &Path, b: &LinuxBlockIo) -> Result<(), CgroupError> {
    if super::apply::weight_set(b.leaf_weight()).is_some() {
        return Err(unsupported(
            "blockIO.leafWeight",
            "cgroup v2 has no leaf weights",
        ));
    }
    let weight_file = if dir.join("io.weight").exists() {
        dir.join("io.weight")
    } else {
        dir.join("io.bfq.weight")
    };
    if let Some(w) = super::apply::weight_set(b.weight()) {
        fs::write(&weight_file, &format!("default {}", blkio_to_io_weight(w)))?;
    }
    for d in b.weight_device().iter().flatten() {
        if let Some(w) = super::apply::weight_set(d.weight()) {
            let line = format!("{}:{} {}", d.major(), d.minor(), blkio_to_io_weight(w));
            fs::write(&weight_file, &line)?;
        }
    }
    let throttles: [(&Option<Vec<LinuxThrottleDevice>>, &str); 4] = [
        (b.throttle_read_bps_device(), "rbps"),
        (b.throttle_write_bps_device(), "wbps"),
        (b.throttle_read_iops_device(), "riops"),
        (b.throttle_write_iops_device(), "wiops"),
    ];
    for (list, key) in throttles {
        for t in list.iter().flatten() {
            let line = format!("{}:{} {key}={}", t.major(), t.minor(), t.rate());
            fs::write(&dir.join("io.max"), &line)?;
        }
    }
    Ok(())
}

/// `linux.resources.unified`: raw v2 files. Keys must be plain file names of this cgroup.
pub fn unified(
    dir: &Path,
    map: &HashMap<String, String>,
    enable: impl Fn(&str) -> Result<(), CgroupError>,
) -> Result<(), CgroupError> {
    for (key, value) in map {
        let Some((controller, _)) = key.split_once('.') else {
            return Err(invalid(
                "unified",
                format!("key {key:?} is not a cgroup file name such as memory.high"),
            ));
        };
        if key.contains('/') || key.contains("..") {
            return Err(invalid(
                "unified",
                format!("key {key:?} must be a file name, not a path"),
            ));
        }
        if controller != "cgroup" {
            enable(controller)?;
        }
        let f = dir.join(key);
        if !f.exists() {
            return Err(invalid(
                "unified",
                format!("{key:?}: no such file in {}", dir.display()),
            ));
        }
        fs::write(&f, value)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_and_weights_map_onto_v2_ranges() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(blkio_to_io_weight(10), 1);
        assert_eq!(blkio_to_io_weight(1000), 10_000);
    }

    #[test]
    fn oci_swap_is_memory_plus_swap() {
        assert_eq!(swap_max(Some(100), 300).unwrap(), "200");
        assert_eq!(swap_max(None, -1).unwrap(), "max");
        assert!(swap_max(Some(300), 100).is_err());
        assert!(swap_max(None, 100).is_err());
    }
}
