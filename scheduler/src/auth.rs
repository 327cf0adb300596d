//! Authentication: a password file as Trino's file authenticator reads it (`user:hash` lines,
//! bcrypt `$2y$…` or PBKDF2 `iterations:salt:hash`), named by `--password-file` or by
//! `etc/password-authenticator.properties` (`password-authenticator.name=file`,
//! `file.password-file=…`). Plain `user:password` lines are accepted too, with a warning.
//! JWT bearer tokens (`jwt.rs`) may be accepted besides, or instead.

mod jwt;

pub use jwt::{JwtConfig, JwtVerifier};

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use sha2::{Digest, Sha256};
use tributary_connector::Properties;

use crate::error::{Result, SchedulerError};

/// The properties file that configures password authentication, as Trino's.
pub const PASSWORD_AUTHENTICATOR_PROPERTIES: &str = "password-authenticator.properties";

/// How a user's password is stored.
#[derive(Clone)]
enum Credential {
    /// As written (Tributary's simple form; Trino does not accept it).
    Plain(String),
    /// A bcrypt hash (`$2y$10$…`, as `htpasswd -B` writes).
    Bcrypt(String),
    /// PBKDF2 with HMAC-SHA256, Trino's `iterations:salt:hash` (hex).
    Pbkdf2 {
        iterations: u32,
        salt: Vec<u8>,
        hash: Vec<u8>,
    },
}

impl std::fmt::Debug for Credential {
    // Never print a password or a hash.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Credential::Plain(_) => "Plain(…)",
            Credential::Bcrypt(_) => "Bcrypt(…)",
            Credential::Pbkdf2 { .. } => "Pbkdf2(…)",
        })
    }
}

impl Credential {
    /// Reads a stored password; `None` for what looks like a hash Tributary cannot check
    /// (`$apr1$…`, `{SHA}…`) or one weaker than Trino accepts (bcrypt cost below 8, PBKDF2
    /// below 1000 iterations): such a line must not become a plain password.
    fn parse(value: &str) -> Option<Self> {
        let value = value.trim();
        if let Some(rest) = ["$2a$", "$2b$", "$2y$"]
            .iter()
            .find_map(|p| value.strip_prefix(p))
        {
            let cost: u32 = rest.get(..2)?.parse().ok()?;
            return (cost >= 8).then(|| Credential::Bcrypt(value.to_owned()));
        }
        if value.starts_with('$') || value.starts_with('{') {
            return None;
        }
        let parts: Vec<&str> = value.split(':').collect();
        if let [iterations, salt, hash] = parts.as_slice()
            && let Ok(iterations) = iterations.parse::<u32>()
        {
            let hash = hex(hash)?;
            let salt = hex(salt)?;
            return (iterations >= 1000 && hash.len() >= 16).then_some(Credential::Pbkdf2 {
                iterations,
                salt,
                hash,
            });
        }
        (!value.is_empty()).then(|| Credential::Plain(value.to_owned()))
    }

    fn verify(&self, password: &str) -> bool {
        match self {
            Credential::Plain(p) => p == password,
            Credential::Bcrypt(hash) => bcrypt::verify(password, hash).unwrap_or(false),
            Credential::Pbkdf2 {
                iterations,
                salt,
                hash,
            } => {
                let mut out = vec![0u8; hash.len()];
                pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, *iterations, &mut out);
                out == *hash
            }
        }
    }
}

fn hex(text: &str) -> Option<Vec<u8>> {
    if text.is_empty() || !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Who may connect.
#[derive(Clone, Default)]
pub struct Authenticator {
    /// `None`: no authentication (any user name, any password), as `tributary standalone`.
    users: Option<Arc<HashMap<String, Credential>>>,
    /// Digests of credentials already verified (bcrypt is slow on purpose, and the web UI
    /// sends basic credentials with every request).
    verified: Arc<Mutex<HashMap<String, [u8; 32]>>>,
    /// JWT bearer tokens accepted (`http-server.authentication.type` with `JWT`).
    jwt: Option<Arc<JwtVerifier>>,
    /// Basic credentials are refused (`JWT` alone).
    no_passwords: bool,
}

impl std::fmt::Debug for Authenticator {
    // Neither users' credentials nor the digests of verified ones.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("users", &self.users.as_ref().map(|u| u.len()))
            .field("jwt", &self.jwt)
            .finish_non_exhaustive()
    }
}

