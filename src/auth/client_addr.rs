//! The client address a request is counted against, for the per-client
//! budget of failed key lookups ([`super::limiter`]).
//!
//! With no trusted proxies (the default) it is the TCP peer and
//! `X-Forwarded-For` is never read. Behind a reverse proxy every request
//! comes from the proxy, so one flooding client would spend everyone's
//! budget; listing the proxy in [`TrustedProxies`] makes the address come
//! from `X-Forwarded-For` instead:
//!
//! - The header counts only when the TCP peer is trusted: a client that
//!   reaches the server directly cannot pick its own budget by sending it.
//! - Several header lines are one list, joined in order.
//! - The list is walked from the right (the entries the proxies appended),
//!   passing over trusted addresses; the first untrusted one is the client.
//!   Entries left of it were written by the client and are never read.
//! - When the walk reaches the start of the list, or an entry that is not an
//!   address, before an untrusted one, the client is the last address it
//!   passed: the peer when it passed none (no header, or garbage as the last
//!   entry), the leftmost entry when all are trusted (a request from an
//!   internal host). Garbage never gives anyone a budget of their own.
//! - An entry is an IPv4 or IPv6 address, optionally with a port
//!   (`203.0.113.7:5678`, `[2001:db8::7]:443`) or in brackets
//!   (`[2001:db8::7]`); whitespace around it is ignored and empty entries are
//!   skipped. Anything else (`unknown`, an obfuscated name) is malformed.
//! - An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`) is its IPv4 address,
//!   in the header, as the peer (a dual-stack listener sees IPv4 peers that
//!   way) and in the list (`::ffff:10.0.0.0/104` is `10.0.0.0/8`). Otherwise
//!   IPv4 and IPv6 never match each other: `::/0` is every IPv6 address, not
//!   every address.
//! - `Forwarded` (RFC 7239) is not read.

use crate::net::Networks;
pub use crate::net::{InvalidNetwork, IpNetwork};
use axum::extract::ConnectInfo;
use http::{Extensions, HeaderMap, HeaderName};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The reverse proxies whose `X-Forwarded-For` is believed. Empty (the
/// default): the client is always the TCP peer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    networks: Networks,
}

impl TrustedProxies {
    /// Parses entries (addresses or CIDR networks). Empty entries are
    /// skipped; the first invalid one is the error.
    pub fn parse<I>(entries: I) -> Result<Self, InvalidNetwork>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        Ok(Self {
            networks: Networks::parse(entries)?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
    }

    /// Whether a network is `/0`: every address of its family is trusted,
    /// so any client can choose the address it is counted against.
    pub fn trusts_a_whole_family(&self) -> bool {
        self.networks.iter().any(|net| net.prefix() == 0)
    }

    /// Whether `addr` is in one of the networks.
    pub fn is_trusted(&self, addr: IpAddr) -> bool {
        self.networks.contains(addr)
    }

    /// The address of the client behind `peer` (see the module comment).
    /// With no trusted proxies, `peer` without reading `headers`.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        // A v4 client on a dual-stack socket shows as `::ffff:a.b.c.d`: one
        // client, one budget, whichever way it came in.
        let peer = peer.to_canonical();
        if self.networks.is_empty() || !self.is_trusted(peer) {
            return peer;
        }
        let mut client = peer;
        for line in headers.get_all(X_FORWARDED_FOR).iter().rev() {
            // Split the raw bytes: proxies append the real client to the
            // line the client sent, so a stray non-ASCII byte on the left
            // must spoil only its own entry, not the ones the proxies wrote.
            for entry in line.as_bytes().rsplit(|&b| b == b',') {
                let Ok(entry) = std::str::from_utf8(entry) else {
                    return client;
                };
                let entry = entry.trim();
                if entry.is_empty() {
                    continue;
                }
                let Some(addr) = parse_forwarded_entry(entry) else {
                    return client;
                };
                if !self.is_trusted(addr) {
                    return addr;
                }
                client = addr;
            }
        }
        client
    }
}

