//! Errors of the connector contract.

use std::path::PathBuf;

/// Result type of the connector contract.
pub type Result<T, E = ConnectorError> = std::result::Result<T, E>;

/// What went wrong while loading a catalog or running a connector's scan.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// A catalog file could not be read.
    #[error("cannot read catalog file {}: {source}", path.display())]
    ReadCatalogFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A catalog file is not a valid Java properties file.
    #[error("{}: line {line}: {message}", path.display())]
    PropertiesSyntax {
        /// The file.
        path: PathBuf,
        /// Line number, 1-based.
        line: usize,
        /// What the parser said.
        message: String,
    },
    /// `${ENV:NAME}` names a variable that is not set.
    #[error("{}: property '{key}' refers to environment variable '{variable}', which is not set", path.display())]
    MissingEnvironmentVariable {
        /// The file.
        path: PathBuf,
        /// The property.
        key: String,
        /// The variable.
        variable: String,
    },
    /// A required property is absent.
    #[error("{}: missing required property '{key}' ({expected})", path.display())]
    MissingProperty {
        /// The file.
        path: PathBuf,
        /// The property.
        key: String,
        /// What it should hold.
        expected: String,
    },
    /// A property is not known to the connector (often a misspelling).
    #[error("{}: unknown property '{key}' for connector '{connector}'{}", path.display(), suggestion.as_ref().map(|s| format!(" (did you mean '{s}'?)")).unwrap_or_default())]
    UnknownProperty {
        /// The file.
        path: PathBuf,
        /// The property.
        key: String,
        /// The connector that does not know it.
        connector: String,
        /// A known property that looks alike.
        suggestion: Option<String>,
    },
    /// A property's value is not what the connector expects.
    #[error("{}: invalid value '{value}' for property '{key}': expected {expected}", path.display())]
    InvalidProperty {
        /// The file.
        path: PathBuf,
        /// The property.
        key: String,
        /// The value found (secrets are masked).
        value: String,
        /// What was expected.
        expected: String,
    },
    /// `connector.name` names no registered connector.
    #[error("{}: unknown connector '{name}' in 'connector.name'; available connectors: {available}", path.display())]
    UnknownConnector {
        /// The file.
        path: PathBuf,
        /// The name found.
        name: String,
        /// Names that are registered.
        available: String,
    },
    /// A catalog file name is not a valid catalog name.
    #[error("{}: '{name}' is not a valid catalog name (use letters, digits and '_')", path.display())]
    InvalidCatalogName {
        /// The file.
        path: PathBuf,
        /// The name.
        name: String,
    },
    /// A plan names a catalog this process has not loaded.
    #[error(
        "catalog '{0}' is not configured on this node; every scheduler and executor must load the same etc/catalog files"
    )]
    UnknownCatalog(String),
    /// A split name cannot be read by the connector that planned it.
    #[error("invalid split '{split}' for {connector}: {reason}")]
    InvalidSplit {
        /// The connector.
        connector: String,
        /// The split.
        split: String,
        /// Why.
        reason: String,
    },
    /// A serialized scan could not be decoded.
    #[error("cannot decode {what}: {reason}")]
    Decode {
        /// What was being decoded.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// What a catalog cannot do (views in a catalog without them, …).
    #[error("{0}")]
    NotSupported(String),
    /// An error of the query engine.
    #[error(transparent)]
    DataFusion(#[from] datafusion::error::DataFusionError),
    /// An Arrow error.
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
}

impl From<ConnectorError> for datafusion::error::DataFusionError {
    fn from(e: ConnectorError) -> Self {
        match e {
            ConnectorError::DataFusion(e) => e,
            ConnectorError::Arrow(e) => {
                datafusion::error::DataFusionError::ArrowError(Box::new(e), None)
            }
            other => datafusion::error::DataFusionError::External(Box::new(other)),
        }
    }
}