/// A bcrypt hash unknown users are checked against, so that a wrong user name takes as long
/// as a wrong password.
const DUMMY_BCRYPT: &str = "$2y$08$nPyeV9aRXQ42uVaPqRxmEOwHLr1/lcXd2so6mPWuHsioInHXIA2eW";

impl Authenticator {
    /// Accepts every client.
    pub fn open() -> Self {
        Self::default()
    }

    /// The authenticator `<etc>/password-authenticator.properties` configures, if present.
    pub fn from_etc(etc: &Path) -> Result<Option<Self>> {
        let path = etc.join(PASSWORD_AUTHENTICATOR_PROPERTIES);
        if !path.exists() {
            return Ok(None);
        }
        let config = |e: tributary_connector::ConnectorError| SchedulerError::Config(e.to_string());
        let props = Properties::load(&path).map_err(config)?;
        let mut reader = props.reader("password authenticator");
        let name = reader
            .required_string("password-authenticator.name", "file")
            .map_err(config)?;
        if name != "file" {
            return Err(SchedulerError::Config(format!(
                "{}: password-authenticator.name={name} is not supported (only file)",
                path.display()
            )));
        }
        let file = reader
            .required_string("file.password-file", "the path of the password file")
            .map_err(config)?;
        // Accepted for Trino's files; the file is read once at start-up and verified
        // credentials are kept in memory.
        let _ = reader.optional_string("file.refresh-period");
        let _ = reader.optional_string("file.auth-token-cache.max-size");
        reader.finish().map_err(config)?;
        Self::from_password_file(&tributary_connector::installation_path(etc, file)).map(Some)
    }

