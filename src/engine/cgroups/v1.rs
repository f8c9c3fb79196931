//! cgroup v1 file formats: one writer per controller, given the container's directory in that
//! controller's hierarchy. (cpuset, hugetlb and rdma files are named alike in v2 and are reused.)

use std::collections::HashMap;
use std::path::Path;

use oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxDeviceCgroup, LinuxDeviceType, LinuxHugepageLimit, LinuxMemory,
    LinuxNetwork, LinuxRdma, LinuxThrottleDevice,
};

use super::{fs, Cgroup, CgroupError};

fn invalid(field: &str, why: impl Into<String>) -> CgroupError {
    CgroupError::InvalidValue {
        field: field.to_owned(),
        why: why.into(),
    }
}

fn unsupported(field: &str, why: impl Into<String>) -> CgroupError {
    CgroupError::Unsupported {
        field: field.to_owned(),
        why: why.into(),
    }
}

/// A new v1 cpuset starts with empty `cpuset.cpus`/`cpuset.mems`, and the kernel refuses tasks
/// in it; copy them down from the nearest ancestor that has them.
pub fn inherit_cpuset(mountpoint: &Path, dir: &Path) -> Result<(), CgroupError> {
    let Ok(rel) = dir.strip_prefix(mountpoint) else {
        return Ok(());
    };
    let mut parent = mountpoint.to_path_buf();
    for part in rel.iter() {
        let child = parent.join(part);
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let mine = fs::read(&child.join(file))?;
            if mine.trim().is_empty() {
                let theirs = fs::read(&parent.join(file))?;
                fs::write(&child.join(file), theirs.trim())?;
            }
        }
        parent = child;
    }
    Ok(())
}

pub fn memory(dir: &Path, m: &LinuxMemory) -> Result<(), CgroupError> {
    #[allow(deprecated)]
    if m.kernel().is_some() || m.kernel_tcp().is_some() {
        // Linux 5.4 obsoleted kernel-memory limits and 6.x rejects writes; runc ignores them too.
        tracing::warn!("linux.resources.memory.kernel/kernelTCP ignored: the kernel no longer supports kernel-memory limits");
    }
    let limit_file = dir.join("memory.limit_in_bytes");
    let memsw_file = dir.join("memory.memsw.limit_in_bytes");
    let swap = match m.swap() {
        Some(s) if s != 0 && !memsw_file.exists() => {
            return Err(unsupported(
                "memory.swap",
                "swap accounting is off on this host (no memory.memsw.limit_in_bytes); boot with swapaccount=1 or drop memory.swap",
            ))
        }
        Some(0) => None,
        Some(s) => Some(s),
        // An unlimited memory limit must lift memory+swap too, or the old memsw value caps it.
        None if m.limit() == Some(-1) && memsw_file.exists() => Some(-1),
        None => None,
    };
    match (m.limit().filter(|l| *l != 0), swap) {
        (Some(l), Some(s)) => {
            if l != -1 && s != -1 && s < l {
                return Err(invalid(
                    "memory.swap",
                    format!("memory+swap ({s}) must be at least memory.limit ({l})"),
                ));
            }
            // memory.limit must stay <= memsw at every step: whichever order the kernel accepts.
            if fs::write(&limit_file, &l.to_string()).is_err() {
                fs::write(&memsw_file, &s.to_string())?;
                fs::write(&limit_file, &l.to_string())?;
            } else {
                fs::write(&memsw_file, &s.to_string())?;
            }
        }
        (Some(l), None) => fs::write(&limit_file, &l.to_string())?,
        (None, Some(s)) => fs::write(&memsw_file, &s.to_string())?,
        (None, None) => {}
    }
    if let Some(r) = m.reservation() {
        fs::write(&dir.join("memory.soft_limit_in_bytes"), &r.to_string())?;
    }
    if let Some(s) = m.swappiness() {
        if s > 100 {
            return Err(invalid("memory.swappiness", format!("{s} is above 100")));
        }
        fs::write(&dir.join("memory.swappiness"), &s.to_string())?;
    }
    if m.disable_oom_killer() == Some(true) {
        fs::write(&dir.join("memory.oom_control"), "1")?;
    }
    Ok(())
}

