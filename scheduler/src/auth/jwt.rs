//! JWT bearer tokens, as Trino's JWT authenticator (`http-server.authentication.type=JWT`):
//! tokens signed with the key in `http-server.authentication.jwt.key-file` (a PEM public key,
//! RSA, EC or Ed25519, or a base64 HMAC secret as Trino reads it), checked for signature,
//! expiry and not-before, and for the configured issuer and audience; the user is the
//! `principal-field` claim (`sub` by default).

use std::path::{Path, PathBuf};

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use regex::Regex;

use crate::error::{Result, SchedulerError};

/// Trino's JWT settings (`http-server.authentication.jwt.*` in `etc/config.properties`).
#[derive(Debug, Clone, Default)]
pub struct JwtConfig {
    /// The signing key: a PEM public key or a base64 HMAC secret.
    pub key_file: PathBuf,
    /// The `iss` a token must carry.
    pub required_issuer: Option<String>,
    /// An `aud` a token must carry.
    pub required_audience: Option<String>,
    /// The claim naming the user (default `sub`).
    pub principal_field: Option<String>,
    /// A regular expression whose first group is the user (Trino's `user-mapping.pattern`).
    pub user_mapping_pattern: Option<String>,
}

/// Which signatures a key verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyFamily {
    Hmac,
    Rsa,
    Ec,
    Ed,
}

impl KeyFamily {
    fn accepts(self, algorithm: Algorithm) -> bool {
        use Algorithm::*;
        match self {
            KeyFamily::Hmac => matches!(algorithm, HS256 | HS384 | HS512),
            KeyFamily::Rsa => matches!(algorithm, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
            KeyFamily::Ec => matches!(algorithm, ES256 | ES384),
            KeyFamily::Ed => matches!(algorithm, EdDSA),
        }
    }
}

/// Verifies bearer tokens.
pub struct JwtVerifier {
    key: DecodingKey,
    family: KeyFamily,
    issuer: Option<String>,
    audience: Option<String>,
    principal_field: String,
    user_mapping: Option<Regex>,
}

impl std::fmt::Debug for JwtVerifier {
    // Never the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("family", &self.family)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl JwtVerifier {
    /// Reads the key file; errors name the file and what is wrong with it.
    pub fn new(config: &JwtConfig) -> Result<Self> {
        let path = &config.key_file;
        let text = std::fs::read(path).map_err(|e| {
            SchedulerError::Config(format!(
                "http-server.authentication.jwt.key-file: cannot read {}: {e}",
                path.display()
            ))
        })?;
        let (key, family) = read_key(path, &text)?;
        let user_mapping = config
            .user_mapping_pattern
            .as_deref()
            .map(|p| {
                Regex::new(&format!("^(?:{p})$")).map_err(|e| {
                    SchedulerError::Config(format!(
                        "http-server.authentication.jwt.user-mapping.pattern: '{p}' is not a \
                         regular expression: {e}"
                    ))
                })
            })
            .transpose()?;
        Ok(Self {
            key,
            family,
            issuer: config.required_issuer.clone(),
            audience: config.required_audience.clone(),
            principal_field: config
                .principal_field
                .clone()
                .unwrap_or_else(|| "sub".to_owned()),
            user_mapping,
        })
    }

    /// Verifies a token; returns its user.
    pub fn verify(&self, token: &str) -> Result<String> {
        let refuse = |why: String| SchedulerError::Unauthenticated(format!("invalid JWT: {why}"));
        let header = jsonwebtoken::decode_header(token).map_err(|e| refuse(e.to_string()))?;
        if !self.family.accepts(header.alg) {
            return Err(refuse(format!(
                "signed with {:?}, which the configured key cannot verify",
                header.alg
            )));
        }
        let mut validation = Validation::new(header.alg);
        // Trino accepts tokens without `exp`; when present it must not have passed.
        validation.required_spec_claims.clear();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = 0;
        match &self.issuer {
            Some(issuer) => validation.set_issuer(&[issuer]),
            None => validation.iss = None,
        }
        match &self.audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        let data = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            token,
            &self.key,
            &validation,
        )
        .map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            refuse(match e.kind() {
                ErrorKind::ExpiredSignature => "the token has expired".to_owned(),
                ErrorKind::ImmatureSignature => "the token is not valid yet".to_owned(),
                ErrorKind::InvalidIssuer => "wrong issuer".to_owned(),
                ErrorKind::InvalidAudience => "wrong audience".to_owned(),
                ErrorKind::InvalidSignature => "bad signature".to_owned(),
                _ => e.to_string(),
            })
        })?;
        let principal = data
            .claims
            .get(&self.principal_field)
            .and_then(|v| v.as_str())
            .filter(|p| !p.is_empty())
            .ok_or_else(|| refuse(format!("no '{}' claim", self.principal_field)))?;
        match &self.user_mapping {
            None => Ok(principal.to_owned()),
            Some(pattern) => pattern
                .captures(principal)
                .and_then(|c| c.get(1).or_else(|| c.get(0)))
                .map(|m| m.as_str().to_owned())
                .ok_or_else(|| {
                    refuse(format!(
                        "principal '{principal}' does not match the user mapping pattern"
                    ))
                }),
        }
    }
}

