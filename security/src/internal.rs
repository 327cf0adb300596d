//! What nodes of one cluster prove to each other: TLS trusting the cluster's CA, and a token
//! derived from the shared secret in every request.

use std::sync::Arc;

use ballista_core::extension::EndpointOverrideFn;
use hmac::Mac;
use sha2::{Digest, Sha256};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};
use tonic::{Request, Status};

use crate::SecurityError;

/// The user-agent prefix that carries the token.
const AGENT: &str = "tributary-internal/";

/// Internal TLS and secret; the default is neither (plain gRPC, no checks).
#[derive(Clone, Default)]
pub struct InternalSecurity {
    tls: Option<Arc<(Identity, Certificate)>>,
    token: Option<Arc<str>>,
}

impl std::fmt::Debug for InternalSecurity {
    // Neither the key nor the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InternalSecurity")
            .field("tls", &self.tls.is_some())
            .field("secret", &self.token.is_some())
            .finish()
    }
}

impl InternalSecurity {
    /// TLS with this node's identity, trusting `ca`; and/or the token of `secret`.
    pub fn new(tls: Option<(Identity, Certificate)>, secret: Option<&str>) -> Self {
        Self {
            tls: tls.map(Arc::new),
            token: secret.map(|s| token_of(s).into()),
        }
    }

    /// Whether internal connections use TLS.
    pub fn tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The TLS settings of an internal server, if any.
    pub fn server_tls(&self) -> Option<ServerTlsConfig> {
        self.tls
            .as_ref()
            .map(|tls| ServerTlsConfig::new().identity(tls.0.clone()))
    }

    /// A client endpoint to another node: over TLS (`http://` becomes `https://`, Ballista
    /// writes plain URLs) trusting the cluster's CA, carrying the token.
    pub fn client_endpoint(&self, endpoint: Endpoint) -> Result<Endpoint, SecurityError> {
        let mut endpoint = endpoint;
        if let Some(tls) = &self.tls {
            if endpoint.uri().scheme_str() == Some("http") {
                endpoint = with_scheme(&endpoint, "https")?;
            }
            endpoint = endpoint.tls_config(ClientTlsConfig::new().ca_certificate(tls.1.clone()))?;
        }
        self.with_token(endpoint)
    }

    /// A client endpoint carrying the token (and nothing else).
    pub fn with_token(&self, endpoint: Endpoint) -> Result<Endpoint, SecurityError> {
        match &self.token {
            Some(token) => Ok(endpoint.user_agent(format!("{AGENT}{token}"))?),
            None => Ok(endpoint),
        }
    }

    /// [`Self::client_endpoint`] as Ballista's endpoint hook.
    pub fn endpoint_override(&self) -> EndpointOverrideFn {
        let this = self.clone();
        Arc::new(move |endpoint| Ok(this.client_endpoint(endpoint)?))
    }

    /// A gRPC interceptor for internal servers: without a secret it lets everything in; with
    /// one, only requests carrying its token.
    pub fn interceptor(
        &self,
    ) -> impl FnMut(Request<()>) -> Result<Request<()>, Status> + Clone + Send + Sync + use<> {
        let expected = self.token.as_ref().map(|t| format!("{AGENT}{t}"));
        move |request: Request<()>| {
            let Some(expected) = &expected else {
                return Ok(request);
            };
            let agent = request
                .metadata()
                .get("user-agent")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let presented = agent.get(..expected.len()).unwrap_or_default();
            if constant_time_eq(presented.as_bytes(), expected.as_bytes()) {
                Ok(request)
            } else {
                Err(Status::unauthenticated(
                    "internal request without the cluster's shared secret \
                     (internal-communication.shared-secret)",
                ))
            }
        }
    }
}

/// Marks a request that carried the cluster's token (or any request, without a secret):
/// set by [`InternalSecurity::marking_interceptor`].
#[derive(Debug, Clone, Copy)]
pub struct InternalCaller;

impl InternalSecurity {
    /// An interceptor for a server that also answers some requests from outside the cluster
    /// (the executors' Flight port: results read straight by clients): it refuses nothing,
    /// and marks the requests that carry the token ([`InternalCaller`]); handlers check the
    /// mark ([`Self::check_internal`]) or their own proof.
    pub fn marking_interceptor(
        &self,
    ) -> impl FnMut(Request<()>) -> Result<Request<()>, Status> + Clone + Send + Sync + use<> {
        let mut check = self.interceptor();
        move |mut request: Request<()>| {
            let metadata = request.metadata().clone();
            if check(Request::from_parts(metadata, Default::default(), ())).is_ok() {
                request.extensions_mut().insert(InternalCaller);
            }
            Ok(request)
        }
    }

    /// Refuses a request that did not carry the cluster's token (see
    /// [`Self::marking_interceptor`]).
    pub fn check_internal<T>(request: &Request<T>) -> Result<(), Status> {
        match request.extensions().get::<InternalCaller>() {
            Some(_) => Ok(()),
            None => Err(Status::unauthenticated(
                "internal request without the cluster's shared secret \
                 (internal-communication.shared-secret)",
            )),
        }
    }

    /// Whether the cluster has a shared secret (so that [`Self::sign`] signs).
    pub fn has_secret(&self) -> bool {
        self.token.is_some()
    }

