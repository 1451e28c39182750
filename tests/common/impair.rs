//! Delay and jitter on the links between fault-network hosts, made in user
//! space because this kernel has no `sch_netem` (and no NFQUEUE either).
//!
//! Each impaired host gets a TUN device in its namespace and a /32 route
//! through it to every other impaired host, more specific than the bridge's
//! /24: every packet between two of them (gossip, QUIC, anything) leaves its
//! sender's kernel through the TUN, is read here, held for its own random
//! delay and written into the receiver's TUN, where the receiver's kernel
//! takes it as arrived. Delays are drawn per packet, so packets overtake each
//! other as they would on a jittery link. Nothing else is touched: the test's
//! clients and the service relays still reach the hosts over the bridge, and
//! [`super::netns::Net::lossy`] still drops in the sender's kernel (its
//! nftables hook runs before the packet reaches the TUN).
//!
//! Dropping the [`Jitter`] stops the forwarding and closes the TUNs, which
//! removes them and their routes: the hosts talk over the bridge again.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::os::fd::AsFd as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::time::Instant;
use tun_rs::{InterruptEvent, SyncDevice};

use super::netns::{Host, ip_in};

/// The TUN device's name inside each impaired host's namespace.
const TUN: &str = "wjit0";

/// What the forwarding did so far.
#[derive(Clone, Copy, Debug, Default)]
pub struct JitterStats {
    /// Packets read from a sender and written to their receiver.
    pub forwarded: u64,
    /// Packets released before one their sender sent earlier on the same link.
    pub overtaking: u64,
    /// The shortest and longest delay given, in milliseconds.
    pub min_ms: u64,
    pub max_ms: u64,
    /// Packets the sender's kernel put in its TUN that are for no impaired
    /// host (IPv6 link-local chatter the device makes when it comes up).
    pub foreign: u64,
    /// Packets the receiver's TUN refused (its device already gone).
    pub refused: u64,
}

#[derive(Default)]
struct Counters {
    forwarded: AtomicU64,
    overtaking: AtomicU64,
    min_ms: AtomicU64,
    max_ms: AtomicU64,
    foreign: AtomicU64,
    refused: AtomicU64,
}

/// Per-packet random delay on every link between the impaired hosts; undone on drop.
pub struct Jitter {
    counters: Arc<Counters>,
    stop: Arc<InterruptEvent>,
    readers: Vec<JoinHandle<()>>,
}

impl Jitter {
    /// From now on every packet between two of `hosts` is held for `base` ±
    /// `spread` (uniform, per packet; `spread` ≤ `base`). Called inside a
    /// tokio runtime: the held packets are released by its timers.
    pub fn start(hosts: &[&Host], base: Duration, spread: Duration) -> Jitter {
        assert!(hosts.len() >= 2 && spread <= base, "jitter needs two hosts and spread ≤ base");
        let mut tuns: HashMap<Ipv4Addr, Arc<SyncDevice>> = HashMap::new();
        for host in hosts {
            let device = open_tun_in(&host.ns);
            // An interruptible read wants a non-blocking device.
            device.set_nonblocking(true).unwrap();
            ip_in(&host.ns, &["link", "set", TUN, "up"]);
            for peer in hosts.iter().filter(|p| p.ip != host.ip) {
                ip_in(&host.ns, &["route", "replace", &format!("{}/32", peer.ip), "dev", TUN]);
            }
            tuns.insert(host.ip, Arc::new(device));
        }
        let counters = Arc::new(Counters { min_ms: AtomicU64::new(u64::MAX), ..Counters::default() });
        let stop = Arc::new(InterruptEvent::new().unwrap());
        let tuns = Arc::new(tuns);
        let runtime = tokio::runtime::Handle::current();
        let readers = tuns
            .values()
            .map(|tun| {
                let reader = Reader {
                    tun: Arc::clone(tun),
                    tuns: Arc::clone(&tuns),
                    counters: Arc::clone(&counters),
                    stop: Arc::clone(&stop),
                    runtime: runtime.clone(),
                    base,
                    spread,
                };
                std::thread::spawn(move || reader.run())
            })
            .collect();
        Jitter { counters, stop, readers }
    }

