//! Where a JWKS fetch may connect: public addresses only, unless the
//! operator allows private networks (`jwks.allow_private_networks`) or names
//! the host (`jwks.private_hosts`).
//!
//! An application's token holder chooses the URL, so without this guard a
//! node would open connections on their behalf to its own loopback, the
//! cloud metadata service or anything else on its private network. A URL
//! whose host is a literal address is checked when it is set and again
//! before each fetch; a host name is checked by the resolver the HTTP
//! client connects through, so the addresses checked are the addresses
//! connected to (a DNS answer that changes between a check and the
//! connect — rebinding — cannot slip a private address in).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// A host that is, or resolves to, an address that is not public.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{host} resolves to {addr}, which is not a public address")]
pub struct NonPublicAddress {
    /// The host as written in the URL.
    pub host: String,
    /// The first non-public address it resolved to.
    pub addr: IpAddr,
}

/// Which hosts may resolve to non-public addresses.
#[derive(Debug, Default)]
pub(crate) struct EgressPolicy {
    /// Any host may (`jwks.allow_private_networks`).
    pub(crate) allow_private_networks: bool,
    /// These hosts may, compared case-insensitively (`jwks.private_hosts`).
    pub(crate) private_hosts: Vec<String>,
}

impl EgressPolicy {
    /// Whether `host` (a name, or an address as written in a URL) may reach private addresses.
    fn exempts(&self, host: &str) -> bool {
        let host = unbracket(host);
        self.allow_private_networks
            || self.private_hosts.iter().any(|h| unbracket(h).eq_ignore_ascii_case(host))
    }

    /// Checks `addrs`, the addresses of `host`: every one must be public.
    pub(crate) fn check(&self, host: &str, addrs: &[IpAddr]) -> Result<(), NonPublicAddress> {
        if self.exempts(host) {
            return Ok(());
        }
        match addrs.iter().find(|addr| !is_public(**addr)) {
            Some(addr) => Err(NonPublicAddress { host: host.to_owned(), addr: *addr }),
            None => Ok(()),
        }
    }

    /// Checks a URL's host if it is a literal address (names are checked when resolved).
    pub(crate) fn check_literal(&self, url: &reqwest::Url) -> Result<(), NonPublicAddress> {
        // The URL parser has already turned any IPv4 spelling (`0x7f.1`) into dotted decimal.
        let host = url.host_str().unwrap_or_default();
        match unbracket(host).parse::<IpAddr>() {
            Ok(addr) => self.check(host, &[addr]),
            Err(_) => Ok(()),
        }
    }
}

fn unbracket(host: &str) -> &str {
    host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host)
}

/// The resolver of the JWKS client: the system's (`getaddrinfo`), with every
/// answer checked against the policy before the client may connect.
#[derive(Debug)]
pub(crate) struct PublicResolver(pub(crate) Arc<EgressPolicy>);

impl Resolve for PublicResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = Arc::clone(&self.0);
        Box::pin(async move {
            let host = name.as_str();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, 0)).await?.collect();
            let ips: Vec<IpAddr> = addrs.iter().map(SocketAddr::ip).collect();
            policy.check(host, &ips)?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Whether `addr` is a public (globally routable unicast) address: not
/// loopback, private (RFC 1918, ULA), link-local, unspecified, shared
/// (CGNAT), multicast, broadcast, documentation, benchmarking or reserved.
/// IPv4 addresses inside IPv6 (mapped, NAT64, 6to4) are judged as IPv4.
pub fn is_public(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(addr: Ipv4Addr) -> bool {
    let [a, b, c, _] = addr.octets();
    !(a == 0 // "this network", 0.0.0.0
        || a == 10
        || a == 127
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 169 && b == 254)
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // documentation
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
        || (a == 192 && b == 168)
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // documentation
        || (a == 203 && b == 0 && c == 113) // documentation
        || a >= 224) // multicast, reserved, broadcast
}

fn is_public_v6(addr: Ipv6Addr) -> bool {
    let segments = addr.segments();
    let embedded_v4 = |hi: u16, lo: u16| {
        let [a, b] = hi.to_be_bytes();
        let [c, d] = lo.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    if let Some(v4) = addr.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    // NAT64 (64:ff9b::/96): how an IPv6-only network reaches IPv4 hosts.
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return is_public_v4(embedded_v4(segments[6], segments[7]));
    }
    // 6to4 (2002::/16) carries the IPv4 address in bits 16-48.
    if segments[0] == 0x2002 {
        return is_public_v4(embedded_v4(segments[1], segments[2]));
    }
    // Global unicast is 2000::/3; everything else (loopback, unspecified,
    // IPv4-compatible, discard, ULA fc00::/7, link-local, multicast) is not.
    (segments[0] & 0xe000) == 0x2000
        && !(segments[0] == 0x2001 && segments[1] < 0x200) // IETF protocol assignments, Teredo
        && !(segments[0] == 0x2001 && segments[1] == 0xdb8) // documentation
        && (segments[0] & 0xfff0) != 0x3ff0 // documentation (3fff::/20)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_globally_routable_unicast_addresses_are_public() {
        for private in [
            "0.0.0.0",
            "0.1.2.3",
            "10.1.2.3",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "127.255.0.9",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::127.0.0.1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::1",
            "2001::1",
            "2001:db8::1",
            "3fff::1",
            "100::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
        ] {
            assert!(!is_public(ip(private)), "{private} counted as public");
        }
        for public in [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.0.1",
            "172.32.0.1",
            "192.169.0.1",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(is_public(ip(public)), "{public} counted as private");
        }
    }

    #[test]
    fn the_policy_exempts_every_host_or_the_named_ones() {
        let strict = EgressPolicy::default();
        let err = strict.check("localhost", &[ip("8.8.8.8"), ip("127.0.0.1")]).unwrap_err();
        assert_eq!(err.addr, ip("127.0.0.1"));
        assert_eq!(err.to_string(), "localhost resolves to 127.0.0.1, which is not a public address");
        assert!(strict.check("idp.example", &[ip("8.8.8.8")]).is_ok());

        let named = EgressPolicy {
            allow_private_networks: false,
            private_hosts: vec!["IdP.internal".into(), "[fd00::5]".into(), "10.0.0.7".into()],
        };
        assert!(named.check("idp.internal", &[ip("10.0.0.5")]).is_ok());
        assert!(named.check("other.internal", &[ip("10.0.0.5")]).is_err());
        let literal = |u: &str| named.check_literal(&reqwest::Url::parse(u).unwrap());
        assert!(literal("https://10.0.0.7/jwks").is_ok());
        assert!(literal("https://[fd00::5]/jwks").is_ok());
        assert!(literal("https://10.0.0.8/jwks").is_err());
        assert!(literal("https://[fd00::6]:8443/jwks").is_err());
        assert!(literal("https://0x7f.1/jwks").is_err());
        // Names are left to the resolver.
        assert!(literal("https://localhost/jwks").is_ok());

        let open = EgressPolicy { allow_private_networks: true, private_hosts: Vec::new() };
        assert!(open.check("localhost", &[ip("127.0.0.1")]).is_ok());
    }
}
