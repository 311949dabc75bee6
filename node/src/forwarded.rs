//! Which address an API request comes from, behind trusted reverse proxies.
//!
//! `trusted_proxies` is a list of CIDRs. When the TCP peer is inside one of
//! them, the client is the right-most address of `X-Forwarded-For` (or, when
//! that header is absent, of `Forwarded: for=`, RFC 7239) that is not itself
//! inside one: every proxy appends the address it got the request from, so
//! the entries right of that one were written by our proxies and everything
//! left of it by the client, who can write anything. From any other peer
//! both headers are ignored, and a header that cannot be read counts as
//! absent: the peer is the client. The per-IP rate limit and the request
//! logs use this address. Pure (no I/O), tested below.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use axum::http::HeaderMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A network, `ADDRESS/PREFIX` (`10.0.0.0/8`, `fd00::/8`); a bare address is
/// that one host. Host bits are cleared, as `ip route` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// A `trusted_proxies` entry that is not a network (permanent: a
/// configuration to fix).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("{0:?} is not an IP address or CIDR (e.g. 10.0.0.0/8, fd00::/8, 192.0.2.7)")]
    Address(String),
    #[error("{text:?}: the prefix length must be 0 to {max}")]
    Prefix { text: String, max: u8 },
}

impl Cidr {
    /// Is `ip` in this network? An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`,
    /// a dual-stack listener's view of an IPv4 peer) counts as the IPv4 one.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                u32::from(ip) & mask_v4(self.prefix) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                u128::from(ip) & mask_v6(self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }
}

fn mask_v4(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask_v6(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Self, CidrError> {
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text.trim(), None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| CidrError::Address(text.to_string()))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => {
                p.parse::<u8>()
                    .ok()
                    .filter(|p| *p <= max)
                    .ok_or_else(|| CidrError::Prefix {
                        text: text.to_string(),
                        max,
                    })?
            }
        };
        // `::ffff:10.0.0.0/104` is the IPv4 network `10.0.0.0/8`: peers are
        // compared in their IPv4 form.
        let (addr, prefix) = match addr {
            IpAddr::V6(v6) if prefix >= 96 => match v6.to_ipv4_mapped() {
                Some(v4) => (IpAddr::V4(v4), prefix - 96),
                None => (addr, prefix),
            },
            _ => (addr, prefix),
        };
        let addr = match addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask_v4(prefix))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask_v6(prefix))),
        };
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    /// Parsed while the configuration loads, so a bad entry stops the node
    /// at start with the entry in the message.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

fn trusted(ip: IpAddr, proxies: &[Cidr]) -> bool {
    proxies.iter().any(|c| c.contains(ip))
}

/// The client's address: `peer` itself unless it is a trusted proxy that
/// says who it forwards for (see the module documentation).
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, proxies: &[Cidr]) -> IpAddr {
    let peer = peer.to_canonical();
    if !trusted(peer, proxies) {
        return peer;
    }
    // X-Forwarded-For first: every common proxy (nginx, HAProxy, Envoy,
    // cloud load balancers) sets it; few set Forwarded.
    let hops = match joined(headers, "x-forwarded-for") {
        Some(v) => x_forwarded_for(&v),
        None => joined(headers, "forwarded").and_then(|v| forwarded_for(&v)),
    };
    let Some(hops) = hops else { return peer };
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop {
            // Written by one of our proxies (or the client is one of our
            // networks itself): look further left.
            Some(ip) if trusted(*ip, proxies) => client = *ip,
            Some(ip) => return *ip,
            // A trusted proxy wrote something we cannot read: do not guess.
            None => return peer,
        }
    }
    // Every hop is trusted: the left-most one is where the request began.
    client
}

/// Every value of header `name`, in order, joined with `,` (what several
/// lines of a list header mean); `None` when absent, empty or not text.
fn joined(headers: &HeaderMap, name: &str) -> Option<String> {
    let mut out: Option<String> = None;
    for v in headers.get_all(name) {
        let v = v.to_str().ok()?;
        match &mut out {
            Some(s) => {
                s.push(',');
                s.push_str(v);
            }
            None => out = Some(v.to_string()),
        }
    }
    out.filter(|s| !s.trim().is_empty())
}

/// `X-Forwarded-For: client, proxy1, proxy2`: each entry an address (a port
/// after it is tolerated); an unreadable entry is `None`.
fn x_forwarded_for(value: &str) -> Option<Vec<Option<IpAddr>>> {
    Some(value.split(',').map(|e| node(e.trim())).collect())
}

