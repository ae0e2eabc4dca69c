//! The client's address (SPEC 3), for the per-IP login limit and a
//! session's `ip`: the TCP peer, unless the peer is one of
//! `server.trusted_proxies`; then the rightmost `X-Forwarded-For` address
//! that is not itself a trusted proxy. Each proxy appends the address it
//! was reached from, so entries left of the first untrusted one were written
//! by the client and prove nothing. Without trusted proxies the header is
//! ignored.

use std::net::{IpAddr, SocketAddr};

use actix_web::HttpRequest;
use ipnet::IpNet;

const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// The reverse proxies whose `X-Forwarded-For` is believed, parsed once at
/// start-up.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses `server.trusted_proxies`: CIDR blocks, or bare addresses (one
    /// host). An entry that is neither is logged as an error and ignored:
    /// start-up refuses only what SPEC 2 names.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> TrustedProxies {
        let mut nets = Vec::new();
        for entry in entries.iter().map(|e| e.as_ref().trim()) {
            if entry.is_empty() {
                continue;
            }
            match parse_net(entry) {
                Some(net) => nets.push(net),
                None => log::error!(
                    "server.trusted_proxies: {entry:?} is neither an address nor a CIDR block; ignored"
                ),
            }
        }
        TrustedProxies(nets)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }
}

fn parse_net(entry: &str) -> Option<IpNet> {
    let net = match entry.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => IpNet::from(entry.parse::<IpAddr>().ok()?),
    };
    // An IPv4-mapped block means the IPv4 one: addresses are compared in
    // their canonical form.
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
                .ok()
                .map(IpNet::V4),
            None => Some(net),
        },
        _ => Some(net),
    }
}

/// One `X-Forwarded-For` entry: an address, or one with a port
/// (`192.0.2.1:443`, `[2001:db8::1]:443`, `[2001:db8::1]`); anything else
/// (`unknown`, an obfuscated identifier) is not an address.
fn parse_forwarded(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            entry
                .strip_prefix('[')?
                .strip_suffix(']')?
                .parse::<IpAddr>()
                .ok()
        })
        .map(|ip| ip.to_canonical())
}

/// The client of a connection from `peer` that carried these
/// `X-Forwarded-For` header values (in order; each a comma-separated list).
///
/// From the right, trusted proxies are skipped; the first untrusted address
/// is the client. An entry that is not an address ends the walk at the last
/// trusted hop seen (nothing left of it can be believed); when every entry
/// is trusted, the leftmost is the client.
pub fn client_ip<'a>(
    peer: IpAddr,
    forwarded_for: impl IntoIterator<Item = &'a str>,
    trusted: &TrustedProxies,
) -> IpAddr {
    let peer = peer.to_canonical();
    if !trusted.contains(peer) {
        return peer;
    }
    let entries: Vec<&str> = forwarded_for
        .into_iter()
        .flat_map(|value| value.split(','))
        .map(str::trim)
        // HTTP lists may carry empty elements.
        .filter(|entry| !entry.is_empty())
        .collect();
    let mut client = peer;
    for entry in entries.into_iter().rev() {
        let Some(hop) = parse_forwarded(entry) else {
            return client;
        };
        client = hop;
        if !trusted.contains(hop) {
            return hop;
        }
    }
    client
}

/// [`client_ip`] of a request; `None` only when the peer is unknown (a
/// request built in a unit test).
pub fn of_request(req: &HttpRequest, trusted: &TrustedProxies) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    if trusted.is_empty() {
        return Some(peer.to_canonical());
    }
    let values = req
        .headers()
        .get_all(X_FORWARDED_FOR)
        // A value that is not text is not an address: it stops the walk.
        .map(|value| value.to_str().unwrap_or("\u{fffd}"));
    Some(client_ip(peer, values, trusted))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn trusted(entries: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(entries)
    }

    const PROXY: &str = "127.0.0.1";

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client() {
        let none = TrustedProxies::default();
        assert_eq!(client_ip(ip(PROXY), ["1.2.3.4"], &none), ip(PROXY));
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let t = trusted(&["10.0.0.0/8"]);
        assert_eq!(client_ip(ip("8.8.8.8"), ["1.2.3.4"], &t), ip("8.8.8.8"));
    }

    #[test]
    fn behind_a_trusted_proxy_the_rightmost_untrusted_address_is_the_client() {
        let t = trusted(&["127.0.0.1/32", "10.0.0.0/8"]);
        assert_eq!(
            client_ip(ip(PROXY), ["6.6.6.6, 1.2.3.4, 10.0.0.1"], &t),
            ip("1.2.3.4")
        );
        // The same list split over several headers, in order.
        assert_eq!(
            client_ip(ip(PROXY), ["6.6.6.6", "1.2.3.4,10.0.0.1"], &t),
            ip("1.2.3.4")
        );
    }

    #[test]
    fn a_trusted_peer_without_the_header_is_the_client() {
        let t = trusted(&[PROXY]);
        assert_eq!(client_ip(ip(PROXY), [], &t), ip(PROXY));
        assert_eq!(client_ip(ip(PROXY), [" , "], &t), ip(PROXY));
    }

    #[test]
    fn when_every_hop_is_trusted_the_leftmost_is_the_client() {
        let t = trusted(&["127.0.0.1", "10.0.0.0/8"]);
        assert_eq!(
            client_ip(ip(PROXY), ["10.1.1.1, 10.2.2.2"], &t),
            ip("10.1.1.1")
        );
    }

    #[test]
    fn an_entry_that_is_not_an_address_ends_the_walk_at_the_last_trusted_hop() {
        let t = trusted(&["127.0.0.1", "10.0.0.0/8"]);
        assert_eq!(
            client_ip(ip(PROXY), ["1.2.3.4, unknown, 10.0.0.7"], &t),
            ip("10.0.0.7")
        );
        assert_eq!(client_ip(ip(PROXY), ["1.2.3.4, unknown"], &t), ip(PROXY));
    }

    #[test]
    fn entries_with_ports_and_brackets_are_addresses() {
        let t = trusted(&[PROXY]);
        assert_eq!(client_ip(ip(PROXY), ["1.2.3.4:5678"], &t), ip("1.2.3.4"));
        assert_eq!(
            client_ip(ip(PROXY), ["[2001:db8::1]:443"], &t),
            ip("2001:db8::1")
        );
        assert_eq!(
            client_ip(ip(PROXY), ["[2001:db8::1]"], &t),
            ip("2001:db8::1")
        );
    }

    #[test]
    fn ipv4_mapped_addresses_are_their_ipv4() {
        let t = trusted(&["127.0.0.1/32"]);
        assert_eq!(
            client_ip(ip("::ffff:127.0.0.1"), ["::ffff:1.2.3.4"], &t),
            ip("1.2.3.4")
        );
        let mapped = trusted(&["::ffff:10.0.0.0/104"]);
        assert!(mapped.contains(ip("10.9.9.9")));
    }

    #[test]
    fn bare_addresses_are_one_host_and_bad_entries_are_ignored() {
        let t = trusted(&["192.0.2.1", "::1", "not-an-address", "10.0.0.0/33", " "]);
        assert_eq!(t.0.len(), 2);
        assert!(t.contains(ip("192.0.2.1")));
        assert!(!t.contains(ip("192.0.2.2")));
        assert!(t.contains(ip("::1")));
        assert!(!t.contains(ip("::2")));
    }
}
