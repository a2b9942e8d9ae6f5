//! The private-network guard for clients that call URLs chosen by someone else (the control
//! plane calling a tenant's endpoint): only public addresses may be reached.
//!
//! The check happens where the connection is made, not before it: a client built with
//! [`Egress::PublicOnly`] resolves host names through [`PublicOnlyResolver`], which looks the
//! name up once, rejects the lookup if any address is not public, and hands exactly the vetted
//! addresses to the connector. There is no second lookup an attacker's DNS could answer
//! differently (DNS rebinding). Literal IP addresses never reach a resolver, so callers check
//! them with [`check_url`] (and redirects are checked by the client's redirect policy).
//! Proxies are disabled for such clients, because a proxy would resolve the name itself.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

/// Which addresses a client may connect to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Egress {
    /// Any address (the tenant plane, inside the customer's network, and the managed model).
    #[default]
    Any,
    /// Public unicast addresses only.
    PublicOnly,
}

/// Whether an address is public: not loopback, private (RFC 1918), link-local, unique-local,
/// carrier-grade NAT, unspecified, multicast, broadcast, documentation, benchmarking or
/// reserved. IPv4-mapped and NAT64 IPv6 addresses are judged by the IPv4 address inside.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let s = v6.segments();
            // NAT64 (64:ff9b::/96) carries an IPv4 address in its last 32 bits.
            if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
                let v4 =
                    Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
                return is_public_v4(v4);
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (s[0] & 0xffc0) == 0xfec0 // deprecated site-local fec0::/10
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0 && s[1..6] == [0, 0, 0, 0, 0])) // IPv4-compatible ::a.b.c.d
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || o[0] == 0 // "this network"
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // carrier-grade NAT 100.64.0.0/10
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking 198.18.0.0/15
        || o[0] >= 240) // reserved
}

/// Why a URL may not be called.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{host} is a {what} address; the control plane only calls public addresses")]
pub struct PrivateAddress {
    /// The host as written, or the address it resolved to.
    pub host: String,
    /// `loopback`, `private`, `link-local`...
    pub what: &'static str,
}

/// What kind of non-public address this is, for messages.
pub fn describe(ip: IpAddr) -> &'static str {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) if v4.is_loopback() => "loopback",
        IpAddr::V4(v4) if v4.is_private() => "private",
        IpAddr::V4(v4) if v4.is_link_local() => "link-local",
        IpAddr::V4(v4) if v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64 => {
            "carrier-grade NAT"
        }
        IpAddr::V6(v6) if v6.is_loopback() => "loopback",
        IpAddr::V6(v6) if (v6.segments()[0] & 0xfe00) == 0xfc00 => "unique-local",
        IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80 => "link-local",
        _ => "non-public",
    }
}

/// Checks a URL whose host is a literal IP address (names are checked when they resolve).
pub fn check_url(url: &Url) -> Result<(), PrivateAddress> {
    let ip = match url.host() {
        Some(Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(Host::Ipv6(v6)) => IpAddr::V6(v6),
        _ => return Ok(()),
    };
    check_ip(url.host_str().unwrap_or_default(), ip)
}

fn check_ip(host: &str, ip: IpAddr) -> Result<(), PrivateAddress> {
    if is_public(ip) {
        Ok(())
    } else {
        Err(PrivateAddress {
            host: if host == ip.to_string() {
                host.to_owned()
            } else {
                format!("{host} ({ip})")
            },
            what: describe(ip),
        })
    }
}

/// Resolves with the system resolver and refuses names with any non-public address.
#[derive(Debug, Default, Clone, Copy)]
pub struct PublicOnlyResolver;

impl Resolve for PublicOnlyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if addrs.is_empty() {
                return Err(format!("{host} did not resolve to any address").into());
            }
            // Refuse the name outright rather than filtering: a name that mixes public and
            // private addresses is either misconfigured or an attack.
            for a in &addrs {
                check_ip(&host, a.ip())?;
            }
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// A redirect policy for guarded clients: at most 5 hops, never to another origin (see
/// [`same_origin_redirects`]) nor to a literal non-public address (names are vetted by the
/// resolver when the redirect is followed).
pub fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        if attempt.previous().len() >= 5 {
            return attempt.error("too many redirects");
        }
        if let Some(refused) = cross_origin(attempt.url(), attempt.previous()) {
            return attempt.error(refused);
        }
        match check_url(attempt.url()) {
            Ok(()) => attempt.follow(),
            Err(e) => attempt.error(e),
        }
    })
}

