//! A real network to break: each host (a weft node, a service relay) lives in
//! its own network namespace, joined to a private bridge in the test's own
//! namespace by a veth pair, with an address on a /24 of 10.x no other live
//! run uses. The test process reaches every host through the bridge.
//!
//! Faults are made with `ip`, and loss with `nft` (this kernel has no
//! `sch_netem` and no tc classifiers or actions):
//!
//! - [`Net::cut`]: one way, silent. The sender's neighbour entry for the
//!   receiver is replaced by a MAC address no host has, so its frames are
//!   flooded by the bridge and dropped by every NIC; the sender's sockets
//!   notice nothing (no error, no reset), exactly like a lost link.
//! - [`Net::link_down`]: the host's bridge port goes down, both ways, for
//!   everyone (its peers, its services and the test's clients).
//! - [`Net::lossy`]: random loss on some of the host's outgoing links, with an
//!   nftables table in its namespace (`numgen random` … `drop`), since netem
//!   is missing; needs `nft` (nftables, installed by `scripts/test.sh`).
//!
//! Everything is created under names that carry this process's id and is
//! removed on drop; a run killed before its drop is cleaned by the next
//! [`Net::new`], which deletes whatever a dead process left.

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

/// Namespaces made here are `weft-f-<pid>-<net>-<host>`.
const NS_PREFIX: &str = "weft-f-";
/// Bridges `wfb<pid>x<net>`, root ends of veth pairs `wv<pid>-<net>-<host>` (≤ 15 bytes).
const BRIDGE_PREFIX: &str = "wfb";
const VETH_PREFIX: &str = "wv";
/// A MAC address no host has: frames sent to it go nowhere.
const NOWHERE: &str = "02:00:5e:00:de:ad";
/// The nftables table (family `inet`) [`Net::lossy`] makes in a host's namespace.
const LOSS_TABLE: &str = "weftloss";

static NETS: AtomicU32 = AtomicU32::new(0);
static CREATE: Mutex<()> = Mutex::new(());

