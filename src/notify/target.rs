//! Where a webhook may point: the URL rules checked when it is registered,
//! and the address rules checked on every connection (so a name that later
//! resolves to a private address is refused too).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::Url;

/// The longest URL accepted.
pub const MAX_URL: usize = 2048;

/// What the operator allows webhook URLs to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// `http://` as well as `https://`.
    pub allow_http: bool,
    /// Loopback, private, link-local and other non-public addresses.
    pub allow_private: bool,
}

/// Why a URL is refused (the message is the client's error message).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    /// Not a URL at all, or too long.
    #[error("`url` must be an absolute http(s) URL of at most 2048 characters")]
    Malformed,
    /// Not https (or http where allowed).
    #[error("`url` must be https (http is not allowed on this server)")]
    Scheme,
    /// The URL holds a user name or password.
    #[error("`url` must not hold credentials")]
    Credentials,
    /// It names a private address and those are not allowed.
    #[error("`url` must not point to a private, loopback or link-local address")]
    Private,
}

/// Checks a URL a client registers; returns it normalised.
pub fn check_url(raw: &str, policy: Policy) -> Result<Url, TargetError> {
    if raw.len() > MAX_URL {
        return Err(TargetError::Malformed);
    }
    let url = Url::parse(raw).map_err(|_| TargetError::Malformed)?;
    match url.scheme() {
        "https" => {}
        "http" if policy.allow_http => {}
        "http" => return Err(TargetError::Scheme),
        _ => return Err(TargetError::Malformed),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(TargetError::Credentials);
    }
    let Some(host) = url.host() else {
        return Err(TargetError::Malformed);
    };
    if !policy.allow_private {
        let private = match host {
            url::Host::Ipv4(ip) => !is_public(IpAddr::V4(ip)),
            url::Host::Ipv6(ip) => !is_public(IpAddr::V6(ip)),
            url::Host::Domain(name) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                name == "localhost" || name.ends_with(".localhost") || name.ends_with(".local")
            }
        };
        if private {
            return Err(TargetError::Private);
        }
    }
    Ok(url)
}

/// Whether the URL's host, when it is an address, is one the policy allows
/// (names are checked when they resolve, by [`PublicResolver`]).
pub fn literal_allowed(url: &Url, policy: Policy) -> bool {
    if policy.allow_private {
        return true;
    }
    match url.host() {
        Some(url::Host::Ipv4(ip)) => is_public(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => is_public(IpAddr::V6(ip)),
        _ => true,
    }
}

/// Whether an address is on the public internet: not loopback, private,
/// link-local, shared (CGNAT), unspecified, broadcast, multicast or
/// documentation space (IPv4-mapped IPv6 addresses are judged as IPv4).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => public_v4(v4),
            None => public_v6(v6),
        },
    }
}

fn public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && ip.octets()[2] == 0)
        || a >= 240)
}

fn public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || first == 0x2001 && ip.segments()[1] == 0x0db8)
}

/// A DNS resolver that refuses names resolving to non-public addresses (DNS
/// rebinding, a redirect's target): the connection fails, the attempt is
/// logged as failed.
#[derive(Debug, Default)]
pub struct PublicResolver;

impl reqwest::dns::Resolve for PublicResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = addrs.into_iter().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                return Err(Box::new(PrivateAddress) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// A name resolved only to addresses that are not allowed.
#[derive(Debug, thiserror::Error)]
#[error("the host resolves only to private addresses")]
pub struct PrivateAddress;

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: Policy = Policy { allow_http: false, allow_private: false };
    const LAX: Policy = Policy { allow_http: true, allow_private: true };

    #[test]
    fn urls_are_checked_against_the_policy() {
        assert!(check_url("https://hooks.example.com/weft?x=1", STRICT).is_ok());
        assert_eq!(check_url("http://hooks.example.com/", STRICT), Err(TargetError::Scheme));
        assert!(check_url("http://hooks.example.com/", LAX).is_ok());
        assert_eq!(check_url("ftp://hooks.example.com/", LAX), Err(TargetError::Malformed));
        assert_eq!(check_url("not a url", LAX), Err(TargetError::Malformed));
        assert_eq!(check_url("https://u:p@hooks.example.com/", LAX), Err(TargetError::Credentials));
        for private in [
            "https://127.0.0.1/",
            "https://10.1.2.3/",
            "https://192.168.1.1/",
            "https://172.20.0.1/",
            "https://169.254.169.254/latest/meta-data",
            "https://100.64.0.1/",
            "https://0.0.0.0/",
            "https://[::1]/",
            "https://[fd00::1]/",
            "https://[fe80::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://localhost:8080/",
            "https://api.localhost/",
        ] {
            assert_eq!(check_url(private, STRICT), Err(TargetError::Private), "{private}");
            assert!(check_url(private, LAX).is_ok(), "{private}");
        }
        assert!(check_url("https://8.8.8.8/", STRICT).is_ok());
        assert!(check_url("https://[2606:4700::1111]/", STRICT).is_ok());
        assert_eq!(
            check_url(&format!("https://a.example/{}", "x".repeat(2100)), LAX),
            Err(TargetError::Malformed)
        );
    }
}
