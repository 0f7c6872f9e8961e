//! IP networks written as `ADDRESS` or `ADDRESS/PREFIX`, and lists of them:
//! parsed once here for every list the server reads (the trusted proxies of
//! `auth::client_addr`, a key's allowed addresses in `limits`).
//!
//! An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`) is its IPv4 address, as
//! a network (`::ffff:10.0.0.0/104` is `10.0.0.0/8`) and as an address
//! matched against one. Otherwise IPv4 and IPv6 never match each other:
//! `::/0` is every IPv6 address, not every address.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An IP network: an address and a prefix length. A bare address is a
/// network of one (`/32`, `/128`). Host bits are cleared, as nginx does
/// (`10.1.2.3/8` is `10.0.0.0/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNetwork {
    addr: IpAddr,
    prefix: u8,
}

impl IpNetwork {
    /// `None` when `prefix` is longer than the address.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Self> {
        match addr {
            IpAddr::V4(v4) if prefix <= 32 => Some(Self {
                addr: IpAddr::V4(Ipv4Addr::from_bits(v4.to_bits() & mask_v4(prefix))),
                prefix,
            }),
            IpAddr::V6(v6) if prefix <= 128 => {
                if let Some(v4) = v6.to_ipv4_mapped()
                    && prefix >= 96
                {
                    return Self::new(IpAddr::V4(v4), prefix - 96);
                }
                Some(Self {
                    addr: IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & mask_v6(prefix))),
                    prefix,
                })
            }
            _ => None,
        }
    }

    /// The prefix length: 0 is a whole address family.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `addr` (IPv4-mapped or not) is in this network.
    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self.addr, addr.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(a)) => a.to_bits() & mask_v4(self.prefix) == net.to_bits(),
            (IpAddr::V6(net), IpAddr::V6(a)) => a.to_bits() & mask_v6(self.prefix) == net.to_bits(),
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

impl fmt::Display for IpNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Why an entry of a list of networks was refused; names the entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{entry}' is not an IP address or CIDR network: {reason}")]
pub struct InvalidNetwork {
    pub entry: String,
    pub reason: &'static str,
}

impl FromStr for IpNetwork {
    type Err = InvalidNetwork;

    /// `ADDRESS` or `ADDRESS/PREFIX`; surrounding whitespace is ignored.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let entry = text.trim();
        let invalid = |reason| InvalidNetwork {
            entry: entry.to_owned(),
            reason,
        };
        let (addr, prefix) = match entry.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (entry, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| invalid("expected an address such as 10.0.0.1 or ::1, without a port"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(digits) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
                digits.parse().unwrap_or(u8::MAX)
            }
            Some(_) => return Err(invalid("the prefix length after '/' must be a number")),
        };
        Self::new(addr, prefix).ok_or_else(|| {
            invalid(if max == 32 {
                "an IPv4 prefix length is at most 32"
            } else {
                "an IPv6 prefix length is at most 128"
            })
        })
    }
}

/// Networks, in the order given: `"10.0.0.0/8,::1"`, comma-separated, as
/// the flags and the `api_keys.allowed_ips` column write them. Empty entries
/// are skipped; the first invalid one is the error. Printed normalised
/// (`10.1.0.0/8` as `10.0.0.0/8`, a bare address with its `/32` or `/128`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Networks(Vec<IpNetwork>);

impl Networks {
    pub fn parse<I>(entries: I) -> Result<Self, InvalidNetwork>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut networks = Vec::new();
        for entry in entries {
            let entry = entry.as_ref();
            if !entry.trim().is_empty() {
                networks.push(entry.parse()?);
            }
        }
        Ok(Self(networks))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, IpNetwork> {
        self.0.iter()
    }

    /// Whether `addr` is in one of the networks.
    pub fn contains(&self, addr: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(addr))
    }
}

impl FromIterator<IpNetwork> for Networks {
    fn from_iter<I: IntoIterator<Item = IpNetwork>>(networks: I) -> Self {
        Self(networks.into_iter().collect())
    }
}

impl FromStr for Networks {
    type Err = InvalidNetwork;

    fn from_str(list: &str) -> Result<Self, Self::Err> {
        Self::parse(list.split(','))
    }
}