/// The redirect policy of every other provider client: at most 10 hops, all within the
/// endpoint's origin (scheme, host and port). A provider's credentials travel in headers that
/// reqwest keeps on a redirect to another host unless they are `Authorization` (Anthropic's
/// `x-api-key`, Azure's `api-key`), so a hop elsewhere is refused rather than followed.
pub fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        if attempt.previous().len() >= 10 {
            return attempt.error("too many redirects");
        }
        match cross_origin(attempt.url(), attempt.previous()) {
            Some(refused) => attempt.error(refused),
            None => attempt.follow(),
        }
    })
}

/// Why a redirect from the last of `previous` to `next` is refused, if it leaves the origin.
fn cross_origin(next: &Url, previous: &[Url]) -> Option<CrossOrigin> {
    let from = previous.last()?;
    let same = next.scheme() == from.scheme()
        && next.host_str() == from.host_str()
        && next.port_or_known_default() == from.port_or_known_default();
    (!same).then(|| CrossOrigin {
        target: format!(
            "{}://{}{}",
            next.scheme(),
            next.host_str().unwrap_or_default(),
            next.port().map(|p| format!(":{p}")).unwrap_or_default()
        ),
    })
}

/// A redirect to another origin, refused.
#[derive(Debug)]
pub struct CrossOrigin {
    target: String,
}

impl std::fmt::Display for CrossOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the endpoint redirects to another origin ({}); redirects that would take the credentials elsewhere are not followed: set the endpoint URL to the address the API is served at",
            self.target
        )
    }
}

impl std::error::Error for CrossOrigin {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_stay_within_the_origin() {
        let u = |s: &str| Url::parse(s).unwrap();
        let from = [u("https://api.example.com/v1/chat/completions")];
        assert!(cross_origin(&u("https://api.example.com/v2/chat?x=1"), &from).is_none());
        assert!(cross_origin(&u("https://api.example.com:443/v1"), &from).is_none());
        for elsewhere in [
            "https://evil.example.net/v1",
            "https://api.example.com:8443/v1",
            "http://api.example.com/v1",
        ] {
            let refused = cross_origin(&u(elsewhere), &from)
                .expect(elsewhere)
                .to_string();
            assert!(refused.contains("another origin"), "{refused}");
            assert!(
                !refused.contains("/v1"),
                "only the origin is named: {refused}"
            );
        }
        assert!(cross_origin(&u("https://x.example/"), &[]).is_none());
    }

    #[test]
    fn classifies_addresses() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.254",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "::127.0.0.1",
        ] {
            let ip: IpAddr = private.parse().unwrap();
            assert!(!is_public(ip), "{private} must not be public");
        }
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "64:ff9b::808:808",
        ] {
            let ip: IpAddr = public.parse().unwrap();
            assert!(is_public(ip), "{public} is public");
        }
    }

    #[test]
    fn literal_urls_are_checked_and_named() {
        let err = check_url(&Url::parse("http://169.254.169.254/latest").unwrap()).unwrap_err();
        assert_eq!(err.what, "link-local");
        assert!(err.to_string().contains("169.254.169.254"), "{err}");
        assert!(check_url(&Url::parse("http://[::ffff:192.168.0.1]/").unwrap()).is_err());
        assert!(check_url(&Url::parse("https://api.openai.com/v1").unwrap()).is_ok());
    }

    #[tokio::test]
    async fn the_resolver_refuses_names_of_private_addresses() {
        let name: Name = "localhost".parse().unwrap();
        let err = PublicOnlyResolver.resolve(name).await.err().unwrap();
        assert!(err.to_string().contains("loopback"), "{err}");
    }
}
