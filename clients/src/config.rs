//! `etc/config.properties`: Trino's node configuration, the keys Tributary applies (memory and
//! spill limits, authentication types, JWT) typed and checked, Trino's keys that Tributary's
//! flags replace accepted and named in the log, anything else refused with the closest known key.

use std::path::{Path, PathBuf};

use tributary_connector::Properties;
use tributary_executor::MemoryConfig;
use tributary_scheduler::session::{SessionDefaults, session_property_of_config_key};
use tributary_scheduler::{Authenticator, JwtConfig, JwtVerifier};
use tributary_security::{InternalSecurity, load_ca, load_identity};

/// The file, as Trino names it.
pub(crate) const CONFIG_PROPERTIES: &str = "config.properties";

/// Trino settings whose role Tributary's command-line flags play (roles, ports, discovery) or
/// that have no counterpart: accepted, so that a Trino file loads.
const IGNORED: [&str; 12] = [
    "http-server.https.port",
    "coordinator",
    "node-scheduler.include-coordinator",
    "http-server.http.port",
    "discovery.uri",
    "discovery-server.enabled",
    "task.concurrency",
    "task.max-worker-threads",
    "web-ui.enabled",
    "query.max-history",
    "exchange.http-client.max-connections",
    "node-scheduler.max-splits-per-node",
];

/// Clients' authentication (`http-server.authentication.*`).
#[derive(Debug, Clone, Default)]
pub(crate) struct AuthenticationConfig {
    /// `PASSWORD` among the types (or no types given).
    pub password: bool,
    /// `PASSWORD` named explicitly: a password file must exist.
    pub password_required: bool,
    /// `JWT` among the types, with its settings.
    pub jwt: Option<JwtConfig>,
}

/// What `etc/config.properties` sets.
#[derive(Clone)]
pub(crate) struct NodeConfig {
    /// Memory and spill limits of executors.
    pub memory: MemoryConfig,
    /// How clients authenticate to the scheduler.
    pub authentication: AuthenticationConfig,
    /// TLS of the Flight SQL port (`http-server.https.*`).
    pub flight_sql_tls: Option<tonic::transport::ServerTlsConfig>,
    /// TLS and the shared secret between nodes (`internal-communication.*`).
    pub internal: InternalSecurity,
    /// `query.client.timeout`: how long a client may leave a result unread before it counts
    /// as gone (default 5m, as Trino).
    pub client_timeout: std::time::Duration,
    /// Defaults of session properties (`join-distribution-type`, `query.max-run-time`, …).
    pub session_defaults: SessionDefaults,
    /// `flight-sql.results-from-executors`: clients read job results from the executors.
    pub results_from_executors: bool,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            memory: MemoryConfig::default(),
            authentication: AuthenticationConfig::default(),
            flight_sql_tls: None,
            internal: InternalSecurity::default(),
            client_timeout: tributary_scheduler::CLIENT_TIMEOUT,
            session_defaults: SessionDefaults::default(),
            results_from_executors: false,
        }
    }
}

impl std::fmt::Debug for NodeConfig {
    // Neither keys nor the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeConfig")
            .field("memory", &self.memory)
            .field("authentication", &self.authentication)
            .field("flight_sql_tls", &self.flight_sql_tls.is_some())
            .field("internal", &self.internal)
            .field("client_timeout", &self.client_timeout)
            .field("session_defaults", &self.session_defaults)
            .field("results_from_executors", &self.results_from_executors)
            .finish()
    }
}

fn size(
    reader: &mut tributary_connector::PropertyReader<'_>,
    path: &Path,
    key: &str,
) -> Result<Option<u64>, String> {
    match reader.optional_string(key) {
        None => Ok(None),
        Some(text) => tributary_scheduler::session::parse_data_size(&text)
            .map(Some)
            .ok_or_else(|| {
                format!(
                    "{}: {key}={text}: expected a data size such as 4GB or 512MB",
                    path.display()
                )
            }),
    }
}

