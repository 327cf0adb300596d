//! Authentication: an optional password file of `user:password` lines.

use std::collections::HashMap;
use std::path::Path;

use base64::Engine as _;

use crate::error::{Result, SchedulerError};

/// Who may connect.
#[derive(Debug, Clone, Default)]
pub struct Authenticator {
    /// `None`: no authentication (any user name, any password), as `tributary standalone`.
    users: Option<HashMap<String, String>>,
}

impl Authenticator {
    /// Accepts every client.
    pub fn open() -> Self {
        Self { users: None }
    }

    /// Reads a password file: one `user:password` per line; `#` starts a comment.
    pub fn from_password_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            SchedulerError::Config(format!("cannot read password file {}: {e}", path.display()))
        })?;
        let mut users = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (user, password) = line.split_once(':').ok_or_else(|| {
                SchedulerError::Config(format!(
                    "{}: line {}: expected 'user:password'",
                    path.display(),
                    n + 1
                ))
            })?;
            users.insert(user.trim().to_owned(), password.to_owned());
        }
        Ok(Self { users: Some(users) })
    }

    /// Whether clients must authenticate.
    pub fn required(&self) -> bool {
        self.users.is_some()
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
        match &self.users {
            None => Ok(user.to_owned()),
            Some(users) if users.get(user).is_some_and(|p| p == password) => Ok(user.to_owned()),
            Some(_) => Err(SchedulerError::Unauthenticated(format!(
                "invalid credentials for user '{user}'"
            ))),
        }
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
}