pub fn cpu(dir: &Path, c: &LinuxCpu) -> Result<(), CgroupError> {
    if let Some(s) = c.shares().filter(|s| *s != 0) {
        fs::write(&dir.join("cpu.shares"), &s.to_string())?;
    }
    // The period first: a quota is checked against the period in force.
    if let Some(p) = c.period().filter(|p| *p != 0) {
        fs::write(&dir.join("cpu.cfs_period_us"), &p.to_string())?;
    }
    if let Some(q) = c.quota().filter(|q| *q != 0) {
        fs::write(&dir.join("cpu.cfs_quota_us"), &q.to_string())?;
    }
    if let Some(b) = c.burst() {
        fs::write(&dir.join("cpu.cfs_burst_us"), &b.to_string())?;
    }
    if let Some(p) = c.realtime_period().filter(|p| *p != 0) {
        fs::write(&dir.join("cpu.rt_period_us"), &p.to_string())?;
    }
    if let Some(r) = c.realtime_runtime().filter(|r| *r != 0) {
        fs::write(&dir.join("cpu.rt_runtime_us"), &r.to_string())?;
    }
    if let Some(i) = c.idle() {
        let f = dir.join("cpu.idle");
        if !f.exists() {
            return Err(unsupported(
                "cpu.idle",
                "this kernel has no cpu.idle in this hierarchy",
            ));
        }
        fs::write(&f, &i.to_string())?;
    }
    Ok(())
}

pub fn cpuset(dir: &Path, c: &LinuxCpu) -> Result<(), CgroupError> {
    if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
        fs::write(&dir.join("cpuset.cpus"), cpus)?;
    }
    if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
        fs::write(&dir.join("cpuset.mems"), mems)?;
    }
    Ok(())
}

pub fn blkio(dir: &Path, b: &LinuxBlockIo) -> Result<(), CgroupError> {
    // Kernels without CFQ expose only the BFQ weight files.
    let pick = |plain: &str, bfq: &str| {
        let p = dir.join(plain);
        if p.exists() {
            p
        } else {
            dir.join(bfq)
        }
    };
    if let Some(w) = super::apply::weight_set(b.weight()) {
        let f = pick("blkio.weight", "blkio.bfq.weight");
        if !f.exists() {
            return Err(unsupported(
                "blockIO.weight",
                "no blkio.weight or blkio.bfq.weight: the host's I/O scheduler has no weights",
            ));
        }
        fs::write(&f, &w.to_string())?;
    }
    if let Some(w) = super::apply::weight_set(b.leaf_weight()) {
        let f = dir.join("blkio.leaf_weight");
        if !f.exists() {
            return Err(unsupported(
                "blockIO.leafWeight",
                "only the CFQ scheduler had leaf weights, and this kernel has none",
            ));
        }
        fs::write(&f, &w.to_string())?;
    }
    for d in b.weight_device().iter().flatten() {
        if let Some(w) = super::apply::weight_set(d.weight()) {
            let f = pick("blkio.weight_device", "blkio.bfq.weight_device");
            fs::write(&f, &format!("{}:{} {}", d.major(), d.minor(), w))?;
        }
    }
    let throttles: [(&Option<Vec<LinuxThrottleDevice>>, &str); 4] = [
        (
            b.throttle_read_bps_device(),
            "blkio.throttle.read_bps_device",
        ),
        (
            b.throttle_write_bps_device(),
            "blkio.throttle.write_bps_device",
        ),
        (
            b.throttle_read_iops_device(),
            "blkio.throttle.read_iops_device",
        ),
        (
            b.throttle_write_iops_device(),
            "blkio.throttle.write_iops_device",
        ),
    ];
    for (list, file) in throttles {
        for t in list.iter().flatten() {
            fs::write(
                &dir.join(file),
                &format!("{}:{} {}", t.major(), t.minor(), t.rate()),
            )?;
        }
    }
    Ok(())
}

