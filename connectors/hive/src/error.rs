//! Errors of the Hive connector. Messages name the catalog, the table or location and the
//! cause; never a secret.

/// Result type of this crate.
pub type Result<T, E = HiveError> = std::result::Result<T, E>;

/// What went wrong in a Hive catalog.
#[derive(Debug, thiserror::Error)]
pub enum HiveError {
    /// A catalog property is wrong (reported through the SPI's property errors).
    #[error(transparent)]
    Config(#[from] tributary_connector::ConnectorError),
    /// Storage could not be reached or refused a request.
    #[error("{what}: {message}")]
    Storage {
        /// What was being done (names the table or location).
        what: String,
        /// The storage's words.
        message: String,
    },
    /// A location is not a URL the connector can use.
    #[error("invalid location '{location}': {reason}")]
    InvalidLocation {
        /// The location as written.
        location: String,
        /// Why.
        reason: String,
    },
    /// A table or schema property is wrong.
    #[error("{target}: {message}")]
    InvalidProperty {
        /// `table hive.default.orders` or `schema hive.x`.
        target: String,
        /// What is wrong.
        message: String,
    },
    /// Data in storage does not fit the table (bad partition value, corrupt metadata).
    #[error("table {table}: {message}")]
    BadData {
        /// Qualified table name.
        table: String,
        /// What and where.
        message: String,
    },
    /// A write was stopped (its statement killed) before it became visible.
    #[error("writing {table}: {message}; nothing was written")]
    Stopped {
        /// Qualified table name.
        table: String,
        /// Why it was stopped.
        message: String,
    },
    /// A schema or table does not exist, or already exists.
    #[error("{0}")]
    Metadata(String),
    /// A statement is not supported by this connector.
    #[error("{0}")]
    NotSupported(String),
}

impl HiveError {
    /// A storage failure while doing `what`.
    pub(crate) fn storage(what: impl Into<String>, error: &object_store::Error) -> Self {
        Self::Storage {
            what: what.into(),
            message: storage_message(error),
        }
    }
}

/// The useful part of an object store error: S3's error code and message rather than the
/// whole HTTP exchange.
pub(crate) fn storage_message(error: &object_store::Error) -> String {
    let text = error.to_string();
    for code in [
        "NoSuchBucket",
        "SignatureDoesNotMatch",
        "InvalidAccessKeyId",
        "AccessDenied",
    ] {
        if text.contains(code) {
            let hint = match code {
                "NoSuchBucket" => "the bucket does not exist",
                "SignatureDoesNotMatch" => "the secret key is wrong",
                "InvalidAccessKeyId" => "the access key is not known to the server",
                _ => "access denied",
            };
            return format!("{code}: {hint}");
        }
    }
    if let object_store::Error::NotFound { path, .. } = error {
        return format!("not found: {path}");
    }
    text
}

impl From<datafusion::error::DataFusionError> for HiveError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        HiveError::Metadata(e.to_string())
    }
}

impl From<HiveError> for datafusion::error::DataFusionError {
    fn from(e: HiveError) -> Self {
        match e {
            HiveError::Storage { .. } => {
                datafusion::error::DataFusionError::IoError(std::io::Error::other(e.to_string()))
            }
            HiveError::Config(e) => e.into(),
            HiveError::Metadata(m) => datafusion::error::DataFusionError::Plan(m),
            other => datafusion::error::DataFusionError::Plan(other.to_string()),
        }
    }
}

impl From<HiveError> for tributary_connector::ConnectorError {
    fn from(e: HiveError) -> Self {
        match e {
            HiveError::Config(e) => e,
            other => tributary_connector::ConnectorError::DataFusion(other.into()),
        }
    }
}