    /// Reads a password file: one `user:password-or-hash` per line; `#` starts a comment.
    pub fn from_password_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            SchedulerError::Config(format!("cannot read password file {}: {e}", path.display()))
        })?;
        let mut users = HashMap::new();
        let mut plain = 0;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = || {
                SchedulerError::Config(format!(
                    "{}: line {}: expected 'user:password', 'user:<bcrypt hash, cost 8 or \
                     more>' or 'user:<iterations, 1000 or more>:<salt hex>:<hash hex>'",
                    path.display(),
                    n + 1
                ))
            };
            let (user, secret) = line.split_once(':').ok_or_else(bad)?;
            let credential = Credential::parse(secret).ok_or_else(bad)?;
            if matches!(credential, Credential::Plain(_)) {
                plain += 1;
            }
            users.insert(user.trim().to_owned(), credential);
        }
        if plain > 0 {
            tracing::warn!(
                "{}: {plain} password(s) stored in plain text; store bcrypt hashes \
                 (htpasswd -B -C 10) as Trino requires",
                path.display()
            );
        }
        Ok(Self {
            users: Some(Arc::new(users)),
            ..Self::default()
        })
    }

    /// Accepts JWT bearer tokens too; with `passwords = false`, only them.
    pub fn with_jwt(mut self, verifier: JwtVerifier, passwords: bool) -> Self {
        self.jwt = Some(Arc::new(verifier));
        self.no_passwords = !passwords;
        self
    }

    /// Whether clients must authenticate.
    pub fn required(&self) -> bool {
        self.users.is_some() || self.jwt.is_some()
    }

    /// Whether a bearer token that is not a session token should be checked as a JWT.
    pub fn accepts_jwt(&self) -> bool {
        self.jwt.is_some()
    }

    /// Checks a JWT bearer token; returns its user.
    pub fn check_jwt(&self, token: &str) -> Result<String> {
        match &self.jwt {
            Some(verifier) => verifier.verify(token),
            None => Err(SchedulerError::Unauthenticated(
                "unknown or expired session token: authenticate again".into(),
            )),
        }
    }

    /// Checks an `authorization: Basic …` header value; returns the user name.
    pub fn check_basic(&self, header: &str) -> Result<String> {
        let encoded = header.strip_prefix("Basic ").ok_or_else(|| {
            SchedulerError::Unauthenticated("expected 'authorization: Basic <credentials>'".into())
        })?;
        // ADBC sends base64 without padding: accept both.
        let trimmed = encoded.trim().trim_end_matches('=');
        let decoded = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(trimmed)
            .map_err(|_| SchedulerError::Unauthenticated("malformed basic credentials".into()))?;
        let decoded = String::from_utf8(decoded)
            .map_err(|_| SchedulerError::Unauthenticated("malformed basic credentials".into()))?;
        let (user, password) = decoded.split_once(':').unwrap_or((decoded.as_str(), ""));
        if self.no_passwords {
            return Err(SchedulerError::Unauthenticated(
                "password authentication is not enabled (http-server.authentication.type): \
                 send a JWT bearer token"
                    .into(),
            ));
        }
        let Some(users) = &self.users else {
            return Ok(user.to_owned());
        };
        let digest: [u8; 32] = Sha256::new()
            .chain_update(user.as_bytes())
            .chain_update([0])
            .chain_update(password.as_bytes())
            .finalize()
            .into();
        let known = self
            .verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(user)
            .is_some_and(|d| *d == digest);
        // bcrypt takes milliseconds on purpose: off the runtime's worker threads.
        let check = || match users.get(user) {
            Some(credential) => credential.verify(password),
            None => {
                let _ = bcrypt::verify(password, DUMMY_BCRYPT);
                false
            }
        };
        let multi_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        let valid = known
            || if multi_thread {
                tokio::task::block_in_place(check)
            } else {
                check()
            };
        if valid {
            self.verified
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(user.to_owned(), digest);
            return Ok(user.to_owned());
        }
        Err(SchedulerError::Unauthenticated(format!(
            "invalid credentials for user '{user}'"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_passwords() {
        let dir = std::env::temp_dir().join(format!("tributary-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("passwords");
        std::fs::write(&file, "# users\nalice:wonderland\n").expect("write");
        let auth = Authenticator::from_password_file(&file).expect("load");
        let ok = base64::engine::general_purpose::STANDARD.encode("alice:wonderland");
        assert_eq!(
            auth.check_basic(&format!("Basic {ok}")).expect("ok"),
            "alice"
        );
        let bad = base64::engine::general_purpose::STANDARD_NO_PAD.encode("alice:nope");
        assert!(auth.check_basic(&format!("Basic {bad}")).is_err());
        assert!(
            Authenticator::open()
                .check_basic(&format!("Basic {bad}"))
                .is_ok()
        );
    }

    #[test]
    fn checks_bcrypt_and_pbkdf2_hashes() {
        let basic = |user: &str, password: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            )
        };
        let dir = std::env::temp_dir().join(format!("tributary-auth-h-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("password.db");
        let bcrypt = bcrypt::hash("wonderland", 8).expect("hash");
        // PBKDF2-HMAC-SHA256 of "secret" with salt "salt", 1000 iterations, 32 bytes.
        let mut out = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(b"secret", b"salt", 1000, &mut out);
        let hex: String = out.iter().map(|b| format!("{b:02x}")).collect();
        std::fs::write(&file, format!("alice:{bcrypt}\nbob:1000:73616c74:{hex}\n")).expect("write");
        let auth = Authenticator::from_password_file(&file).expect("load");
        assert_eq!(
            auth.check_basic(&basic("alice", "wonderland")).expect("ok"),
            "alice"
        );
        // Cached now: still checked against the same password.
        assert_eq!(
            auth.check_basic(&basic("alice", "wonderland")).expect("ok"),
            "alice"
        );
        assert!(auth.check_basic(&basic("alice", "wonder")).is_err());
        assert_eq!(
            auth.check_basic(&basic("bob", "secret")).expect("ok"),
            "bob"
        );
        assert!(auth.check_basic(&basic("bob", "secreT")).is_err());
        assert!(auth.check_basic(&basic("carol", "secret")).is_err());
        // Hashes that cannot be checked are refused, never taken as plain passwords.
        for line in [
            "eve:$apr1$abc$def",
            "eve:{SHA}abc",
            "eve:$2y$04$abcdefghijklmnopqrstuu",
        ] {
            std::fs::write(&file, format!("{line}\n")).expect("write");
            let err = Authenticator::from_password_file(&file).expect_err("refused");
            assert!(err.to_string().contains("line 1"), "{err}");
        }
    }
}
