//! Facts and figures of the real host, from `/proc`.

use std::sync::Mutex;

use drover_host::{HostInfo, HostMetrics};

/// The host's name, CPUs and memory.
pub(crate) fn info() -> HostInfo {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        cpuinfo
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    let cpu_count = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count()
        .max(1) as u32;
    HostInfo {
        hostname: std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into()),
        cpu_count,
        cpu_model: field("model name").unwrap_or_else(|| "unknown".into()),
        cpu_speed_mhz: field("cpu MHz")
            .and_then(|v| v.parse::<f64>().ok())
            .map(|v| v as u32)
            .unwrap_or(0),
        memory_total: meminfo("MemTotal:"),
        driver: "qemu",
    }
}

/// A `/proc/meminfo` figure in bytes.
fn meminfo(key: &str) -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024
}

/// Memory free for new guests (the kernel's estimate of available memory).
pub(crate) fn memory_available() -> u64 {
    meminfo("MemAvailable:")
}

/// Busy and total CPU time of each CPU, in ticks, by CPU number.
fn cpu_times() -> Vec<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let mut out = Vec::new();
    for line in stat.lines() {
        let mut f = line.split_whitespace();
        let Some(n) = f
            .next()
            .and_then(|name| name.strip_prefix("cpu"))
            .and_then(|n| n.parse::<usize>().ok())
        else {
            continue;
        };
        let v: Vec<u64> = f.filter_map(|x| x.parse().ok()).collect();
        let total: u64 = v.iter().take(8).sum();
        let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
        if out.len() <= n {
            out.resize(n + 1, (0, 0));
        }
        out[n] = (total - idle, total);
    }
    out
}

/// Host figures, with CPU utilisation since the previous reading.
#[derive(Default)]
pub(crate) struct Meter {
    last: Mutex<Vec<(u64, u64)>>,
}

impl Meter {
    pub fn read(&self) -> HostMetrics {
        let now = cpu_times();
        let mut last = self.last.lock().expect("meter lock");
        let util = now
            .iter()
            .enumerate()
            .map(|(i, &(busy, total))| match last.get(i) {
                Some(&(b, t)) if total > t => {
                    (busy.saturating_sub(b) as f64 / (total - t) as f64).clamp(0.0, 1.0)
                }
                _ => 0.0,
            })
            .collect();
        *last = now;
        HostMetrics {
            memory_total: meminfo("MemTotal:"),
            memory_free: memory_available(),
            cpu_utilisation: util,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_real_host() {
        let i = info();
        assert!(i.cpu_count >= 1);
        assert!(i.memory_total > 0);
        let m = Meter::default();
        m.read();
        let r = m.read();
        assert!(r.memory_free > 0 && r.memory_free <= r.memory_total);
        assert_eq!(r.cpu_utilisation.len(), i.cpu_count as usize);
        assert!(r.cpu_utilisation.iter().all(|u| (0.0..=1.0).contains(u)));
    }
}
