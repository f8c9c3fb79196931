//! Which devices a container gets: the nodes made in its /dev (the OCI default set plus
//! `linux.devices`) and the matching device-cgroup rules runc adds after the spec's own
//! (typically "deny all"), so that what is in /dev is also usable, and nothing else is.

use oci_spec::runtime::{
    LinuxDevice, LinuxDeviceBuilder, LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType,
    LinuxResources, Spec,
};

/// The six devices every container gets (OCI runtime spec, "Default Devices").
pub fn default_devices() -> Vec<LinuxDevice> {
    [
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    ]
    .into_iter()
    .map(|(p, maj, min)| {
        LinuxDeviceBuilder::default()
            .path(p)
            .typ(LinuxDeviceType::C)
            .major(maj)
            .minor(min)
            .file_mode(0o666u32)
            .uid(0u32)
            .gid(0u32)
            .build()
            .expect("static device")
    })
    .collect()
}

fn rule(
    typ: LinuxDeviceType,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> LinuxDeviceCgroup {
    let mut b = LinuxDeviceCgroupBuilder::default()
        .allow(true)
        .typ(typ)
        .access(access);
    if let Some(m) = major {
        b = b.major(m);
    }
    if let Some(m) = minor {
        b = b.minor(m);
    }
    b.build().expect("static rule")
}

/// `linux.resources` with the device rules the container needs appended: mknod of any node
/// (creating is harmless, opening is what the rules guard), the default devices, the pty
/// devices (/dev/pts/*, /dev/ptmx) and every `linux.devices` entry.
pub fn effective_resources(spec: &Spec) -> Option<LinuxResources> {
    let linux = spec.linux().as_ref()?;
    let mut res = linux.resources().clone()?;
    let mut rules = res.devices().clone().unwrap_or_default();
    if rules.is_empty() {
        // No device rules asked for: leave the device cgroup alone.
        return Some(res);
    }
    rules.push(rule(LinuxDeviceType::C, None, None, "m"));
    rules.push(rule(LinuxDeviceType::B, None, None, "m"));
    for d in default_devices() {
        rules.push(rule(d.typ(), Some(d.major()), Some(d.minor()), "rwm"));
    }
    rules.push(rule(LinuxDeviceType::C, Some(136), None, "rwm"));
    rules.push(rule(LinuxDeviceType::C, Some(5), Some(2), "rwm"));
    for d in linux.devices().iter().flatten() {
        if matches!(
            d.typ(),
            LinuxDeviceType::C | LinuxDeviceType::B | LinuxDeviceType::U
        ) {
            rules.push(rule(d.typ(), Some(d.major()), Some(d.minor()), "rwm"));
        }
    }
    res.set_devices(Some(rules));
    Some(res)
}
