//! Which headers a proxy forwards, and the ones it adds (RFC 9110 section 7.6, RFC 7239).
//!
//! - Hop-by-hop headers describe one connection, not the message, and are never forwarded, in
//!   either direction: `Connection` and every header it names, `Keep-Alive`, `Proxy-Connection`,
//!   `TE`, `Transfer-Encoding`, `Upgrade`, `Trailer`, and the proxy credentials
//!   `Proxy-Authorization` / `Proxy-Authenticate` (meant for this proxy, not the origin).
//! - The client's address is appended to `X-Forwarded-For` (the de-facto list, client first) and
//!   to `Forwarded` (`for=...;proto=...`, RFC 7239); `X-Forwarded-Proto` says the scheme the
//!   client used. The router takes the address from `CF-Connecting-IP`, which Cloudflare sets on
//!   every request and a client cannot forge; the lists a client sent are kept and extended, as
//!   proxies do: an origin that trusts only the router reads the last entry.

/// Hop-by-hop headers (lowercase), whatever `Connection` says.
pub const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "transfer-encoding",
    "upgrade",
    "trailer",
    "proxy-authorization",
    "proxy-authenticate",
];

/// The hop-by-hop headers of one message: the fixed list plus those its `Connection` names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HopByHop {
    named: Vec<String>,
}

impl HopByHop {
    /// From the message's `Connection` header values (comma-separated tokens, any case).
    pub fn from_connection<'a>(values: impl IntoIterator<Item = &'a str>) -> HopByHop {
        let named = values
            .into_iter()
            .flat_map(|v| v.split(','))
            .map(|t| t.trim().to_ascii_lowercase())
            .filter(|t| !t.is_empty())
            .collect();
        HopByHop { named }
    }

    /// Whether header `name` (any case) belongs to the connection and must not be forwarded.
    pub fn contains(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        HOP_BY_HOP.contains(&name.as_str()) || self.named.contains(&name)
    }
}

/// The forwarding headers of a request, as the router sends them on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Forwarding {
    pub x_forwarded_for: Option<String>,
    pub forwarded: Option<String>,
    pub x_forwarded_proto: String,
}

fn append(list: Option<&str>, entry: String) -> String {
    match list.map(str::trim).filter(|l| !l.is_empty()) {
        Some(list) => format!("{list}, {entry}"),
        None => entry,
    }
}

/// The forwarding headers for a request from `client_ip` (`None` when unknown) over `proto`
/// (`http` or `https`), extending the `X-Forwarded-For` and `Forwarded` the client sent.
pub fn forwarding(
    x_forwarded_for: Option<&str>,
    forwarded: Option<&str>,
    client_ip: Option<&str>,
    proto: &str,
) -> Forwarding {
    let ip = client_ip.map(str::trim).filter(|ip| !ip.is_empty());
    let node = match ip {
        // RFC 7239 section 6: an IPv6 address is bracketed and the value quoted.
        Some(ip) if ip.contains(':') => format!("for=\"[{ip}]\""),
        Some(ip) => format!("for={ip}"),
        None => "for=unknown".to_owned(),
    };
    Forwarding {
        x_forwarded_for: match ip {
            Some(ip) => Some(append(x_forwarded_for, ip.to_owned())),
            None => x_forwarded_for.map(str::to_owned),
        },
        forwarded: Some(append(forwarded, format!("{node};proto={proto}"))),
        x_forwarded_proto: proto.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_include_those_connection_names() {
        let hop = HopByHop::from_connection(["keep-alive, X-Secret-Hop", " close ,Foo"]);
        for name in ["Connection", "TE", "Proxy-Authorization", "x-secret-hop", "FOO", "close"] {
            assert!(hop.contains(name), "{name}");
        }
        for name in ["authorization", "content-type", "x-forwarded-for", "cookie"] {
            assert!(!hop.contains(name), "{name}");
        }
        assert!(!HopByHop::from_connection([""]).contains("x-secret-hop"));
    }

    #[test]
    fn the_client_address_is_appended() {
        let f = forwarding(None, None, Some("203.0.113.7"), "https");
        assert_eq!(f.x_forwarded_for.as_deref(), Some("203.0.113.7"));
        assert_eq!(f.forwarded.as_deref(), Some("for=203.0.113.7;proto=https"));
        assert_eq!(f.x_forwarded_proto, "https");

        let f = forwarding(Some("10.0.0.1"), Some("for=10.0.0.1"), Some("2001:db8::1"), "http");
        assert_eq!(f.x_forwarded_for.as_deref(), Some("10.0.0.1, 2001:db8::1"));
        assert_eq!(f.forwarded.as_deref(), Some("for=10.0.0.1, for=\"[2001:db8::1]\";proto=http"));

        let f = forwarding(Some("10.0.0.1"), None, None, "http");
        assert_eq!(f.x_forwarded_for.as_deref(), Some("10.0.0.1"), "unknown client: kept as is");
        assert_eq!(f.forwarded.as_deref(), Some("for=unknown;proto=http"));
    }
}
