//! The client's address, for per-address limits. Behind a reverse proxy every request arrives from
//! the proxy, so when the peer is one of the configured trusted proxies the address is taken from
//! `X-Forwarded-For`: the nearest hop that is not itself a trusted proxy. Without trusted proxies
//! the header is ignored, since any client could write it.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use ipnet::IpNet;

use crate::state::AppState;

/// The address requests are counted under (`unknown` when not served over TCP).
#[derive(Debug, Clone)]
pub struct ClientIp(pub String);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(client_address(
            peer(&parts.extensions),
            &parts.headers,
            &state.settings.trusted_proxies,
        )))
    }
}

pub fn peer(extensions: &axum::http::Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
}

/// The client's address: the peer, or for a trusted proxy the nearest untrusted forwarded hop.
pub fn client_address(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpNet]) -> String {
    let Some(peer) = peer else {
        return "unknown".into();
    };
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer.to_string();
    }
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|hop| hop.trim().parse().ok())
        .collect();
    // Right to left: each trusted proxy appended the address it received from.
    hops.iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .or(hops.first())
        .unwrap_or(&peer)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            xff.parse().unwrap_or_else(|_| unreachable!()),
        );
        headers
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().filter_map(|n| n.parse().ok()).collect()
    }

    fn ip(s: &str) -> Option<IpAddr> {
        s.parse().ok()
    }

    #[test]
    fn without_trusted_proxies_the_header_is_ignored() {
        let got = client_address(ip("203.0.113.9"), &headers("198.51.100.1"), &[]);
        assert_eq!(got, "203.0.113.9");
    }

    #[test]
    fn behind_trusted_proxies_the_nearest_untrusted_hop_counts() {
        let trusted = nets(&["10.0.0.0/8"]);
        let got = client_address(
            ip("10.0.0.2"),
            &headers("198.51.100.7, 192.0.2.44, 10.0.0.5"),
            &trusted,
        );
        // 198.51.100.7 was written by the client itself; 192.0.2.44 is who reached our proxy.
        assert_eq!(got, "192.0.2.44");
    }

    #[test]
    fn an_untrusted_peer_cannot_choose_its_address() {
        let trusted = nets(&["10.0.0.0/8"]);
        let got = client_address(ip("192.0.2.1"), &headers("10.0.0.1"), &trusted);
        assert_eq!(got, "192.0.2.1");
    }

    #[test]
    fn a_trusted_peer_without_the_header_is_itself() {
        let trusted = nets(&["127.0.0.1/32"]);
        let got = client_address(ip("127.0.0.1"), &HeaderMap::new(), &trusted);
        assert_eq!(got, "127.0.0.1");
        assert_eq!(client_address(None, &HeaderMap::new(), &trusted), "unknown");
    }
}
