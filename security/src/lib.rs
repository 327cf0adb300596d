//! TLS and the internal-communication secret, as `etc/config.properties` configures them with
//! Trino's names, for the scheduler and the executors alike:
//!
//! - [`tls`]: PEM certificate files. The Flight SQL port serves TLS with
//!   `http-server.https.keystore.path` when `http-server.https.enabled=true`.
//! - [`internal`]: what nodes prove to each other. With
//!   `internal-communication.https.required=true`, the scheduler's cluster port and the
//!   executors' Flight ports (shuffle and result data) serve TLS, and nodes connect to each
//!   other over TLS trusting `internal-communication.https.truststore.path`. With
//!   `internal-communication.shared-secret`, every internal request carries a token derived
//!   from the secret, and those servers refuse requests without it: a process without the
//!   secret cannot register as an executor, heartbeat, or read shuffle data.
//!
//! Where Ballista falls short: its clients are made from a `tonic` `Endpoint` that Tributary
//! may only rewrite ([`ballista_core::extension::EndpointOverrideFn`]), so the token travels
//! in the `user-agent` header (the one header an endpoint sets); and the executor's task
//! service (`ExecutorGrpc`, where the scheduler pushes tasks) is built inside Ballista with no
//! hook, so it stays plain gRPC without a token check.

pub mod internal;
pub mod tls;

pub use internal::InternalSecurity;
pub use tls::{load_ca, load_identity};

/// Chooses the TLS cryptography (ring) for the whole process; call once at start-up, before
/// any TLS server or client is made (rustls is built with two providers in this dependency
/// tree and will not pick one itself).
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// What can be wrong with TLS or secret settings.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    /// A certificate or key file cannot be read or holds no usable PEM.
    #[error("{key}: {path}: {message}")]
    Pem {
        /// The property naming the file.
        key: &'static str,
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A TLS setting tonic refuses.
    #[error("TLS: {0}")]
    Tls(#[from] tonic::transport::Error),
}
