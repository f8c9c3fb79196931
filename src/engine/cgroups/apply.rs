//! Routing each part of `linux.resources` to the hierarchy that holds its controller: v1 where
//! the controller is bound to v1 (hybrid hosts bind most there), v2 otherwise. A limit whose
//! controller the host lacks is an error naming the field, never silently dropped.

use std::path::Path;

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxResources};

use super::{fs, v1, v2, Cgroup, CgroupError};

enum Home<'a> {
    V1(&'a Path),
    V2(&'a Path),
}

/// Finds where `controller` lives for this cgroup; in v2, enables it down to the cgroup.
fn home<'a>(cg: &'a Cgroup, controller: &str, field: &str) -> Result<Home<'a>, CgroupError> {
    if let Some(dir) = cg.v1.get(controller) {
        return Ok(Home::V1(dir));
    }
    if let Some(u) = &cg.unified {
        if u.controllers.iter().any(|c| c == controller) {
            enable_v2(&u.mountpoint, &u.dir, controller)?;
            return Ok(Home::V2(&u.dir));
        }
    }
    Err(CgroupError::Unsupported {
        field: field.to_owned(),
        why: format!(
            "the host has no {controller} controller in any mounted hierarchy (mode {:?}); drop the field or mount the controller",
            cg.mode
        ),
    })
}

/// cgroup v2 only offers a controller's files in a cgroup whose parent enabled it in
/// `cgroup.subtree_control`, all the way from the root.
fn enable_v2(mountpoint: &Path, dir: &Path, controller: &str) -> Result<(), CgroupError> {
    let Ok(rel) = dir.strip_prefix(mountpoint) else {
        return Ok(());
    };
    let mut cur = mountpoint.to_path_buf();
    for part in rel.iter() {
        let ctl = cur.join("cgroup.subtree_control");
        let enabled = std::fs::read_to_string(&ctl).unwrap_or_default();
        if !enabled.split_whitespace().any(|c| c == controller) {
            fs::write(&ctl, &format!("+{controller}"))?;
        }
        cur.push(part);
    }
    Ok(())
}

fn memory_set(m: &LinuxMemory) -> bool {
    #[allow(deprecated)]
    let kernel = m.kernel().is_some();
    m.limit().is_some()
        || m.reservation().is_some()
        || m.swap().is_some()
        || m.swappiness().is_some()
        || m.disable_oom_killer() == Some(true)
        || m.kernel_tcp().is_some()
        || kernel
}

fn cpu_set(c: &LinuxCpu) -> bool {
    c.shares().is_some_and(|s| s != 0)
        || c.quota().is_some_and(|q| q != 0)
        || c.period().is_some_and(|p| p != 0)
        || c.burst().is_some()
        || c.idle().is_some()
        || c.realtime_runtime().is_some_and(|v| v != 0)
        || c.realtime_period().is_some_and(|v| v != 0)
}

fn cpuset_set(c: &LinuxCpu) -> bool {
    c.cpus().as_deref().is_some_and(|s| !s.is_empty())
        || c.mems().as_deref().is_some_and(|s| !s.is_empty())
}

/// A blkio weight of 0 means "not set": Docker sends `"blockIO":{"weight":0}` in every config
/// and every update, and the kernel refuses 0 (ERANGE), so runc skips it too.
pub(crate) fn weight_set(w: Option<u16>) -> Option<u16> {
    w.filter(|w| *w != 0)
}

fn blkio_set(b: &LinuxBlockIo) -> bool {
    let some = |v: &Option<Vec<_>>| v.as_ref().is_some_and(|v| !v.is_empty());
    weight_set(b.weight()).is_some()
        || weight_set(b.leaf_weight()).is_some()
        || b.weight_device().as_ref().is_some_and(|v| !v.is_empty())
        || some(b.throttle_read_bps_device())
        || some(b.throttle_write_bps_device())
        || some(b.throttle_read_iops_device())
        || some(b.throttle_write_iops_device())
}