/// `suffix` is `limit_in_bytes` in v1 and `max` in v2.
pub fn hugetlb(dir: &Path, limits: &[LinuxHugepageLimit], suffix: &str) -> Result<(), CgroupError> {
    for l in limits {
        let size = l.page_size();
        if size.is_empty() || size.contains('/') || size.contains('.') {
            return Err(invalid(
                "hugepageLimits.pageSize",
                format!("{size:?} is not a size such as 2MB"),
            ));
        }
        let f = dir.join(format!("hugetlb.{size}.{suffix}"));
        if !f.exists() {
            return Err(invalid(
                "hugepageLimits.pageSize",
                format!("the host has no {size} huge pages (no {})", f.display()),
            ));
        }
        fs::write(&f, &l.limit().to_string())?;
    }
    Ok(())
}

/// v1 device allow/deny list, applied in spec order (a leading deny-all then allows, as runc
/// specs carry). Each rule is its own write(2) (the kernel parses one rule per write), through
/// one open descriptor per file rather than an open and close per rule.
pub fn devices(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<(), CgroupError> {
    let mut allow = fs::Writer::new(dir.join("devices.allow"));
    let mut deny = fs::Writer::new(dir.join("devices.deny"));
    for r in rules {
        let typ = match r.typ().unwrap_or(LinuxDeviceType::A) {
            LinuxDeviceType::A => "a",
            LinuxDeviceType::B => "b",
            LinuxDeviceType::C | LinuxDeviceType::U => "c",
            LinuxDeviceType::P => {
                return Err(invalid(
                    "devices.type",
                    "\"p\" (FIFO) devices cannot be listed in the device cgroup",
                ))
            }
        };
        let num = |n: Option<i64>| n.map_or("*".to_string(), |n| n.to_string());
        let access = r.access().as_deref().unwrap_or("rwm");
        if access.is_empty() || !access.chars().all(|c| "rwm".contains(c)) {
            return Err(invalid(
                "devices.access",
                format!("{access:?} must be made of r, w, m"),
            ));
        }
        let line = format!("{typ} {}:{} {access}", num(r.major()), num(r.minor()));
        if r.allow() {
            allow.write(&line)?;
        } else {
            deny.write(&line)?;
        }
    }
    Ok(())
}

pub fn network(cg: &Cgroup, net: &LinuxNetwork) -> Result<(), CgroupError> {
    if let Some(id) = net.class_id() {
        let dir = cg.v1_dir("net_cls").ok_or_else(|| {
            unsupported(
                "network.classID",
                "the host has no net_cls controller mounted",
            )
        })?;
        fs::write(&dir.join("net_cls.classid"), &id.to_string())?;
    }
    for p in net.priorities().iter().flatten() {
        let dir = cg.v1_dir("net_prio").ok_or_else(|| {
            unsupported(
                "network.priorities",
                "the host has no net_prio controller mounted",
            )
        })?;
        fs::write(
            &dir.join("net_prio.ifpriomap"),
            &format!("{} {}", p.name(), p.priority()),
        )?;
    }
    Ok(())
}

pub fn rdma(dir: &Path, rdma: &HashMap<String, LinuxRdma>) -> Result<(), CgroupError> {
    for (device, l) in rdma {
        let mut line = device.clone();
        if let Some(h) = l.hca_handles() {
            line.push_str(&format!(" hca_handle={h}"));
        }
        if let Some(o) = l.hca_objects() {
            line.push_str(&format!(" hca_object={o}"));
        }
        fs::write(&dir.join("rdma.max"), &line)?;
    }
    Ok(())
}
