//! CPU time of the server processes under test, read from `/proc` (Linux), so
//! that a run can tell what its measured window cost the servers.

/// Clock ticks per second of `/proc/<pid>/stat` (`USER_HZ`: 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;

/// The processes whose CPU a run measures: the server's nodes, and the services
/// they use (Redis, Cassandra), each summed.
#[derive(Clone, Debug, Default)]
pub struct Watched {
    /// The server's node processes.
    pub nodes: Vec<u32>,
    /// Services the nodes use.
    pub services: Vec<u32>,
}

/// CPU seconds (user + system) of both sets at one instant; `None` for an empty
/// set or a process that is gone.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    /// The nodes'.
    pub nodes: Option<f64>,
    /// The services'.
    pub services: Option<f64>,
}

impl Watched {
    /// Reads the CPU seconds used so far.
    pub fn sample(&self) -> Sample {
        Sample { nodes: cpu_secs(&self.nodes), services: cpu_secs(&self.services) }
    }
}

impl Sample {
    /// What was used from `self` to `later`.
    pub fn until(self, later: Sample) -> Sample {
        let used = |a: Option<f64>, b: Option<f64>| Some(b? - a?);
        Sample { nodes: used(self.nodes, later.nodes), services: used(self.services, later.services) }
    }
}

/// The CPU seconds `pids` used so far, summed; `None` if there are none or one is gone.
pub fn cpu_secs(pids: &[u32]) -> Option<f64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|&pid| one(pid)).sum()
}

fn one(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat)
}

/// utime + stime of a `/proc/<pid>/stat` line, in seconds. The command name (field 2)
/// may hold spaces and parentheses, so fields count from the last `)`.
fn parse_stat(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // After the name: state is field 3, utime 14 and stime 15.
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / TICKS_PER_SEC)
}

/// The resident set size of `pid` in bytes (`VmRSS` of `/proc/<pid>/status`);
/// `None` if the process is gone.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utime_and_stime_are_read_after_the_name() {
        let stat = "4242 (we ft) (x)) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 9 0 100 0";
        assert_eq!(parse_stat(stat), Some(3.0));
        assert!(cpu_secs(&[std::process::id()]).is_some());
        assert_eq!(cpu_secs(&[]), None);
    }

    #[test]
    fn the_rss_of_this_process_is_read() {
        assert!(rss_bytes(std::process::id()).is_some_and(|b| b > 0));
    }
}