/// RFC 7239 `Forwarded: for=192.0.2.60;proto=https, for="[2001:db8::17]:4711"`:
/// the `for` of each element (`None` when it is `unknown`, obfuscated, absent
/// or unreadable). `None` for a header that does not parse at all.
fn forwarded_for(value: &str) -> Option<Vec<Option<IpAddr>>> {
    split_outside_quotes(value, ',')?
        .into_iter()
        .map(|element| {
            let mut found = None;
            for pair in split_outside_quotes(element, ';')? {
                let (name, v) = pair.split_once('=')?;
                if name.trim().eq_ignore_ascii_case("for") {
                    found = Some(unquote(v.trim())?);
                }
            }
            Some(found.and_then(|v| node(&v)))
        })
        .collect()
}

/// `s` split at `sep` where it is not inside a quoted string; `None` for an
/// unterminated quote.
fn split_outside_quotes(s: &str, sep: char) -> Option<Vec<&str>> {
    let (mut parts, mut start, mut quoted, mut escaped) = (Vec::new(), 0, false, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    if quoted {
        return None;
    }
    parts.push(&s[start..]);
    Some(parts)
}

/// A token, or a quoted string without its quotes and escapes.
fn unquote(v: &str) -> Option<String> {
    let Some(inner) = v.strip_prefix('"') else {
        return Some(v.to_string());
    };
    let inner = inner.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        out.push(if c == '\\' { chars.next()? } else { c });
    }
    Some(out)
}

