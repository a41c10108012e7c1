//! HTTP basic auth for the produce APIs (`--rest-basic-auth user:password`), as Confluent
//! Cloud's REST endpoint asks of the router (`KAFKA_REST_USERNAME` / `KAFKA_REST_PASSWORD`).
//!
//! The expected `Authorization` token (`base64("user:password")`, RFC 7617) is computed once at
//! start and compared with the presented token in constant time: the comparison reads every
//! byte of the longer of the two, so its duration does not tell how many leading bytes matched.
//! The scheme name is case-insensitive; the token must be the canonical padded base64 that every
//! client sends. The password never reaches a log line, an error message or `Debug` output.

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
        let Some(value) = authorization else { return false };
        let value = value.trim_ascii();
        let Some(space) = value.iter().position(|b| *b == b' ') else { return false };
        let (scheme, token) = value.split_at(space);
        scheme.eq_ignore_ascii_case(b"basic")
            && constant_time_eq(token.trim_ascii(), self.token.as_bytes())
    }
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

    proptest! {
        #[test]
        fn constant_time_eq_is_equality(a in proptest::collection::vec(any::<u8>(), 0..40),
                                        b in proptest::collection::vec(any::<u8>(), 0..40)) {
            prop_assert_eq!(constant_time_eq(&a, &b), a == b);
            prop_assert!(constant_time_eq(&a, &a.clone()));
        }

        #[test]
        fn verify_never_panics(header in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = BasicAuth::new("u", "p").verify(Some(&header));
        }
    }
}