impl fmt::Display for Networks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, net) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{net}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn net(text: &str) -> IpNetwork {
        text.parse().unwrap()
    }

    #[test]
    fn ipv4_networks_and_their_edges() {
        let eight = net("10.0.0.0/8");
        assert!(eight.contains(ip("10.0.0.0")));
        assert!(eight.contains(ip("10.255.255.255")));
        assert!(!eight.contains(ip("11.0.0.0")));
        assert!(!eight.contains(ip("9.255.255.255")));
        let one = net("192.0.2.7/32");
        assert!(one.contains(ip("192.0.2.7")));
        assert!(!one.contains(ip("192.0.2.6")));
        assert!(!one.contains(ip("192.0.2.8")));
        assert_eq!(net("192.0.2.7"), one, "a bare address is a /32");
        let all = net("0.0.0.0/0");
        assert!(all.contains(ip("0.0.0.0")));
        assert!(all.contains(ip("255.255.255.255")));
        let odd = net("172.16.0.0/12");
        assert!(odd.contains(ip("172.31.255.255")));
        assert!(!odd.contains(ip("172.32.0.0")));
        assert_eq!(net("10.1.2.3/8"), eight, "host bits are cleared");
        assert_eq!(net("10.1.2.3/8").to_string(), "10.0.0.0/8");
    }

    #[test]
    fn ipv6_networks_and_their_edges() {
        let doc = net("2001:db8::/32");
        assert!(doc.contains(ip("2001:db8::")));
        assert!(doc.contains(ip("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff")));
        assert!(!doc.contains(ip("2001:db9::")));
        assert!(!doc.contains(ip("2001:db7:ffff::")));
        let one = net("::1/128");
        assert!(one.contains(ip("::1")));
        assert!(!one.contains(ip("::2")));
        assert!(!one.contains(ip("::")));
        assert_eq!(net("::1"), one, "a bare address is a /128");
        let all = net("::/0");
        assert!(all.contains(ip("::")));
        assert!(all.contains(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
        let odd = net("fd00::/7");
        assert!(odd.contains(ip("fc00::1")));
        assert!(odd.contains(ip("fdff::1")));
        assert!(!odd.contains(ip("fe00::")));
    }

    #[test]
    fn ipv4_and_ipv6_never_match_each_other() {
        assert!(!net("0.0.0.0/0").contains(ip("::1")));
        assert!(!net("0.0.0.0/0").contains(ip("2001:db8::1")));
        assert!(!net("::/0").contains(ip("10.0.0.1")));
        assert!(!net("::/0").contains(ip("127.0.0.1")));
        // ::1 is not 0.0.0.1 (IPv4-compatible addresses are not mapped).
        assert!(!net("0.0.0.1/32").contains(ip("::1")));
        assert!(!net("::1").contains(ip("0.0.0.1")));
    }

    #[test]
    fn ipv4_mapped_networks_are_ipv4() {
        assert!(net("127.0.0.1").contains(ip("::ffff:127.0.0.1")));
        assert!(net("10.0.0.0/8").contains(ip("::ffff:10.9.8.7")));
        assert!(!net("10.0.0.0/8").contains(ip("::ffff:11.0.0.1")));
        assert_eq!(net("::ffff:10.0.0.0/104"), net("10.0.0.0/8"));
        assert_eq!(net("::ffff:127.0.0.1"), net("127.0.0.1/32"));
        assert!(net("::ffff:0:0/96").contains(ip("192.0.2.1")));
        assert!(!net("::/0").contains(ip("::ffff:192.0.2.1")));
    }

    #[test]
    fn invalid_entries_are_refused_by_name() {
        for (entry, reason) in [
            ("10.0.0.0/33", "at most 32"),
            ("::/129", "at most 128"),
            ("10.0.0.0/", "must be a number"),
            ("10.0.0.0/+8", "must be a number"),
            ("10.0.0.0/8/8", "must be a number"),
            ("10.0.0.0/300", "at most 32"),
            ("10.0.0", "expected an address"),
            ("localhost", "expected an address"),
            ("127.0.0.1:8080", "expected an address"),
            ("[::1]", "expected an address"),
            ("010.0.0.1", "expected an address"),
        ] {
            let err = entry.parse::<IpNetwork>().unwrap_err();
            assert_eq!(err.entry, entry);
            assert!(err.reason.contains(reason), "{entry}: {err}");
            assert!(err.to_string().contains(entry), "{err}");
        }
        let err = "127.0.0.1, 10.0.0.0/8 ,bogus,::1"
            .parse::<Networks>()
            .unwrap_err();
        assert_eq!(err.entry, "bogus");
    }

    #[test]
    fn lists_skip_blanks_and_print_normalised() {
        let list: Networks = " 127.0.0.1, 10.1.0.0/8,,::1 ,".parse().unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!(list.to_string(), "127.0.0.1/32,10.0.0.0/8,::1/128");
        assert_eq!(list.to_string().parse::<Networks>().unwrap(), list);
        assert!("".parse::<Networks>().unwrap().is_empty());
        assert!(list.contains(ip("10.200.0.1")));
        assert!(!list.contains(ip("11.0.0.1")));
    }
}
