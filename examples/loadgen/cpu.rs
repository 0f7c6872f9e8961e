//! CPU used by the server and by this process over the measured window, in
//! cores (CPU seconds / wall seconds), from /proc.

use std::fmt;
use std::time::Duration;

pub struct Meter {
    server: Option<(u32, Option<u64>)>,
    client: Option<u64>,
}

/// The measured figures, formatted as ` server_cpu=… client_cpu=…`.
pub struct Used {
    server: Option<f64>,
    client: Option<f64>,
}

impl Meter {
    pub fn start(server_pid: Option<u32>) -> Self {
        Self {
            server: server_pid.map(|pid| (pid, ticks(&format!("/proc/{pid}/stat")))),
            client: ticks("/proc/self/stat"),
        }
    }

    pub fn stop(&self, wall: Duration) -> Used {
        let cores = |before: Option<u64>, path: &str| -> Option<f64> {
            let used = ticks(path)?.checked_sub(before?)?;
            Some(used as f64 / clock_ticks_per_second() / wall.as_secs_f64().max(1e-9))
        };
        Used {
            server: self
                .server
                .as_ref()
                .and_then(|&(pid, before)| cores(before, &format!("/proc/{pid}/stat"))),
            client: cores(self.client, "/proc/self/stat"),
        }
    }
}

impl fmt::Display for Used {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(server) = self.server {
            write!(f, " server_cpu={server:.2}")?;
        }
        if let Some(client) = self.client {
            write!(f, " client_cpu={client:.2}")?;
        }
        Ok(())
    }
}

/// utime + stime of a process, all threads, in clock ticks.
fn ticks(path: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name (field 2) may hold spaces; fields count from after it.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Linux reports /proc times in USER_HZ, which is 100 on every architecture
/// it supports.
fn clock_ticks_per_second() -> f64 {
    100.0
}