/// Whether `res` asks for anything a disabled cgroup could not give.
pub fn requests_anything(res: &LinuxResources) -> bool {
    res.memory().as_ref().is_some_and(memory_set)
        || res
            .cpu()
            .as_ref()
            .is_some_and(|c| cpu_set(c) || cpuset_set(c))
        || res.pids().is_some_and(|p| p.limit() != 0)
        || res.block_io().as_ref().is_some_and(blkio_set)
        || res
            .hugepage_limits()
            .as_ref()
            .is_some_and(|v| !v.is_empty())
        || res.network().is_some()
        || res.rdma().as_ref().is_some_and(|r| !r.is_empty())
        || res.unified().as_ref().is_some_and(|u| !u.is_empty())
    // A device list is always present in a runc-style spec; without a cgroup the device
    // nodes created in the rootfs are the only control, as in rootless runc.
}

pub fn apply(cg: &Cgroup, res: &LinuxResources) -> Result<(), CgroupError> {
    if let Some(m) = res.memory().as_ref().filter(|m| memory_set(m)) {
        match home(cg, "memory", "memory")? {
            Home::V1(d) => v1::memory(d, m)?,
            Home::V2(d) => v2::memory(d, m)?,
        }
    }
    if let Some(c) = res.cpu().as_ref() {
        if cpu_set(c) {
            match home(cg, "cpu", "cpu")? {
                Home::V1(d) => v1::cpu(d, c)?,
                Home::V2(d) => v2::cpu(d, c)?,
            }
        }
        if cpuset_set(c) {
            // The file names are the same in v1 and v2.
            let (Home::V1(d) | Home::V2(d)) = home(cg, "cpuset", "cpu.cpus")?;
            v1::cpuset(d, c)?;
        }
    }
    if let Some(p) = res.pids().filter(|p| p.limit() != 0) {
        let (Home::V1(d) | Home::V2(d)) = home(cg, "pids", "pids")?;
        let v = if p.limit() > 0 {
            p.limit().to_string()
        } else {
            "max".into()
        };
        fs::write(&d.join("pids.max"), &v)?;
    }
    if let Some(b) = res.block_io().as_ref().filter(|b| blkio_set(b)) {
        let v1_home = cg.v1.contains_key("blkio");
        let (ctl, field) = if v1_home {
            ("blkio", "blockIO")
        } else {
            ("io", "blockIO")
        };
        match home(cg, ctl, field)? {
            Home::V1(d) => v1::blkio(d, b)?,
            Home::V2(d) => v2::io(d, b)?,
        }
    }
    if let Some(limits) = res.hugepage_limits().as_ref().filter(|v| !v.is_empty()) {
        match home(cg, "hugetlb", "hugepageLimits")? {
            Home::V1(d) => v1::hugetlb(d, limits, "limit_in_bytes")?,
            Home::V2(d) => v1::hugetlb(d, limits, "max")?,
        }
    }
    if let Some(devices) = res.devices().as_ref().filter(|v| !v.is_empty()) {
        match cg.v1.get("devices") {
            Some(d) => v1::devices(d, devices)?,
            // The v2 device controller is an eBPF program attached to the cgroup; lasso does
            // not build one yet. Device nodes in the rootfs remain the control, so say it.
            None => tracing::warn!(
                cgroup = %cg.path.display(),
                "linux.resources.devices not enforced: cgroup v2 device filtering (eBPF) is not implemented"
            ),
        }
    }
    if let Some(net) = res.network() {
        v1::network(cg, net)?;
    }
    if let Some(rdma) = res.rdma().as_ref().filter(|r| !r.is_empty()) {
        let (Home::V1(d) | Home::V2(d)) = home(cg, "rdma", "rdma")?;
        v1::rdma(d, rdma)?;
    }
    if let Some(unified) = res.unified().as_ref().filter(|u| !u.is_empty()) {
        let Some(u) = &cg.unified else {
            return Err(CgroupError::Unsupported {
                field: "unified".into(),
                why: "the host has no cgroup2 hierarchy".into(),
            });
        };
        v2::unified(&u.dir, unified, |c| enable_v2(&u.mountpoint, &u.dir, c))?;
    }
    Ok(())
}
