//! Value checks for profile fields whose type alone does not say enough: sizes with units, CPU
//! quotas, domain patterns, CIDRs, sandbox paths and ecosystem names. Each check returns the
//! message a person needs to fix the value; the caller adds file, line and column.

use super::raw::SizeOrNumber;

/// Package ecosystems the network layer knows how to learn hosts for.
pub const ECOSYSTEMS: &[&str] = &[
    "npm",
    "pypi",
    "crates",
    "go",
    "debian",
    "ubuntu",
    "alpine",
    "rubygems",
    "maven",
    "gradle",
    "nuget",
    "packagist",
    "hex",
    "cocoapods",
    "conda",
    "cran",
    "hackage",
    "pub",
    "swift",
];

/// `"8GiB"`, `"512MB"`, `"1g"` or a plain number of bytes. IEC units (KiB, MiB, GiB, TiB, and
/// the single letters K, M, G, T) are powers of 1024; SI units (KB, MB, GB, TB) powers of 1000.
pub fn memory_bytes(v: &SizeOrNumber) -> Result<u64, String> {
    let fix = "write a size such as \"512MiB\", \"8GiB\" or a number of bytes";
    let bytes = match v {
        SizeOrNumber::Int(n) if *n > 0 => *n as f64,
        SizeOrNumber::Int(n) => return Err(format!("memory must be positive, got {n}; {fix}")),
        SizeOrNumber::Float(_) => {
            return Err(format!(
                "a bare fractional number of bytes is ambiguous; {fix}"
            ))
        }
        SizeOrNumber::Text(s) => {
            let t = s.trim();
            let split = t
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(t.len());
            let (num, unit) = t.split_at(split);
            let n: f64 = num
                .parse()
                .map_err(|_| format!("cannot read {s:?} as a size; {fix}"))?;
            let mult: f64 = match unit.trim() {
                "" | "B" => 1.0,
                "K" | "k" | "KiB" => 1024.0,
                "KB" | "kB" => 1e3,
                "M" | "m" | "MiB" => 1024.0 * 1024.0,
                "MB" => 1e6,
                "G" | "g" | "GiB" => 1024.0 * 1024.0 * 1024.0,
                "GB" => 1e9,
                "T" | "t" | "TiB" => 1024.0f64.powi(4),
                "TB" => 1e12,
                u => return Err(format!("unknown size unit {u:?} in {s:?}; {fix}")),
            };
            n * mult
        }
    };
    if !(1.0..1.0e18).contains(&bytes) {
        return Err(format!("memory size out of range; {fix}"));
    }
    Ok(bytes as u64)
}

/// A CPU quota: `2`, `1.5`, `"1.5"` or `"1500m"` (thousandths), returned in thousandths.
pub fn cpu_millis(v: &SizeOrNumber) -> Result<u32, String> {
    let fix = "write a number of CPUs such as 2, 1.5 or \"1500m\"";
    let cpus = match v {
        SizeOrNumber::Int(n) => *n as f64,
        SizeOrNumber::Float(f) => *f,
        SizeOrNumber::Text(s) => {
            let t = s.trim();
            match t.strip_suffix('m') {
                Some(m) => m.parse::<f64>().map(|m| m / 1000.0),
                None => t.parse::<f64>(),
            }
            .map_err(|_| format!("cannot read {s:?} as a CPU quota; {fix}"))?
        }
    };
    if !(0.001..=4096.0).contains(&cpus) {
        return Err(format!(
            "CPU quota must be between 0.001 and 4096 CPUs; {fix}"
        ));
    }
    Ok((cpus * 1000.0).round() as u32)
}

/// An exact DNS name or a `*.` wildcard for its subdomains.
pub fn domain(d: &str) -> Result<(), String> {
    let name = d.strip_prefix("*.").unwrap_or(d);
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{d:?} is not a domain name; write an exact name (api.example.com) or a wildcard for its subdomains (*.example.com)"
        ))
    }
}

/// `ADDR/PREFIX` for IPv4 or IPv6, or a bare address (a single host).
pub fn cidr(c: &str) -> Result<(), String> {
    let fix = "write ADDRESS/PREFIX such as 10.0.0.0/8 or fc00::/7";
    let (addr, prefix) = c.split_once('/').unwrap_or((c, ""));
    let ip: std::net::IpAddr = addr
        .parse()
        .map_err(|_| format!("{c:?} is not an IP network; {fix}"))?;
    if !prefix.is_empty() {
        let max = if ip.is_ipv4() { 32 } else { 128 };
        match prefix.parse::<u8>() {
            Ok(p) if p <= max => {}
            _ => return Err(format!("prefix of {c:?} must be 0..={max}; {fix}")),
        }
    }
    Ok(())
}

/// A path inside the sandbox: absolute, no `..`, so a profile cannot point outside what it names.
pub fn sandbox_path(p: &str) -> Result<(), String> {
    if !p.starts_with('/') && !p.starts_with("~/") {
        return Err(format!(
            "path {p:?} must be absolute (or start with ~/ for the agent's home)"
        ));
    }
    if p.split('/').any(|c| c == "..") {
        return Err(format!("path {p:?} must not contain `..`"));
    }
    Ok(())
}

pub fn ecosystem(e: &str) -> Result<(), String> {
    if ECOSYSTEMS.contains(&e) {
        return Ok(());
    }
    let mut msg =
        format!("unknown package ecosystem {e:?}; registries are named by ecosystem, not host");
    if let Some(s) = nearest(e, ECOSYSTEMS.iter().copied()) {
        msg.push_str(&format!("; did you mean {s:?}?"));
    }
    Err(msg)
}

pub fn port(p: u16) -> Result<(), String> {
    if p == 0 {
        Err("port 0 is not a port; use 1..=65535".into())
    } else {
        Ok(())
    }
}

/// The closest candidate by edit distance, if it is close enough to be a likely typo.
pub fn nearest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::levenshtein(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}
