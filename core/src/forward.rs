//! Which headers a proxy forwards, and the ones it adds (RFC 9110 section 7.6, RFC 7239).
//!
//! - Hop-by-hop headers describe one connection, not the message, and are never forwarded, in
//!   either direction: `Connection` and every header it names, `Keep-Alive`, `Proxy-Connection`,
//!   `TE`, `Transfer-Encoding`, `Upgrade`, `Trailer`, and the proxy credentials
//!   `Proxy-Authorization` / `Proxy-Authenticate` (meant for this proxy, not the origin).
//! - The client's address is appended to `X-Forwarded-For` (the de-facto list, client first) and
//!   to `Forwarded` (`for=...;proto=...`, RFC 7239); `X-Forwarded-Proto` says the scheme the
//!   client used. The router takes the address from `CF-Connecting-IP`, which Cloudflare sets on
//!   every request and a client cannot forge.
//! - What happens to the lists a client sent is the deployment's choice ([`ForwardTrust`],
//!   `FORWARDED_TRUST`): `append` (the default) keeps and extends them, as proxies in a chain
//!   do, so an origin that trusts only the router reads the last entry; `replace` drops them and
//!   starts fresh lists with the client's address, for origins that read the first entry and must
//!   not be lied to by clients (the router is then the first trusted hop, like Envoy's
//!   `use_remote_address` with no trusted hops).

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

/// Whether the forwarding lists a client sent are kept (`append`) or dropped (`replace`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ForwardTrust {
    #[default]
    Append,
    Replace,
}

/// A `FORWARDED_TRUST` value that is neither `append` nor `replace`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected append or replace, got {0:?}")]
pub struct UnknownForwardTrust(pub String);

impl std::str::FromStr for ForwardTrust {
    type Err = UnknownForwardTrust;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "append" => Ok(ForwardTrust::Append),
            "replace" => Ok(ForwardTrust::Replace),
            _ => Err(UnknownForwardTrust(s.to_owned())),
        }
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
/// (`http` or `https`), extending the `X-Forwarded-For` and `Forwarded` the client sent or, with
/// [`ForwardTrust::Replace`], replacing them.
pub fn forwarding(
    x_forwarded_for: Option<&str>,
    forwarded: Option<&str>,
    client_ip: Option<&str>,
    proto: &str,
    trust: ForwardTrust,
) -> Forwarding {
    let (x_forwarded_for, forwarded) = match trust {
        ForwardTrust::Append => (x_forwarded_for, forwarded),
        ForwardTrust::Replace => (None, None),
    };
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
        let f = forwarding(None, None, Some("203.0.113.7"), "https", ForwardTrust::Append);
        assert_eq!(f.x_forwarded_for.as_deref(), Some("203.0.113.7"));
        assert_eq!(f.forwarded.as_deref(), Some("for=203.0.113.7;proto=https"));
        assert_eq!(f.x_forwarded_proto, "https");

        let f = forwarding(
            Some("10.0.0.1"),
            Some("for=10.0.0.1"),
            Some("2001:db8::1"),
            "http",
            ForwardTrust::Append,
        );
        assert_eq!(f.x_forwarded_for.as_deref(), Some("10.0.0.1, 2001:db8::1"));
        assert_eq!(f.forwarded.as_deref(), Some("for=10.0.0.1, for=\"[2001:db8::1]\";proto=http"));

        let f = forwarding(Some("10.0.0.1"), None, None, "http", ForwardTrust::Append);
        assert_eq!(f.x_forwarded_for.as_deref(), Some("10.0.0.1"), "unknown client: kept as is");
        assert_eq!(f.forwarded.as_deref(), Some("for=unknown;proto=http"));
    }

    #[test]
    fn replace_drops_what_the_client_claimed() {
        let f = forwarding(
            Some("198.51.100.1, 10.0.0.1"),
            Some("for=198.51.100.1"),
            Some("203.0.113.7"),
            "https",
            ForwardTrust::Replace,
        );
        assert_eq!(f.x_forwarded_for.as_deref(), Some("203.0.113.7"));
        assert_eq!(f.forwarded.as_deref(), Some("for=203.0.113.7;proto=https"));
        assert_eq!("Replace ".parse::<ForwardTrust>(), Ok(ForwardTrust::Replace));
        assert!("trust-all".parse::<ForwardTrust>().unwrap_err().to_string().contains("append"));
    }

    proptest::proptest! {
        /// Whatever the client sent, the last entry of both lists is the router's view of the
        /// client, and with `replace` it is the only one.
        #[test]
        fn the_last_entry_is_always_the_router_s(
            xff in proptest::option::of(".{0,40}"),
            fwd in proptest::option::of(".{0,40}"),
            ip in "[0-9]{1,3}(\\.[0-9]{1,3}){3}",
            replace in proptest::bool::ANY,
        ) {
            let trust = if replace { ForwardTrust::Replace } else { ForwardTrust::Append };
            let f = forwarding(xff.as_deref(), fwd.as_deref(), Some(&ip), "https", trust);
            let xff_out = f.x_forwarded_for.expect("a client address was given");
            let fwd_out = f.forwarded.expect("always set");
            proptest::prop_assert!(xff_out.ends_with(&ip));
            let node = format!("for={ip};proto=https");
            proptest::prop_assert!(fwd_out.ends_with(&node));
            if replace {
                proptest::prop_assert_eq!(xff_out, ip.clone());
                proptest::prop_assert_eq!(fwd_out, node);
            }
        }
    }
}
