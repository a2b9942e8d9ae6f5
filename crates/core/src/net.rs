//! Which network an address belongs to: private space (data stays in the customer's network)
//! or the public internet. Used by the air-gapped switch, the default for prompt redaction,
//! the egress audit, and the control plane's guard against probing private networks.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Where an address lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// This host (127.0.0.0/8, ::1).
    Loopback,
    /// RFC 1918, carrier-grade NAT (100.64.0.0/10), IPv6 unique-local (fc00::/7).
    Private,
    /// 169.254.0.0/16, fe80::/10 — including cloud metadata services.
    LinkLocal,
    /// Anything else: the public internet.
    Public,
    /// Unspecified, broadcast, documentation or reserved ranges: never a real endpoint.
    Special,
}

impl Scope {
    /// Whether traffic to this address stays inside the customer's network.
    pub fn is_internal(self) -> bool {
        matches!(self, Scope::Loopback | Scope::Private | Scope::LinkLocal)
    }
}

/// Classifies an address. IPv4-mapped IPv6 addresses are classified as the IPv4 address they
/// carry, so `::ffff:10.0.0.1` cannot pass for public.
pub fn scope(ip: IpAddr) -> Scope {
    match ip {
        IpAddr::V4(v4) => scope_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => scope_v4(v4),
            None => scope_v6(v6),
        },
    }
}

fn scope_v4(ip: Ipv4Addr) -> Scope {
    let o = ip.octets();
    if ip.is_loopback() {
        Scope::Loopback
    } else if ip.is_private() || (o[0] == 100 && (o[1] & 0xc0) == 64) {
        Scope::Private
    } else if ip.is_link_local() {
        Scope::LinkLocal
    } else if ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || o[0] == 0
        || o[0] >= 240
    {
        Scope::Special
    } else {
        Scope::Public
    }
}

fn scope_v6(ip: Ipv6Addr) -> Scope {
    let seg = ip.segments();
    if ip.is_loopback() {
        Scope::Loopback
    } else if (seg[0] & 0xfe00) == 0xfc00 {
        Scope::Private
    } else if (seg[0] & 0xffc0) == 0xfe80 {
        Scope::LinkLocal
    } else if ip.is_unspecified() || ip.is_multicast() || seg[0] == 0x2001 && seg[1] == 0x0db8 {
        Scope::Special
    } else {
        Scope::Public
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Scope {
        scope(text.parse().unwrap())
    }

    #[test]
    fn classifies_the_ranges_that_matter() {
        assert_eq!(s("127.0.0.1"), Scope::Loopback);
        assert_eq!(s("::1"), Scope::Loopback);
        for p in [
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "100.127.255.254",
            "fd00::1",
            "fc12::1",
        ] {
            assert_eq!(s(p), Scope::Private, "{p}");
        }
        for l in ["169.254.169.254", "169.254.170.2", "fe80::1"] {
            assert_eq!(s(l), Scope::LinkLocal, "{l}");
        }
        for p in [
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "52.94.0.1",
        ] {
            assert_eq!(s(p), Scope::Public, "{p}");
        }
        for x in [
            "0.0.0.0",
            "255.255.255.255",
            "192.0.2.1",
            "::",
            "2001:db8::1",
            "224.0.0.1",
        ] {
            assert_eq!(s(x), Scope::Special, "{x}");
        }
        assert_eq!(
            s("::ffff:10.0.0.1"),
            Scope::Private,
            "mapped addresses are not a way around"
        );
        assert_eq!(s("::ffff:169.254.169.254"), Scope::LinkLocal);
    }
}