    /// What the forwarding did so far.
    pub fn stats(&self) -> JitterStats {
        let c = &self.counters;
        JitterStats {
            forwarded: c.forwarded.load(Ordering::Relaxed),
            overtaking: c.overtaking.load(Ordering::Relaxed),
            min_ms: c.min_ms.load(Ordering::Relaxed),
            max_ms: c.max_ms.load(Ordering::Relaxed),
            foreign: c.foreign.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Jitter {
    fn drop(&mut self) {
        // The readers end and drop their TUNs (the packets still held let go
        // of theirs within the longest delay): the kernel removes each device
        // with its routes, and the hosts talk over the bridge again.
        let _ = self.stop.trigger();
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }
}

/// A TUN device named [`TUN`] made in namespace `ns` (a thread that moves
/// into it, creates the device and ends; the device stays in that namespace).
fn open_tun_in(ns: &str) -> SyncDevice {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        rustix::thread::move_into_link_name_space(
            file.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .unwrap_or_else(|e| panic!("setns into {path} refused: {e} (the fault tests need root)"));
        tun_rs::DeviceBuilder::new().name(TUN).build_sync().unwrap_or_else(|e| {
            panic!("no TUN device in {path}: {e} (the jitter fault needs /dev/net/tun and root)")
        })
    })
    .join()
    .unwrap()
}

/// Reads what one host sends through its TUN and hands each packet to its
/// receiver's TUN after the packet's own delay.
struct Reader {
    tun: Arc<SyncDevice>,
    tuns: Arc<HashMap<Ipv4Addr, Arc<SyncDevice>>>,
    counters: Arc<Counters>,
    stop: Arc<InterruptEvent>,
    runtime: tokio::runtime::Handle,
    base: Duration,
    spread: Duration,
}

impl Reader {
    fn run(self) {
        let counters = &self.counters;
        // The latest release time given on each of this host's links so far.
        let mut latest: HashMap<Ipv4Addr, Instant> = HashMap::new();
        let mut buf = vec![0u8; 65_536];
        // Ends when the event is triggered (an error) or the device goes.
        while let Ok(n) = self.tun.recv_intr(&mut buf, &self.stop) {
            // An IPv4 header's destination is bytes 16..20; anything else
            // (the IPv6 the devices send when they come up) is foreign.
            let to = (n >= 20 && buf[0] >> 4 == 4).then(|| Ipv4Addr::new(buf[16], buf[17], buf[18], buf[19]));
            let Some((to, receiver)) = to.and_then(|to| Some((to, Arc::clone(self.tuns.get(&to)?)))) else {
                counters.foreign.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let delay = self.base - self.spread + self.spread.mul_f64(2.0 * rand::random::<f64>());
            let due = Instant::now() + delay;
            let last = latest.entry(to).or_insert(due);
            if due < *last {
                counters.overtaking.fetch_add(1, Ordering::Relaxed);
            } else {
                *last = due;
            }
            let ms = delay.as_millis() as u64;
            counters.min_ms.fetch_min(ms, Ordering::Relaxed);
            counters.max_ms.fetch_max(ms, Ordering::Relaxed);
            let packet = buf[..n].to_vec();
            let counters = Arc::clone(counters);
            self.runtime.spawn(async move {
                tokio::time::sleep_until(due).await;
                // A TUN write hands the packet to the receiver's kernel at once.
                match receiver.send(&packet) {
                    Ok(_) => counters.forwarded.fetch_add(1, Ordering::Relaxed),
                    Err(_) => counters.refused.fetch_add(1, Ordering::Relaxed),
                };
            });
        }
    }
}
