//! Who may call the learner.
//!
//! **The contract** (what the routers send):
//!
//! | endpoint | credentials accepted |
//! | --- | --- |
//! | produce APIs (`POST /topics/{topic}`, `POST /v3/clusters/{c}/topics/{t}/records`) | `Authorization: Bearer <--token>`, or `Authorization: Basic base64(user:password)` of `--rest-basic-auth` when configured (as Confluent's REST proxy takes it) |
//! | `GET /recommendation`, `GET /params`, `GET /stats` | `Authorization: Bearer <--token>` |
//! | `GET /healthz`, `GET /metrics` | none: public (liveness and scraping; `/metrics` carries counts and posterior means, no credentials and no record) |
//!
//! Without credentials the learner does not start ([`Access`]): `--token` (environment
//! `MAGNETAR_LEARNER_TOKEN`) is required unless `--open` is given, which serves everything
//! without credentials, only on a loopback address, and says so in the log.
//!
//! Both secrets are compared in constant time ([`constant_time_eq`]): the comparison reads every
//! byte of the longer of the two, so its duration does not tell how many leading bytes matched.
//! Scheme names are case-insensitive. Neither the token nor the password ever reaches a log
//! line, an error message, `--print-config` or `Debug` output.
//!
//! Basic auth: the expected `Authorization` token (`base64("user:password")`, RFC 7617) is
//! computed once at start; it must be the canonical padded base64 that every client sends.

use std::fmt;

use magnetar_core::telemetry::basic_auth_token;

/// Credentials the produce APIs require.
#[derive(Clone, PartialEq, Eq)]
pub struct BasicAuth {
    user: String,
    token: String,
}

impl fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicAuth").field("user", &self.user).finish_non_exhaustive()
    }
}

impl BasicAuth {
    /// Parses `user:password` (the password may contain ':'); neither part may be empty.
    pub fn parse(value: &str) -> Result<Self, &'static str> {
        let Some((user, password)) = value.split_once(':') else {
            return Err("must be user:password");
        };
        if user.is_empty() || password.is_empty() {
            return Err("must be user:password with neither part empty");
        }
        Ok(BasicAuth::new(user, password))
    }

    pub fn new(user: &str, password: &str) -> Self {
        BasicAuth { user: user.to_owned(), token: basic_auth_token(user, password) }
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    /// Whether an `Authorization` header value carries these credentials.
    pub fn verify(&self, authorization: Option<&[u8]>) -> bool {
        scheme_token(authorization, b"basic")
            .is_some_and(|token| constant_time_eq(token, self.token.as_bytes()))
    }
}

/// The bearer token of `--token`: at least [`BearerToken::MIN_LEN`] visible ASCII characters.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken(String);

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(..)")
    }
}

impl BearerToken {
    /// Shortest token accepted: 16 characters (96 bits of a random base64 token).
    pub const MIN_LEN: usize = 16;

    pub fn parse(value: &str) -> Result<Self, &'static str> {
        if value.len() < Self::MIN_LEN {
            return Err("must be at least 16 characters");
        }
        if !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("must be visible ASCII characters without spaces");
        }
        Ok(BearerToken(value.to_owned()))
    }

    /// Whether an `Authorization` header value is `Bearer <this token>`.
    pub fn verify(&self, authorization: Option<&[u8]>) -> bool {
        scheme_token(authorization, b"bearer")
            .is_some_and(|token| constant_time_eq(token, self.0.as_bytes()))
    }
}

/// Who may call the learner (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// No credentials asked anywhere (`--open`, loopback only).
    Open,
    /// The bearer token is asked on every protected endpoint.
    Token(BearerToken),
}

impl Access {
    /// Whether a request with this `Authorization` header may read (`/recommendation`,
    /// `/params`, `/stats`).
    pub fn may_read(&self, authorization: Option<&[u8]>) -> bool {
        match self {
            Access::Open => true,
            Access::Token(token) => token.verify(authorization),
        }
    }

    /// Whether a request may produce: the bearer token, or `basic` when configured.
    pub fn may_produce(&self, basic: Option<&BasicAuth>, authorization: Option<&[u8]>) -> bool {
        // Both checks run, so the answer's timing does not tell which scheme was close.
        let bearer = self.may_read(authorization);
        let basic = basic.is_some_and(|b| b.verify(authorization));
        bearer | basic
    }

    pub fn is_open(&self) -> bool {
        matches!(self, Access::Open)
    }
}

/// The token of `Authorization: <scheme> <token>` when the scheme is `scheme` (lowercase).
fn scheme_token<'a>(authorization: Option<&'a [u8]>, scheme: &[u8]) -> Option<&'a [u8]> {
    let value = authorization?.trim_ascii();
    let space = value.iter().position(|b| *b == b' ')?;
    let (name, token) = value.split_at(space);
    name.eq_ignore_ascii_case(scheme).then(|| token.trim_ascii())
}

