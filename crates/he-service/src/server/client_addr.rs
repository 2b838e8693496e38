//! Who the client is: the peer's address, or behind a trusted reverse
//! proxy the address it forwards in `X-Forwarded-For`; and how many
//! connections or requests each client address holds.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;

/// The client's address, put into every request's extensions by the
/// connection layer (`conn.rs`): the peer, or the address forwarded by a
/// trusted proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClientAddr(pub(crate) IpAddr);

/// The client behind `peer`. `X-Forwarded-For` is read only when `peer`
/// is a trusted proxy; then the client is the rightmost address in it
/// that is not itself a trusted proxy (each proxy appends the address it
/// got the request from, so everything left of the first untrusted hop
/// may be made up). Only the hops up to that one are read: an entry that
/// does not parse there stops the walk at the last trusted hop before it
/// (the proxy that wrote it is the client we know), and anything a client
/// put further left, parseable or not, changes nothing.
pub(crate) fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    // Every hop in order; a header line that is not text is one bad hop.
    let mut hops: Vec<Option<IpAddr>> = Vec::new();
    for v in headers.get_all("x-forwarded-for") {
        match v.to_str() {
            Ok(v) => hops.extend(v.split(',').map(|hop| parse_hop(hop.trim()))),
            Err(_) => hops.push(None),
        }
    }
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        let Some(ip) = hop else {
            break;
        };
        client = ip;
        if !trusted.contains(&ip) {
            break;
        }
    }
    client
}

/// An address as proxies write it: `1.2.3.4`, `2001:db8::1`, or with a
/// port (`1.2.3.4:5678`, `[2001:db8::1]:5678`).
fn parse_hop(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    s.parse::<std::net::SocketAddr>().ok().map(|a| a.ip())
}

/// Counts what each client address holds (connections, or requests
/// through a trusted proxy) against a limit.
#[derive(Debug, Clone)]
pub(crate) struct PerClient {
    limit: usize,
    held: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One unit held by a client address; released when dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    ip: IpAddr,
    held: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl PerClient {
    pub(crate) fn new(limit: usize) -> Self {
        PerClient {
            limit,
            held: Arc::default(),
        }
    }

    /// A slot for `ip`, or `None` if it holds the limit already.
    pub(crate) fn try_acquire(&self, ip: IpAddr) -> Option<Slot> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let n = held.entry(ip).or_insert(0);
        if *n >= self.limit {
            return None;
        }
        *n += 1;
        Some(Slot {
            ip,
            held: Arc::clone(&self.held),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = held.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn the_header_is_ignored_from_an_untrusted_peer() {
        let h = xff(&["203.0.113.9"]);
        assert_eq!(resolve(ip("198.51.100.1"), &h, &[]), ip("198.51.100.1"));
        assert_eq!(
            resolve(ip("198.51.100.1"), &h, &[ip("10.0.0.1")]),
            ip("198.51.100.1")
        );
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let proxies = [ip("10.0.0.1"), ip("10.0.0.2")];
        // A client-made-up first entry, the real client, then a second proxy.
        let h = xff(&["1.1.1.1, 203.0.113.9", "10.0.0.2"]);
        assert_eq!(resolve(ip("10.0.0.1"), &h, &proxies), ip("203.0.113.9"));
        // Ports and IPv6 are understood.
        let h = xff(&["[2001:db8::7]:4711, 10.0.0.2:80"]);
        assert_eq!(resolve(ip("10.0.0.1"), &h, &proxies), ip("2001:db8::7"));
        // No header, or garbage: the proxy itself.
        assert_eq!(
            resolve(ip("10.0.0.1"), &HeaderMap::new(), &proxies),
            ip("10.0.0.1")
        );
        let h = xff(&["203.0.113.9, not-an-address"]);
        assert_eq!(resolve(ip("10.0.0.1"), &h, &proxies), ip("10.0.0.1"));
        // Garbage behind a trusted hop: that hop is the client we know.
        let h = xff(&["203.0.113.9, not-an-address, 10.0.0.2"]);
        assert_eq!(resolve(ip("10.0.0.1"), &h, &proxies), ip("10.0.0.2"));
        // Garbage a client wrote left of its own address changes nothing:
        // it is not a way to be counted as the proxy.
        let h = xff(&["not-an-address, 203.0.113.9", "10.0.0.2"]);
        assert_eq!(resolve(ip("10.0.0.1"), &h, &proxies), ip("203.0.113.9"));
    }

    #[test]
    fn slots_are_counted_per_address_and_released() {
        let p = PerClient::new(2);
        let a = p.try_acquire(ip("127.0.0.2")).unwrap();
        let _b = p.try_acquire(ip("127.0.0.2")).unwrap();
        assert!(p.try_acquire(ip("127.0.0.2")).is_none());
        assert!(p.try_acquire(ip("127.0.0.3")).is_some());
        drop(a);
        assert!(p.try_acquire(ip("127.0.0.2")).is_some());
    }
}
