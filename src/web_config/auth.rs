//! Basic auth: `basic_auth_users` (user → bcrypt hash) loaded and checked for syntax, and the
//! per-request check with its bounded cache of verified credentials. Passwords and hashes are
//! never logged or put into errors.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use base64::Engine as _;
use hyper::header::HeaderValue;

use crate::yaml::Node;

use super::loader::Loader;
use super::{AuthDecision, WebConfig, WebConfigError};

/// Verified credential digests kept at most; past this the cache starts over. A handful of
/// scrapers use one or two users, so this only bounds memory against a stream of distinct
/// (valid) passwords.
const AUTH_CACHE_CAPACITY: usize = 256;

impl WebConfig {
    /// Checks an `Authorization` header against `basic_auth_users`. Always [`AuthDecision::Allowed`]
    /// when no users are configured.
    ///
    /// A first-time check costs one bcrypt verification (~100 ms at cost 10) — also for an
    /// unknown user, so the response time does not reveal which users exist. Verified
    /// credentials are cached (bounded), so repeat scrapes are cheap. On an async runtime call
    /// [`WebConfig::authorize_async`] instead, which keeps bcrypt off the reactor threads.
    pub fn authorize(&self, authorization: Option<&HeaderValue>) -> AuthDecision {
        match self.check_cached(authorization) {
            Ok(decision) => decision,
            Err(credentials) => self.verify(&credentials),
        }
    }

    /// [`WebConfig::authorize`] for async servers: the cache hit is answered inline, a bcrypt
    /// verification runs on tokio's blocking pool.
    pub async fn authorize_async(
        self: &Arc<Self>,
        authorization: Option<&HeaderValue>,
    ) -> AuthDecision {
        match self.check_cached(authorization) {
            Ok(decision) => decision,
            Err(credentials) => {
                let config = Arc::clone(self);
                tokio::task::spawn_blocking(move || config.verify(&credentials))
                    .await
                    .unwrap_or(AuthDecision::Unauthorized)
            }
        }
    }

    /// Decides without bcrypt when possible (no users, no or malformed header, cached
    /// credentials); otherwise hands back the credentials that need verifying.
    fn check_cached(
        &self,
        authorization: Option<&HeaderValue>,
    ) -> Result<AuthDecision, Credentials> {
        if self.users.is_empty() {
            return Ok(AuthDecision::Allowed);
        }
        let Some(credentials) = authorization.and_then(Credentials::from_header) else {
            return Ok(AuthDecision::Unauthorized);
        };
        if let Some(hash) = self.users.get(&credentials.user) {
            let digest = credentials.digest(hash);
            if self.verified_cache().contains(&digest) {
                return Ok(AuthDecision::Allowed);
            }
        }
        Err(credentials)
    }

    /// The slow path: one bcrypt verification against the user's hash, or against the decoy
    /// hash for an unknown user.
    fn verify(&self, credentials: &Credentials) -> AuthDecision {
        let known_hash = self.users.get(&credentials.user);
        let Some(hash) = known_hash.or(self.decoy_hash.as_ref()) else {
            return AuthDecision::Unauthorized;
        };
        let matches = bcrypt::verify(credentials.password.as_bytes(), hash).unwrap_or(false);
        match known_hash {
            Some(hash) if matches => {
                let mut cache = self.verified_cache();
                if cache.len() >= AUTH_CACHE_CAPACITY {
                    cache.clear();
                }
                cache.insert(credentials.digest(hash));
                AuthDecision::Allowed
            }
            _ => AuthDecision::Unauthorized,
        }
    }

    fn verified_cache(&self) -> std::sync::MutexGuard<'_, HashSet<[u8; 32]>> {
        // The set holds no invariant a panicking holder could break: use it as is.
        self.verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Basic-auth credentials from one request. Not `Debug`: it holds a password.
struct Credentials {
    user: String,
    password: String,
}

impl Credentials {
    /// Parses `Basic base64(user:password)`; `None` for anything else.
    fn from_header(header: &HeaderValue) -> Option<Credentials> {
        let text = header.to_str().ok()?.trim();
        let (scheme, encoded) = text.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (user, password) = decoded.split_once(':')?;
        Some(Credentials {
            user: user.to_string(),
            password: password.to_string(),
        })
    }

    /// SHA-256 over user, password and the stored hash (length-prefixed so fields cannot run
    /// into each other): the cache key, so the cache never holds a password.
    fn digest(&self, hash: &str) -> [u8; 32] {
        let mut context = ring::digest::Context::new(&ring::digest::SHA256);
        for field in [self.user.as_str(), self.password.as_str(), hash] {
            context.update(&(field.len() as u64).to_be_bytes());
            context.update(field.as_bytes());
        }
        let mut digest = [0u8; 32];
        digest.copy_from_slice(context.finish().as_ref());
        digest
    }
}

/// A hash of a random password at the highest cost among `users`, so that rejecting an unknown
/// user costs what rejecting a wrong password does.
pub(super) fn decoy_hash_for(users: &BTreeMap<String, String>) -> Option<String> {
    let cost = users
        .values()
        .filter_map(|hash| hash.parse::<bcrypt::HashParts>().ok())
        .map(|parts| parts.get_cost())
        .max()?;
    let mut random_password = [0u8; 16];
    rand::fill(&mut random_password);
    bcrypt::hash(random_password, cost).ok()
}

pub(super) fn load_users(
    loader: &Loader<'_>,
    node: Node,
) -> Result<BTreeMap<String, String>, WebConfigError> {
    let mut users = BTreeMap::new();
    for (user, hash) in loader.mapping("basic_auth_users", node)? {
        let key = format!("basic_auth_users.{user}");
        if user.contains(':') {
            return Err(loader.invalid(&key, "user names cannot contain ':' in basic auth"));
        }
        let Some(hash) = loader.scalar(&key, hash)? else {
            return Err(loader.invalid(&key, "missing bcrypt hash"));
        };
        // The hash is not echoed: it is as good as a password to an offline attacker.
        if hash.parse::<bcrypt::HashParts>().is_err() {
            return Err(loader.invalid(
                &key,
                "is not a bcrypt hash (generate one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`)",
            ));
        }
        users.insert(user, hash);
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(value: &str) -> HeaderValue {
        HeaderValue::from_str(value).expect("valid header")
    }

    #[test]
    fn basic_credentials_parse_with_any_scheme_case() {
        // "alice:pa:ss" — the password may contain colons.
        let credentials =
            Credentials::from_header(&header("basic YWxpY2U6cGE6c3M=")).expect("parses");
        assert_eq!(credentials.user, "alice");
        assert_eq!(credentials.password, "pa:ss");
    }

    #[test]
    fn malformed_authorization_headers_are_rejected() {
        for value in ["Bearer abc", "Basic", "Basic !!!", "Basic YWxpY2U="] {
            assert!(
                Credentials::from_header(&header(value)).is_none(),
                "{value}"
            );
        }
    }

    #[test]
    fn digest_separates_fields() {
        let first = Credentials {
            user: "ab".into(),
            password: "c".into(),
        };
        let second = Credentials {
            user: "a".into(),
            password: "bc".into(),
        };
        assert_ne!(first.digest("h"), second.digest("h"));
    }
}
