//! What the agent's integration tests share: a network namespace of the test's own, and the
//! tiny guest ([`guest`]).

use std::sync::atomic::{AtomicUsize, Ordering};

#[allow(dead_code)] // Not every test binary boots the guest.
pub mod guest;

/// A network namespace of the test's own; on drop, whatever still runs in it is killed and it is
/// deleted with every device in it.
pub struct Netns(pub String);

impl Netns {
    /// Makes a new namespace; the tests need root for it and fail loudly without.
    #[allow(dead_code)]
    pub fn new() -> Netns {
        static N: AtomicUsize = AtomicUsize::new(0);
        assert!(
            nix::unistd::geteuid().is_root(),
            "the network tests need root (they make network namespaces)"
        );
        let name = format!(
            "drover-t-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        run(&["ip", "netns", "add", &name]);
        Netns(name)
    }

    /// Runs `ip -n NS args`, which must succeed; its stdout.
    #[allow(dead_code)]
    pub fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["ip", "-n", &self.0];
        all.extend_from_slice(args);
        run(&all)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Ok(out) = std::process::Command::new("ip")
            .args(["netns", "pids", &self.0])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if let Ok(pid) = pid.parse() {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        }
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.0])
            .status();
    }
}

/// Runs a command that must succeed; its stdout.
pub fn run(args: &[&str]) -> String {
    let out = std::process::Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?} (is iproute2 installed?): {e}"));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