/// Equality whose running time depends only on the lengths, not on where the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= std::hint::black_box(x ^ y);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use magnetar_core::telemetry::base64;
    use proptest::prelude::*;

    #[test]
    fn verifies_only_the_right_credentials() {
        let auth = BasicAuth::parse("router:pa:ss").unwrap();
        assert_eq!(auth.user(), "router");
        let good = format!("Basic {}", base64(b"router:pa:ss"));
        assert!(auth.verify(Some(good.as_bytes())));
        assert!(auth.verify(Some(format!("basic   {}  ", base64(b"router:pa:ss")).as_bytes())));
        for bad in [
            format!("Basic {}", base64(b"router:pa:sS")),
            format!("Basic {}", base64(b"router:pa")),
            format!("Basic {}", base64(b"router:pa:ss ")),
            format!("Bearer {}", base64(b"router:pa:ss")),
            base64(b"router:pa:ss"),
            "Basic".to_owned(),
            String::new(),
        ] {
            assert!(!auth.verify(Some(bad.as_bytes())), "{bad:?}");
        }
        assert!(!auth.verify(None));
    }

    #[test]
    fn parse_rejects_missing_parts_and_debug_hides_the_password() {
        for bad in ["", "user", ":pw", "user:"] {
            assert!(BasicAuth::parse(bad).is_err(), "{bad:?}");
        }
        let auth = BasicAuth::parse("u:hunter2").unwrap();
        let shown = format!("{auth:?}");
        assert!(!shown.contains("hunter2") && !shown.contains(&base64(b"u:hunter2")), "{shown}");
    }

    #[test]
    fn bearer_tokens_are_checked_and_never_shown() {
        let token = BearerToken::parse("0123456789abcdef-xyz").unwrap();
        assert!(token.verify(Some(b"Bearer 0123456789abcdef-xyz")));
        assert!(token.verify(Some(b"bearer   0123456789abcdef-xyz ")));
        for bad in [
            &b"Bearer 0123456789abcdef-xy"[..],
            b"Bearer 0123456789abcdef-xyz0",
            b"Basic 0123456789abcdef-xyz",
            b"0123456789abcdef-xyz",
            b"Bearer",
            b"",
        ] {
            assert!(!token.verify(Some(bad)), "{:?}", String::from_utf8_lossy(bad));
        }
        assert!(!token.verify(None));
        assert_eq!(format!("{token:?}"), "BearerToken(..)");
        for bad in ["short", "0123456789 abcdef", "0123456789abcdéf"] {
            assert!(BearerToken::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn access_takes_the_token_everywhere_and_basic_auth_only_for_produce() {
        let access = Access::Token(BearerToken::parse("0123456789abcdef").unwrap());
        let basic = BasicAuth::new("router", "pw");
        let bearer = b"Bearer 0123456789abcdef".as_slice();
        let basic_header = format!("Basic {}", base64(b"router:pw"));
        assert!(access.may_read(Some(bearer)) && access.may_produce(Some(&basic), Some(bearer)));
        assert!(access.may_produce(Some(&basic), Some(basic_header.as_bytes())));
        assert!(!access.may_read(Some(basic_header.as_bytes())));
        assert!(!access.may_produce(None, Some(basic_header.as_bytes())));
        assert!(!access.may_produce(Some(&basic), None) && !access.may_read(None));
        assert!(Access::Open.may_read(None) && Access::Open.may_produce(None, None));
    }

    proptest! {
        #[test]
        fn constant_time_eq_is_equality(a in proptest::collection::vec(any::<u8>(), 0..40),
                                        b in proptest::collection::vec(any::<u8>(), 0..40)) {
            prop_assert_eq!(constant_time_eq(&a, &b), a == b);
            prop_assert!(constant_time_eq(&a, &a.clone()));
        }

        #[test]
        fn only_the_exact_credentials_verify(
            header in proptest::collection::vec(any::<u8>(), 0..80),
            presented in "[ -~]{0,24}",
        ) {
            let basic = BasicAuth::new("u", "p");
            let token = BearerToken::parse("0123456789abcdef").unwrap();
            // Arbitrary bytes hold the secret or they do not verify.
            prop_assert!(!basic.verify(Some(&header)) || header.windows(4).any(|w| w == b"dTpw"));
            prop_assert!(!token.verify(Some(&header))
                || header.windows(16).any(|w| w == b"0123456789abcdef"));
            // A bearer header verifies exactly when its token is the configured one.
            let bearer = format!("Bearer {presented}");
            prop_assert_eq!(token.verify(Some(bearer.as_bytes())), presented.trim() == "0123456789abcdef");
        }
    }
}