/// Runs `ip`/`tc` with `args`; panics with its stderr when it fails.
#[track_caller]
pub fn ip(args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("the fault tests need iproute2's `ip` (root, network namespaces): {e}"));
    assert!(
        out.status.success(),
        "`ip {}` failed: {} (the fault tests need root and network namespaces)",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `ip` inside namespace `ns`.
#[track_caller]
pub fn ip_in(ns: &str, args: &[&str]) -> String {
    let mut all = vec!["netns", "exec", ns, "ip"];
    all.extend_from_slice(args);
    ip(&all)
}

/// One host: a namespace, its address, and the root end of its link.
#[derive(Clone, Debug)]
pub struct Host {
    /// The namespace's name (`ip netns exec <ns> …`).
    pub ns: String,
    /// Its address on the bridge.
    pub ip: Ipv4Addr,
    /// The root-namespace end of its veth pair (a bridge port).
    pub port: String,
    /// The namespace end of its veth pair.
    pub dev: String,
}

/// A bridge and the hosts on it; removed on drop.
pub struct Net {
    id: u32,
    bridge: String,
    subnet: [u8; 3],
    hosts: Mutex<Vec<Host>>,
}

impl Net {
    /// Creates the bridge (after removing what dead runs left); panics with
    /// the reason when the kernel or the user may not make namespaces.
    pub fn new() -> Net {
        let _guard = CREATE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        clean_leftovers();
        let pid = std::process::id();
        let id = NETS.fetch_add(1, Ordering::Relaxed);
        assert!(id < 100, "more than 100 fault networks in one process");
        let bridge = format!("{BRIDGE_PREFIX}{pid}x{id}");
        let subnet = free_subnet(pid, id);
        ip(&["link", "add", &bridge, "type", "bridge"]);
        let net = Net { id, bridge, subnet, hosts: Mutex::new(Vec::new()) };
        let cidr = format!("{}/24", net.gateway());
        ip(&["addr", "add", &cidr, "dev", &net.bridge]);
        ip(&["link", "set", &net.bridge, "up"]);
        net
    }

    /// The test process's own address on the bridge.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::new(self.subnet[0], self.subnet[1], self.subnet[2], 1)
    }

    /// A new host named `name`, up, with the next free address.
    pub fn host(&self, name: &str) -> Host {
        let mut hosts = self.hosts.lock().unwrap();
        let n = hosts.len();
        assert!(n < 100, "more than 100 hosts on one fault network");
        let pid = std::process::id();
        let ns = format!("{NS_PREFIX}{pid}-{}-{name}", self.id);
        let port = format!("{VETH_PREFIX}{pid}-{}-{n}", self.id);
        let dev = format!("wn{pid}-{}-{n}", self.id);
        let address = Ipv4Addr::new(self.subnet[0], self.subnet[1], self.subnet[2], 10 + n as u8);
        ip(&["netns", "add", &ns]);
        ip(&["link", "add", &port, "type", "veth", "peer", "name", &dev]);
        ip(&["link", "set", &dev, "netns", &ns]);
        ip(&["link", "set", &port, "master", &self.bridge, "up"]);
        ip_in(&ns, &["addr", "add", &format!("{address}/24"), "dev", &dev]);
        ip_in(&ns, &["link", "set", &dev, "up"]);
        ip_in(&ns, &["link", "set", "lo", "up"]);
        let host = Host { ns, ip: address, port, dev };
        hosts.push(host.clone());
        host
    }

    /// From now on nothing `from` sends to `to` arrives (`to` still reaches `from`).
    pub fn cut(&self, from: &Host, to: &Host) {
        ip_in(
            &from.ns,
            &[
                "neigh",
                "replace",
                &to.ip.to_string(),
                "lladdr",
                NOWHERE,
                "nud",
                "permanent",
                "dev",
                &from.dev,
            ],
        );
    }

    /// Undoes [`Net::cut`]: `from` resolves `to` again.
    pub fn heal(&self, from: &Host, to: &Host) {
        ip_in(&from.ns, &["neigh", "del", &to.ip.to_string(), "dev", &from.dev]);
    }

    /// Cuts both ways between `a` and `b`.
    pub fn partition(&self, a: &Host, b: &Host) {
        self.cut(a, b);
        self.cut(b, a);
    }

    /// Heals both ways between `a` and `b`.
    pub fn rejoin(&self, a: &Host, b: &Host) {
        self.heal(a, b);
        self.heal(b, a);
    }

    /// Takes the host's link down: nothing reaches it, nothing leaves it.
    pub fn link_down(&self, host: &Host) {
        ip(&["link", "set", &host.port, "down"]);
    }

    /// Brings the host's link back up.
    pub fn link_up(&self, host: &Host) {
        ip(&["link", "set", &host.port, "up"]);
    }

    /// From now on `percent`% of the packets `host` sends to any of `peers`
    /// (every protocol: gossip and QUIC alike) are dropped at random, in the
    /// kernel; its packets to anyone else are untouched. Replaces an earlier
    /// [`Net::lossy`] of the host.
    pub fn lossy(&self, host: &Host, peers: &[&Host], percent: u32) {
        assert!(!peers.is_empty() && percent <= 100, "lossy needs peers and a percentage");
        let peers: Vec<String> = peers.iter().map(|p| p.ip.to_string()).collect();
        let peers = peers.join(", ");
        // Declaring the table first makes the delete succeed on a first call,
        // and the whole file is applied at once.
        let rules = format!(
            "table inet {LOSS_TABLE}\n\
             delete table inet {LOSS_TABLE}\n\
             table inet {LOSS_TABLE} {{\n\
             \tchain out {{\n\
             \t\ttype filter hook output priority 0; policy accept;\n\
             \t\tip daddr {{ {peers} }} counter\n\
             \t\tip daddr {{ {peers} }} numgen random mod 100 < {percent} counter drop\n\
             \t}}\n\
             }}\n"
        );
        nft_in(&host.ns, &rules);
    }

    /// Since [`Net::lossy`]: how many packets `host` sent its lossy peers,
    /// and how many of them were dropped (the table's two counters).
    pub fn loss_counts(&self, host: &Host) -> (u64, u64) {
        let listing = nft_in(&host.ns, &format!("list table inet {LOSS_TABLE}\n"));
        let counts: Vec<u64> = listing
            .lines()
            .filter_map(|l| l.split("counter packets ").nth(1))
            .filter_map(|rest| rest.split_whitespace().next())
            .filter_map(|n| n.parse().ok())
            .collect();
        match counts[..] {
            [seen, dropped] => (seen, dropped),
            _ => panic!("no loss counters in {}'s table:\n{listing}", host.ns),
        }
    }

    /// Undoes [`Net::lossy`]: nothing `host` sends is dropped any more.
    pub fn lossless(&self, host: &Host) {
        nft_in(&host.ns, &format!("table inet {LOSS_TABLE}\ndelete table inet {LOSS_TABLE}\n"));
    }
}