impl NodeConfig {
    /// Reads `<etc>/config.properties` (absent: defaults).
    pub(crate) fn load(etc: &Path) -> Result<Self, String> {
        let path = etc.join(CONFIG_PROPERTIES);
        if !path.exists() {
            return Ok(Self {
                authentication: AuthenticationConfig {
                    password: true,
                    ..AuthenticationConfig::default()
                },
                ..Self::default()
            });
        }
        let props = Properties::load(&path).map_err(|e| e.to_string())?;
        let mut reader = props.reader("server configuration");
        let relative = |file: String| tributary_connector::installation_path(etc, file);
        for key in IGNORED {
            if reader.optional_string(key).is_some() {
                tracing::info!(
                    "{}: {key} is ignored (set by Tributary's flags)",
                    path.display()
                );
            }
        }

        let max_memory = size(&mut reader, &path, "query.max-memory")?;
        let per_node = size(&mut reader, &path, "query.max-memory-per-node")?;
        let memory = MemoryConfig {
            // One query may not use more on one node than it may use in all.
            max_memory_per_node: match (per_node, max_memory) {
                (Some(n), Some(m)) => Some(n.min(m)),
                (n, m) => n.or(m),
            },
            max_total_memory_per_node: size(&mut reader, &path, "query.max-total-memory-per-node")?,
            heap_headroom_per_node: size(&mut reader, &path, "memory.heap-headroom-per-node")?,
            spill_enabled: reader
                .optional::<bool>("spill-enabled", "true or false")
                .map_err(|e| e.to_string())?,
            spill_paths: reader
                .optional_string("spiller-spill-path")
                .map(|p| p.split(',').map(|p| PathBuf::from(p.trim())).collect())
                .unwrap_or_default(),
            max_spill_per_node: size(&mut reader, &path, "max-spill-per-node")?,
        };
        // Accepted: a query's spill is bounded by the node's.
        let _ = size(&mut reader, &path, "query-max-spill-per-node")?;

        let explicit = reader.optional_string("http-server.authentication.type");
        let mut authentication = AuthenticationConfig::default();
        let types = explicit.clone().unwrap_or_else(|| "PASSWORD".to_owned());
        if types.split(',').all(|t| t.trim().is_empty()) {
            return Err(format!(
                "{}: http-server.authentication.type is empty (PASSWORD, JWT or both)",
                path.display()
            ));
        }
        for kind in types.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            match kind.to_ascii_uppercase().as_str() {
                "PASSWORD" => {
                    authentication.password = true;
                    authentication.password_required = explicit.is_some();
                }
                "JWT" => authentication.jwt = Some(JwtConfig::default()),
                other => {
                    return Err(format!(
                        "{}: http-server.authentication.type: {other} is not supported \
                         (PASSWORD, JWT)",
                        path.display()
                    ));
                }
            }
        }
        if let Some(jwt) = &mut authentication.jwt {
            jwt.key_file = relative(
                reader
                    .required_string(
                        "http-server.authentication.jwt.key-file",
                        "the path of the JWT signing key (PEM public key or base64 HMAC secret)",
                    )
                    .map_err(|e| e.to_string())?,
            );
            jwt.required_issuer =
                reader.optional_string("http-server.authentication.jwt.required-issuer");
            jwt.required_audience =
                reader.optional_string("http-server.authentication.jwt.required-audience");
            jwt.principal_field =
                reader.optional_string("http-server.authentication.jwt.principal-field");
            jwt.user_mapping_pattern =
                reader.optional_string("http-server.authentication.jwt.user-mapping.pattern");
        }

        let security = |e: tributary_security::SecurityError| format!("{}: {e}", path.display());
        let https = reader
            .optional::<bool>("http-server.https.enabled", "true or false")
            .map_err(|e| e.to_string())?
            .unwrap_or(false);
        let keystore = reader
            .optional_string("http-server.https.keystore.path")
            .map(&relative);
        // Accepted: PEM keys are not encrypted (an encrypted one is refused when read).
        let _ = reader.optional_secret("http-server.https.keystore.key");
        let flight_sql_tls = match (&keystore, https) {
            (Some(path), true) => Some(tonic::transport::ServerTlsConfig::new().identity(
                load_identity("http-server.https.keystore.path", path).map_err(security)?,
            )),
            (None, true) => {
                return Err(format!(
                    "{}: http-server.https.enabled=true needs http-server.https.keystore.path \
                     (a PEM file with the certificate chain and the private key)",
                    path.display()
                ));
            }
            _ => None,
        };

