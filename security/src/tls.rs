//! PEM files: a keystore holding a certificate chain and its private key (Trino accepts PEM
//! keystores), and a truststore of CA certificates.

use std::path::Path;

use tonic::transport::{Certificate, Identity};

use crate::SecurityError;

fn read(key: &'static str, path: &Path) -> Result<String, SecurityError> {
    std::fs::read_to_string(path).map_err(|e| SecurityError::Pem {
        key,
        path: path.display().to_string(),
        message: format!("cannot read: {e}"),
    })
}

/// PEM blocks of `text` whose label contains `label` (`CERTIFICATE`, `PRIVATE KEY`).
fn blocks(text: &str, label: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with("-----BEGIN ") {
            inside = line.contains(label);
        }
        if inside {
            out.push_str(line);
            out.push('\n');
        }
        if line.starts_with("-----END ") {
            inside = false;
        }
    }
    out
}

/// A server's certificate chain and private key from one PEM file (`key` names the property
/// in errors).
pub fn load_identity(key: &'static str, path: &Path) -> Result<Identity, SecurityError> {
    let text = read(key, path)?;
    let bad = |message: &str| SecurityError::Pem {
        key,
        path: path.display().to_string(),
        message: message.to_owned(),
    };
    if text.contains("ENCRYPTED PRIVATE KEY") || text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(bad(
            "the private key is encrypted; give an unencrypted PEM key (keep the file readable \
             by Tributary only)",
        ));
    }
    let certificates = blocks(&text, "CERTIFICATE");
    let private_key = blocks(&text, "PRIVATE KEY");
    if certificates.is_empty() {
        return Err(bad("no CERTIFICATE block"));
    }
    if private_key.is_empty() {
        return Err(bad(
            "no PRIVATE KEY block (put the key after the certificate chain)",
        ));
    }
    Ok(Identity::from_pem(certificates, private_key))
}

/// CA certificates to trust.
pub fn load_ca(key: &'static str, path: &Path) -> Result<Certificate, SecurityError> {
    let text = read(key, path)?;
    let certificates = blocks(&text, "CERTIFICATE");
    if certificates.is_empty() {
        return Err(SecurityError::Pem {
            key,
            path: path.display().to_string(),
            message: "no CERTIFICATE block".into(),
        });
    }
    Ok(Certificate::from_pem(certificates))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keystores_need_a_certificate_and_a_plain_key() {
        let dir = std::env::temp_dir().join(format!("tributary-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("server.pem");
        let cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let key = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n";
        std::fs::write(&file, format!("{cert}{key}")).expect("write");
        load_identity("http-server.https.keystore.path", &file).expect("identity");
        std::fs::write(&file, cert).expect("write");
        let err = load_identity("http-server.https.keystore.path", &file).expect_err("no key");
        assert!(err.to_string().contains("no PRIVATE KEY"), "{err}");
        std::fs::write(
            &file,
            format!("{cert}-----BEGIN ENCRYPTED PRIVATE KEY-----\nx\n-----END ENCRYPTED PRIVATE KEY-----\n"),
        )
        .expect("write");
        let err = load_identity("http-server.https.keystore.path", &file).expect_err("encrypted");
        assert!(err.to_string().contains("encrypted"), "{err}");
        assert!(
            load_ca(
                "internal-communication.https.truststore.path",
                &dir.join("none")
            )
            .is_err()
        );
    }
}