/// `192.0.2.7`, `192.0.2.7:80`, `2001:db8::1`, `[2001:db8::1]`,
/// `[2001:db8::1]:80`; anything else (`unknown`, `_hidden`) is `None`.
fn node(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(sa.ip().to_canonical());
    }
    let v6 = s.strip_prefix('[')?.strip_suffix(']')?;
    v6.parse::<Ipv6Addr>()
        .ok()
        .map(|ip| IpAddr::V6(ip).to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|c| c.parse().unwrap()).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn cidrs_parse_mask_and_match() {
        let net: Cidr = "10.1.2.3/8".parse().unwrap();
        assert_eq!(net.to_string(), "10.0.0.0/8", "host bits cleared");
        assert!(net.contains(ip("10.255.0.1")));
        assert!(!net.contains(ip("11.0.0.1")));
        assert!(net.contains(ip("::ffff:10.9.9.9")), "IPv4-mapped peer");
        assert!(!net.contains(ip("fd00::1")), "other family");
        let host: Cidr = "192.0.2.7".parse().unwrap();
        assert_eq!(host.to_string(), "192.0.2.7/32");
        assert!(host.contains(ip("192.0.2.7")) && !host.contains(ip("192.0.2.8")));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fdab::1")) && !v6.contains(ip("fe80::1")));
        assert_eq!("::1".parse::<Cidr>().unwrap().to_string(), "::1/128");
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")));
        let mapped: Cidr = "::ffff:127.0.0.0/104".parse().unwrap();
        assert_eq!(mapped.to_string(), "127.0.0.0/8");
    }

    #[test]
    fn bad_cidrs_say_what_is_wrong() {
        for bad in [
            "",
            "10.0.0",
            "10.0.0.0/",
            "localhost",
            "10.0.0.0/8/8",
            "fd00::/x",
        ] {
            assert!(
                matches!(
                    bad.parse::<Cidr>(),
                    Err(CidrError::Address(_) | CidrError::Prefix { .. })
                ),
                "{bad:?}"
            );
        }
        assert_eq!(
            "10.0.0.0/33".parse::<Cidr>().unwrap_err().to_string(),
            "\"10.0.0.0/33\": the prefix length must be 0 to 32"
        );
        assert_eq!(
            "fd00::/129".parse::<Cidr>().unwrap_err(),
            CidrError::Prefix {
                text: "fd00::/129".into(),
                max: 128
            }
        );
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_says() {
        let h = headers(&[
            ("x-forwarded-for", "198.51.100.1"),
            ("forwarded", "for=198.51.100.2"),
        ]);
        assert_eq!(client_ip(ip("203.0.113.5"), &h, &[]), ip("203.0.113.5"));
        let proxies = cidrs(&["10.0.0.0/8"]);
        assert_eq!(
            client_ip(ip("203.0.113.5"), &h, &proxies),
            ip("203.0.113.5")
        );
    }

    #[test]
    fn the_right_most_untrusted_hop_of_x_forwarded_for_is_the_client() {
        let proxies = cidrs(&["10.0.0.0/8", "fd00::/8"]);
        let peer = ip("10.0.0.1");
        let cases = [
            ("198.51.100.1", "198.51.100.1"),
            // A client's own spoofed entries stay on the left.
            ("1.1.1.1, 2.2.2.2, 198.51.100.1", "198.51.100.1"),
            // A chain of our proxies on the right.
            ("198.51.100.1, 10.0.0.7, 10.0.0.8", "198.51.100.1"),
            ("1.1.1.1,198.51.100.1 ,10.2.3.4", "198.51.100.1"),
            ("2001:db8::5, fd00::2", "2001:db8::5"),
            ("198.51.100.1:4711", "198.51.100.1"),
            ("[2001:db8::5]:4711", "2001:db8::5"),
            ("::ffff:198.51.100.1", "198.51.100.1"),
            // Every hop is ours: the left-most is where it began.
            ("10.9.9.9, 10.0.0.7", "10.9.9.9"),
            // Unreadable where our proxies wrote: the peer.
            ("198.51.100.1, garbage", "10.0.0.1"),
            ("unknown", "10.0.0.1"),
            ("", "10.0.0.1"),
            (" , ", "10.0.0.1"),
            // Unreadable only where the client wrote: ignored.
            ("garbage, 198.51.100.1", "198.51.100.1"),
        ];
        for (xff, want) in cases {
            let h = headers(&[("x-forwarded-for", xff)]);
            assert_eq!(client_ip(peer, &h, &proxies), ip(want), "{xff:?}");
        }
        // Several header lines are one list, in order.
        let h = headers(&[
            ("x-forwarded-for", "1.1.1.1, 198.51.100.1"),
            ("x-forwarded-for", "10.0.0.9"),
        ]);
        assert_eq!(client_ip(peer, &h, &proxies), ip("198.51.100.1"));
        // No header: the peer.
        assert_eq!(client_ip(peer, &HeaderMap::new(), &proxies), peer);
        // An IPv4-mapped peer address is matched as IPv4, and reported so.
        let mapped = ip("::ffff:10.0.0.1");
        assert_eq!(
            client_ip(
                mapped,
                &headers(&[("x-forwarded-for", "198.51.100.1")]),
                &proxies
            ),
            ip("198.51.100.1")
        );
        assert_eq!(client_ip(mapped, &HeaderMap::new(), &proxies), peer);
    }

    #[test]
    fn forwarded_for_is_read_when_x_forwarded_for_is_absent() {
        let proxies = cidrs(&["127.0.0.0/8", "::1/128"]);
        let peer = ip("127.0.0.1");
        let cases = [
            ("for=198.51.100.1", "198.51.100.1"),
            ("For=198.51.100.1;proto=https;by=127.0.0.1", "198.51.100.1"),
            (
                "for=1.1.1.1, for=198.51.100.1, for=127.0.0.2",
                "198.51.100.1",
            ),
            (r#"for="[2001:db8:cafe::17]:4711""#, "2001:db8:cafe::17"),
            (r#"for="198.51.100.1:80";proto=http"#, "198.51.100.1"),
            (r#"for="_hidden", for=198.51.100.1"#, "198.51.100.1"),
            // A quoted comma does not split elements.
            (r#"for=198.51.100.1;ext="a,b""#, "198.51.100.1"),
            ("for=unknown", "127.0.0.1"),
            ("for=_hidden", "127.0.0.1"),
            ("proto=https", "127.0.0.1"),
            (r#"for="198.51.100.1"#, "127.0.0.1"),
            ("for", "127.0.0.1"),
        ];
        for (fwd, want) in cases {
            let h = headers(&[("forwarded", fwd)]);
            assert_eq!(client_ip(peer, &h, &proxies), ip(want), "{fwd:?}");
        }
        // Both present: X-Forwarded-For decides.
        let h = headers(&[
            ("x-forwarded-for", "198.51.100.1"),
            ("forwarded", "for=198.51.100.2"),
        ]);
        assert_eq!(client_ip(peer, &h, &proxies), ip("198.51.100.1"));
    }

    #[test]
    fn cidrs_round_trip_through_serde() {
        let list: Vec<Cidr> = serde_json::from_str(r#"["127.0.0.0/8", "fd00::/8"]"#).unwrap();
        assert_eq!(
            serde_json::to_string(&list).unwrap(),
            r#"["127.0.0.0/8","fd00::/8"]"#
        );
        let err = serde_json::from_str::<Vec<Cidr>>(r#"["10.0.0.0/40"]"#).unwrap_err();
        assert!(err.to_string().contains("10.0.0.0/40"), "{err}");
    }
}