        let internal_https = reader
            .optional::<bool>("internal-communication.https.required", "true or false")
            .map_err(|e| e.to_string())?
            .unwrap_or(false);
        let internal_keystore = reader
            .optional_string("internal-communication.https.keystore.path")
            .map(&relative)
            .or(keystore);
        let _ = reader.optional_secret("internal-communication.https.keystore.key");
        let truststore = reader
            .optional_string("internal-communication.https.truststore.path")
            .map(&relative);
        let _ = reader.optional_secret("internal-communication.https.truststore.key");
        let secret = reader.optional_secret("internal-communication.shared-secret");
        let internal_tls = if internal_https {
            let (Some(keystore), Some(truststore)) = (&internal_keystore, &truststore) else {
                return Err(format!(
                    "{}: internal-communication.https.required=true needs \
                     internal-communication.https.keystore.path (or \
                     http-server.https.keystore.path) and \
                     internal-communication.https.truststore.path (the CA's PEM certificate)",
                    path.display()
                ));
            };
            Some((
                load_identity("internal-communication.https.keystore.path", keystore)
                    .map_err(security)?,
                load_ca("internal-communication.https.truststore.path", truststore)
                    .map_err(security)?,
            ))
        } else {
            None
        };
        if let Some(secret) = &secret
            && secret.expose().len() < 16
        {
            return Err(format!(
                "{}: internal-communication.shared-secret is too short (16 characters or more)",
                path.display()
            ));
        }
        let client_timeout = match reader.optional_string("query.client.timeout") {
            None => tributary_scheduler::CLIENT_TIMEOUT,
            Some(text) => tributary_connector::parse_duration(&text)
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    format!(
                        "{}: query.client.timeout={text}: expected a duration such as 5m or 30s",
                        path.display()
                    )
                })?,
        };
        // Trino's configuration properties that are the defaults of session properties.
        let entries: Vec<(String, String)> = props
            .keys()
            .filter(|key| session_property_of_config_key(key).is_some())
            .filter_map(|key| Some((key.to_owned(), reader.optional_string(key)?)))
            .collect();
        let session_defaults = SessionDefaults::from_config(entries)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let results_from_executors = reader
            .optional::<bool>("flight-sql.results-from-executors", "true or false")
            .map_err(|e| e.to_string())?
            .unwrap_or(false);
        reader.finish().map_err(|e| e.to_string())?;
        Ok(Self {
            memory,
            authentication,
            flight_sql_tls,
            internal: InternalSecurity::new(internal_tls, secret.as_ref().map(|s| s.expose())),
            client_timeout,
            session_defaults,
            results_from_executors,
        })
    }

    /// Refuses results read from the executors (`flight-sql.results-from-executors`) where
    /// clients authenticate and the executors could not check the scheduler's signature in
    /// their place (no `internal-communication.shared-secret`).
    pub(crate) fn check_results_from_executors(
        &self,
        etc: &Path,
        authenticated: bool,
    ) -> Result<(), String> {
        if self.results_from_executors && authenticated && !self.internal.has_secret() {
            return Err(format!(
                "{}: flight-sql.results-from-executors=true needs \
                 internal-communication.shared-secret: clients authenticate, and the executors \
                 check the scheduler's signature on each result ticket in their place",
                etc.join(CONFIG_PROPERTIES).display()
            ));
        }
        Ok(())
    }

    /// The scheduler's authenticator: the password file (`--password-file`, else
    /// `etc/password-authenticator.properties`) when `PASSWORD` is on, and JWT when `JWT` is.
    pub(crate) fn authenticator(
        &self,
        etc: &Path,
        password_file: Option<&Path>,
    ) -> Result<Option<Authenticator>, String> {
        let passwords = if self.authentication.password {
            match password_file {
                Some(file) => {
                    Some(Authenticator::from_password_file(file).map_err(|e| e.to_string())?)
                }
                None => Authenticator::from_etc(etc).map_err(|e| e.to_string())?,
            }
        } else {
            None
        };
        if self.authentication.password_required && passwords.is_none() {
            return Err(format!(
                "{}: http-server.authentication.type includes PASSWORD, but there is no \
                 {} (or --password-file)",
                etc.join(CONFIG_PROPERTIES).display(),
                etc.join(tributary_scheduler::PASSWORD_AUTHENTICATOR_PROPERTIES)
                    .display()
            ));
        }
        match &self.authentication.jwt {
            None => Ok(passwords),
            Some(jwt) => {
                let verifier = JwtVerifier::new(jwt).map_err(|e| e.to_string())?;
                let with_passwords = passwords.is_some();
                Ok(Some(
                    passwords
                        .unwrap_or_else(Authenticator::open)
                        .with_jwt(verifier, with_passwords),
                ))
            }
        }
    }
}