/// `"10.0.0.0/8,::1"`: comma-separated entries, as in the flag.
impl FromStr for TrustedProxies {
    type Err = InvalidNetwork;

    fn from_str(list: &str) -> Result<Self, Self::Err> {
        Self::parse(list.split(','))
    }
}

impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.networks.fmt(f)
    }
}

/// One `X-Forwarded-For` entry: an address, `v4:port`, `[v6]` or
/// `[v6]:port`; IPv4-mapped addresses come back as IPv4.
fn parse_forwarded_entry(entry: &str) -> Option<IpAddr> {
    let addr = if let Ok(addr) = entry.parse::<IpAddr>() {
        addr
    } else if let Ok(with_port) = entry.parse::<SocketAddr>() {
        with_port.ip()
    } else {
        let inner = entry.strip_prefix('[')?.strip_suffix(']')?;
        IpAddr::V6(inner.parse().ok()?)
    };
    Some(addr.to_canonical())
}

/// The client address of an authenticated request, as worked out with the
/// trusted proxies: the auth layer puts it in the request's extensions for
/// the access log. `None` when no peer was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub Option<IpAddr>);

/// The client address of a request, from the peer the server recorded
/// (`ConnectInfo`) and `headers`; `None` when no peer was recorded.
pub(crate) fn request_client(
    proxies: &TrustedProxies,
    extensions: &Extensions,
    headers: &HeaderMap,
) -> Option<IpAddr> {
    let peer = extensions.get::<ConnectInfo<SocketAddr>>()?.0.ip();
    Some(proxies.client_ip(peer, headers))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn proxies(list: &str) -> TrustedProxies {
        list.parse().unwrap()
    }

    /// Headers with one `X-Forwarded-For` line per element.
    fn xff(lines: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append(X_FORWARDED_FOR, HeaderValue::from_str(line).unwrap());
        }
        headers
    }

    #[test]
    fn ipv4_mapped_ipv6_is_its_ipv4_address() {
        // (Networks themselves: `crate::net`'s tests.)
        // The client taken from the header is the IPv4 address too, so it
        // shares a budget with the same client seen over IPv4.
        let trusted = proxies("::ffff:127.0.0.1");
        assert_eq!(
            trusted.client_ip(ip("127.0.0.1"), &xff(&["::ffff:203.0.113.1"])),
            ip("203.0.113.1")
        );
        assert_eq!(
            trusted.client_ip(ip("::ffff:127.0.0.1"), &xff(&["203.0.113.1"])),
            ip("203.0.113.1")
        );
    }

    #[test]
    fn invalid_entries_are_refused_by_name() {
        let err = "127.0.0.1, 10.0.0.0/8 ,bogus,::1"
            .parse::<TrustedProxies>()
            .unwrap_err();
        assert_eq!(err.entry, "bogus");
    }

    #[test]
    fn lists_skip_blanks_and_print_normalised() {
        let list = proxies(" 127.0.0.1, 10.1.0.0/8,,::1 ,");
        assert_eq!(list.networks.len(), 3);
        assert_eq!(list.to_string(), "127.0.0.1/32,10.0.0.0/8,::1/128");
        assert!(proxies("").is_empty());
        assert_eq!(
            TrustedProxies::parse(["192.0.2.0/24", "2001:db8::/32"]).unwrap(),
            proxies("192.0.2.0/24,2001:db8::/32")
        );
    }

    #[test]
    fn a_slash_zero_trusts_a_whole_family() {
        for list in ["0.0.0.0/0", "::/0", "127.0.0.1,::/0", "::ffff:0.0.0.0/96"] {
            assert!(proxies(list).trusts_a_whole_family(), "{list}");
        }
        for list in [
            "",
            "127.0.0.1",
            "0.0.0.0/1,128.0.0.0/1",
            "::/1",
            "::ffff:0.0.0.0/97",
        ] {
            assert!(!proxies(list).trusts_a_whole_family(), "{list}");
        }
    }

    #[test]
    fn no_trusted_proxies_means_the_peer_whatever_the_header() {
        let none = TrustedProxies::default();
        for peer in ["127.0.0.1", "10.0.0.1", "::1"] {
            assert_eq!(
                none.client_ip(ip(peer), &xff(&["203.0.113.1"])),
                ip(peer),
                "{peer}"
            );
        }
        // A v4 peer seen through a dual-stack socket is its v4 address, so
        // it has the same budget however it connects.
        assert_eq!(
            none.client_ip(ip("::ffff:127.0.0.1"), &xff(&["203.0.113.1"])),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn a_stray_byte_spoils_only_its_own_entry() {
        // nginx appends the client to the line the client sent: the bytes
        // on the left are the client's, the address on the right is not.
        let trusted = proxies("127.0.0.1");
        let mut headers = HeaderMap::new();
        headers.append(
            X_FORWARDED_FOR,
            HeaderValue::from_bytes(b"\xc3\xa9, 203.0.113.1").unwrap(),
        );
        assert_eq!(
            trusted.client_ip(ip("127.0.0.1"), &headers),
            ip("203.0.113.1")
        );
        let mut headers = HeaderMap::new();
        headers.append(
            X_FORWARDED_FOR,
            HeaderValue::from_bytes(b"\xff, 203.0.113.1, 127.0.0.1").unwrap(),
        );
        assert_eq!(
            trusted.client_ip(ip("127.0.0.1"), &headers),
            ip("203.0.113.1")
        );
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_the_header() {
        let trusted = proxies("10.0.0.0/8");
        let headers = xff(&["203.0.113.1, 10.0.0.2"]);
        assert_eq!(
            trusted.client_ip(ip("198.51.100.9"), &headers),
            ip("198.51.100.9")
        );
        assert_eq!(trusted.client_ip(ip("::1"), &headers), ip("::1"));
    }

    #[test]
    fn the_rightmost_untrusted_address_is_the_client() {
        let trusted = proxies("127.0.0.1,10.0.0.0/8");
        let peer = ip("127.0.0.1");
        let client = |lines: &[&str]| trusted.client_ip(peer, &xff(lines));
        assert_eq!(client(&["203.0.113.1"]), ip("203.0.113.1"));
        // Through two proxies of ours.
        assert_eq!(client(&["203.0.113.1, 10.0.0.2"]), ip("203.0.113.1"));
        assert_eq!(
            client(&["203.0.113.1,10.0.0.3,10.0.0.2,127.0.0.1"]),
            ip("203.0.113.1")
        );
        // An untrusted hop between ours: it is the client (it could have
        // written anything to its left).
        assert_eq!(
            client(&["203.0.113.1, 198.51.100.5, 10.0.0.2"]),
            ip("198.51.100.5")
        );
        assert_eq!(
            client(&["2001:db8::1, 10.0.0.2"]),
            ip("2001:db8::1"),
            "an IPv6 client behind IPv4 proxies"
        );
    }

    #[test]
    fn spoofed_leftmost_entries_are_never_read() {
        let trusted = proxies("127.0.0.1");
        let peer = ip("127.0.0.1");
        // The client sent "X-Forwarded-For: <x>" itself; the proxy appended
        // the real address.
        for forged in [
            "198.51.100.1",
            "127.0.0.1",
            "10.0.0.1, 8.8.8.8",
            "garbage",
            "unknown, ::1",
            "[broken",
        ] {
            let line = format!("{forged}, 203.0.113.1");
            assert_eq!(
                trusted.client_ip(peer, &xff(&[line.as_str()])),
                ip("203.0.113.1"),
                "{line}"
            );
            // The same as separate lines: the client's line comes first.
            assert_eq!(
                trusted.client_ip(peer, &xff(&[forged, "203.0.113.1"])),
                ip("203.0.113.1"),
                "{forged} / 203.0.113.1"
            );
        }
    }

    #[test]
    fn missing_malformed_or_all_trusted_lists_fall_back_to_the_last_address_passed() {
        let trusted = proxies("127.0.0.1,10.0.0.0/8");
        let peer = ip("127.0.0.1");
        let client = |lines: &[&str]| trusted.client_ip(peer, &xff(lines));
        assert_eq!(client(&[]), peer, "no header");
        assert_eq!(client(&[""]), peer, "an empty header");
        assert_eq!(client(&[" , ,"]), peer, "only empty entries");
        assert_eq!(client(&["unknown"]), peer);
        assert_eq!(client(&["203.0.113.1, unknown"]), peer);
        assert_eq!(client(&["203.0.113.1, 10.0.0.2, _hidden"]), peer);
        assert_eq!(client(&["203.0.113.1 10.0.0.2"]), peer, "no comma");
        // Garbage after one of our proxies: that proxy is the client.
        assert_eq!(client(&["unknown, 10.0.0.2"]), ip("10.0.0.2"));
        assert_eq!(client(&["203.0.113.1; 10.0.0.2"]), peer);
        // Every entry trusted: the request came from inside; the leftmost
        // (furthest) hop is the client.
        assert_eq!(client(&["10.0.0.5"]), ip("10.0.0.5"));
        assert_eq!(client(&["10.0.0.5, 10.0.0.2, 127.0.0.1"]), ip("10.0.0.5"));
        // A value that is not visible ASCII stops the walk like garbage.
        let mut headers = xff(&["203.0.113.1"]);
        headers.append(
            X_FORWARDED_FOR,
            HeaderValue::from_bytes(b"10.0.0.2\xff").unwrap(),
        );
        assert_eq!(trusted.client_ip(peer, &headers), peer);
    }

    #[test]
    fn ports_and_brackets_are_accepted_and_dropped() {
        let trusted = proxies("127.0.0.1,10.0.0.0/8");
        let peer = ip("127.0.0.1");
        let client = |line: &str| trusted.client_ip(peer, &xff(&[line]));
        assert_eq!(client("203.0.113.1:5678"), ip("203.0.113.1"));
        assert_eq!(client("[2001:db8::1]:443"), ip("2001:db8::1"));
        assert_eq!(client("[2001:db8::1]"), ip("2001:db8::1"));
        assert_eq!(client("2001:db8::1"), ip("2001:db8::1"));
        assert_eq!(client("[::ffff:203.0.113.1]:80"), ip("203.0.113.1"));
        assert_eq!(client("203.0.113.1, 10.0.0.2:443"), ip("203.0.113.1"));
        for malformed in [
            "203.0.113.1:",
            "203.0.113.1:99999",
            ":80",
            "[2001:db8::1]:",
            "[203.0.113.1]",
            "2001:db8::1:443:x",
            "[2001:db8::1",
            "203.0.113.01",
        ] {
            assert_eq!(client(malformed), peer, "{malformed}");
        }
    }

    #[test]
    fn several_header_lines_are_one_list_in_order() {
        let trusted = proxies("127.0.0.1,10.0.0.0/8");
        let peer = ip("127.0.0.1");
        let client = |lines: &[&str]| trusted.client_ip(peer, &xff(lines));
        assert_eq!(client(&["203.0.113.1", "10.0.0.2"]), ip("203.0.113.1"));
        assert_eq!(
            client(&["198.51.100.1", "203.0.113.1, 10.0.0.2", "10.0.0.3"]),
            ip("203.0.113.1")
        );
        // The last line is the nearest hop.
        assert_eq!(client(&["203.0.113.1", "198.51.100.1"]), ip("198.51.100.1"));
        assert_eq!(client(&["10.0.0.5", "", "10.0.0.2"]), ip("10.0.0.5"));
    }

    #[test]
    fn request_client_needs_a_recorded_peer() {
        let trusted = proxies("127.0.0.1");
        let headers = xff(&["203.0.113.1"]);
        let mut extensions = Extensions::new();
        assert_eq!(request_client(&trusted, &extensions, &headers), None);
        extensions.insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
        assert_eq!(
            request_client(&trusted, &extensions, &headers),
            Some(ip("203.0.113.1"))
        );
    }
}