/// Reads one kind of PEM public key.
type ReadPem = fn(&[u8]) -> jsonwebtoken::errors::Result<DecodingKey>;

/// A PEM public key, or else a base64 HMAC secret (Trino reads HMAC key files so).
fn read_key(path: &Path, bytes: &[u8]) -> Result<(DecodingKey, KeyFamily)> {
    let bad = |why: String| {
        SchedulerError::Config(format!(
            "http-server.authentication.jwt.key-file {}: {why}",
            path.display()
        ))
    };
    let text = String::from_utf8_lossy(bytes);
    if text.contains("-----BEGIN") {
        if text.contains("PRIVATE KEY") {
            return Err(bad(
                "holds a private key; give the public key (or an HMAC secret)".into(),
            ));
        }
        let attempts: [(KeyFamily, ReadPem); 3] = [
            (KeyFamily::Rsa, DecodingKey::from_rsa_pem),
            (KeyFamily::Ec, DecodingKey::from_ec_pem),
            (KeyFamily::Ed, DecodingKey::from_ed_pem),
        ];
        return attempts
            .iter()
            .find_map(|(family, read)| read(bytes).ok().map(|k| (k, *family)))
            .ok_or_else(|| bad("not an RSA, EC or Ed25519 public key in PEM".into()));
    }
    let secret = base64::engine::general_purpose::STANDARD
        .decode(text.split_whitespace().collect::<String>())
        .map_err(|_| bad("neither a PEM public key nor a base64 HMAC secret".into()))?;
    if secret.len() < 32 {
        return Err(bad(format!(
            "an HMAC secret of {} bytes is too short (32 or more)",
            secret.len()
        )));
    }
    Ok((DecodingKey::from_secret(&secret), KeyFamily::Hmac))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs()
    }

    #[test]
    fn verifies_hmac_tokens() {
        let dir = std::env::temp_dir().join(format!("tributary-jwt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let secret = [7u8; 32];
        let file = dir.join("jwt.key");
        std::fs::write(
            &file,
            base64::engine::general_purpose::STANDARD.encode(secret),
        )
        .expect("write");
        let verifier = JwtVerifier::new(&JwtConfig {
            key_file: file.clone(),
            required_issuer: Some("idp".into()),
            ..JwtConfig::default()
        })
        .expect("verifier");
        let sign = |claims: serde_json::Value, key: &[u8]| {
            jsonwebtoken::encode(&Header::default(), &claims, &EncodingKey::from_secret(key))
                .expect("sign")
        };
        let good = serde_json::json!({"sub": "alice", "iss": "idp", "exp": now() + 600});
        assert_eq!(verifier.verify(&sign(good, &secret)).expect("ok"), "alice");
        let expired = serde_json::json!({"sub": "alice", "iss": "idp", "exp": now() - 600});
        let err = verifier
            .verify(&sign(expired, &secret))
            .expect_err("expired");
        assert!(err.to_string().contains("expired"), "{err}");
        let issuer = serde_json::json!({"sub": "alice", "iss": "other", "exp": now() + 600});
        assert!(verifier.verify(&sign(issuer, &secret)).is_err());
        let forged = serde_json::json!({"sub": "alice", "iss": "idp", "exp": now() + 600});
        let err = verifier
            .verify(&sign(forged, &[8u8; 32]))
            .expect_err("forged");
        assert!(err.to_string().contains("bad signature"), "{err}");
        assert!(verifier.verify("not.a.token").is_err());
        std::fs::write(&file, "c2hvcnQ=").expect("write");
        let err = JwtVerifier::new(&JwtConfig {
            key_file: file,
            ..JwtConfig::default()
        })
        .expect_err("short");
        assert!(err.to_string().contains("too short"), "{err}");
    }
}