/// Applies the nftables `rules` (an `nft -f` file) inside namespace `ns`;
/// returns what it printed; panics with the reason when `nft` is missing or
/// the kernel refuses them.
#[track_caller]
pub fn nft_in(ns: &str, rules: &str) -> String {
    use std::io::Write as _;
    let missing = |e: std::io::Error| -> ! {
        panic!("the loss faults need nftables' `nft` (`apt-get install nftables`, scripts/test.sh does): {e}")
    };
    if let Err(e) = Command::new("nft").arg("--version").output() {
        missing(e);
    }
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| missing(e));
    child.stdin.take().unwrap().write_all(rules.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "`nft -f -` in {ns} refused:\n{rules}\n{} (the loss faults need root and nf_tables)",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Drop for Net {
    fn drop(&mut self) {
        let hosts = self.hosts.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner);
        for host in hosts.drain(..) {
            // Deleting the namespace deletes its end of the pair, and so the pair.
            let _ = Command::new("ip").args(["netns", "del", &host.ns]).status();
            let _ = Command::new("ip").args(["link", "del", &host.port]).output();
        }
        let _ = Command::new("ip").args(["link", "del", &self.bridge]).status();
    }
}

/// A /24 of 10.x no route of this namespace covers yet, chosen from the pid.
fn free_subnet(pid: u32, id: u32) -> [u8; 3] {
    let routes = ip(&["-4", "route", "show"]);
    let start = pid.wrapping_mul(31).wrapping_add(id.wrapping_mul(7919));
    for step in 0..10_000u32 {
        let n = start.wrapping_add(step) % (50 * 256);
        let subnet = [10, 200 + (n / 256) as u8, (n % 256) as u8];
        let prefix = format!("{}.{}.{}.", subnet[0], subnet[1], subnet[2]);
        if !routes.lines().any(|l| l.starts_with(&prefix)) {
            return subnet;
        }
    }
    panic!("no free 10.200-249.x.0/24 subnet in this namespace's routes");
}

/// Removes the namespaces and links of fault networks whose process is gone.
fn clean_leftovers() {
    let dead = |name: &str, prefix: &str, sep: char| {
        name.strip_prefix(prefix)
            .and_then(|rest| rest.split(sep).next())
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_some_and(|pid| {
                pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists()
            })
    };
    for line in ip(&["netns", "list"]).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        if dead(name, NS_PREFIX, '-') {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
    for line in ip(&["-o", "link", "show"]).lines() {
        // "12: wfb123x0: <…" or "13: wv123-0-1@if12: <…"
        let Some(name) = line.split(": ").nth(1).map(|n| n.split('@').next().unwrap_or(n)) else { continue };
        if dead(name, BRIDGE_PREFIX, 'x') || dead(name, VETH_PREFIX, '-') {
            let _ = Command::new("ip").args(["link", "del", name]).status();
        }
    }
}