    /// HMAC-SHA256 of `data` with the shared secret's token: what a node proves to another
    /// through a client (a result ticket the scheduler signs and an executor checks). `None`
    /// without a secret.
    pub fn sign(&self, data: &[u8]) -> Option<Vec<u8>> {
        let token = self.token.as_ref()?;
        let mut mac = HmacSha256::new_from_slice(token.as_bytes()).ok()?;
        mac.update(data);
        Some(mac.finalize().into_bytes().to_vec())
    }

    /// Whether `signature` is [`Self::sign`]'s of `data` (compared in constant time); without
    /// a secret there is nothing to check and everything passes, as the interceptors let
    /// everything in.
    pub fn verify(&self, data: &[u8], signature: &[u8]) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        let Ok(mut mac) = HmacSha256::new_from_slice(token.as_bytes()) else {
            return false;
        };
        mac.update(data);
        mac.verify_slice(signature).is_ok()
    }
}

type HmacSha256 = hmac::Hmac<Sha256>;

/// The token of a secret: SHA-256 of a label and the secret (the secret itself never travels).
fn token_of(secret: &str) -> String {
    Sha256::new()
        .chain_update(b"tributary internal communication\0")
        .chain_update(secret.as_bytes())
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `endpoint` with another scheme, with Ballista's default connect timeout, keep-alives and
/// HTTP/2 windows (an endpoint's settings cannot be read back, so they are set again).
fn with_scheme(endpoint: &Endpoint, scheme: &str) -> Result<Endpoint, SecurityError> {
    let mut parts = endpoint.uri().clone().into_parts();
    parts.scheme = Some(scheme.parse().map_err(|_| SecurityError::Pem {
        key: "internal-communication.https.required",
        path: endpoint.uri().to_string(),
        message: "not a URL".into(),
    })?);
    let uri = http::Uri::from_parts(parts).map_err(|e| SecurityError::Pem {
        key: "internal-communication.https.required",
        path: endpoint.uri().to_string(),
        message: e.to_string(),
    })?;
    // No request timeout: shuffle and result streams last as long as their data.
    Ok(Endpoint::from(uri)
        .connect_timeout(std::time::Duration::from_secs(20))
        .tcp_nodelay(true)
        .initial_connection_window_size(Some(64 << 20))
        .initial_stream_window_size(Some(16 << 20))
        .tcp_keepalive(Some(std::time::Duration::from_secs(3600)))
        .http2_keep_alive_interval(std::time::Duration::from_secs(300))
        .keep_alive_timeout(std::time::Duration::from_secs(20))
        .keep_alive_while_idle(true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interceptor_wants_the_token() {
        let secured = InternalSecurity::new(None, Some("s3cret"));
        let mut check = secured.interceptor();
        let endpoint = secured
            .with_token(Endpoint::from_static("http://127.0.0.1:1"))
            .expect("endpoint");
        let _ = endpoint;
        let mut request = Request::new(());
        let agent = format!("{AGENT}{} tonic/0.14", token_of("s3cret"));
        request
            .metadata_mut()
            .insert("user-agent", agent.parse().expect("ascii"));
        assert!(check(request).is_ok());
        let mut request = Request::new(());
        let wrong = format!("{AGENT}{} tonic/0.14", token_of("guess"));
        request
            .metadata_mut()
            .insert("user-agent", wrong.parse().expect("ascii"));
        assert_eq!(
            check(request).expect_err("refused").code(),
            tonic::Code::Unauthenticated
        );
        assert!(check(Request::new(())).is_err());
        // Without a secret everything passes.
        assert!(InternalSecurity::default().interceptor()(Request::new(())).is_ok());
        assert!(!format!("{secured:?}").contains(&token_of("s3cret")));
    }

    #[test]
    fn what_one_node_signs_another_checks_and_requests_are_marked_not_refused() {
        let scheduler = InternalSecurity::new(None, Some("s3cret"));
        let executor = InternalSecurity::new(None, Some("s3cret"));
        let signature = scheduler.sign(b"partition 3").expect("signed");
        assert!(executor.verify(b"partition 3", &signature));
        assert!(!executor.verify(b"partition 4", &signature));
        assert!(!InternalSecurity::new(None, Some("guess")).verify(b"partition 3", &signature));
        assert!(InternalSecurity::default().sign(b"partition 3").is_none());

        let mut mark = executor.marking_interceptor();
        let stranger = mark(Request::new(())).expect("marked, not refused");
        assert_eq!(
            InternalSecurity::check_internal(&stranger)
                .expect_err("not internal")
                .code(),
            tonic::Code::Unauthenticated
        );
        let mut request = Request::new(());
        let agent = format!("{AGENT}{} tonic/0.14", token_of("s3cret"));
        request
            .metadata_mut()
            .insert("user-agent", agent.parse().expect("ascii"));
        let node = mark(request).expect("marked");
        assert!(InternalSecurity::check_internal(&node).is_ok());
        // Without a secret every request is the cluster's.
        let open = InternalSecurity::default().marking_interceptor()(Request::new(()));
        assert!(InternalSecurity::check_internal(&open.expect("marked")).is_ok());
    }
}
