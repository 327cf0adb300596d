//! Errors of the SQL database connectors. Messages name the catalog and the server, never
//! the password.

use crate::config::SqlConfig;

/// Result type of this crate.
pub type Result<T, E = SqlError> = std::result::Result<T, E>;

/// What went wrong talking to a database.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// The server cannot be reached (refused, timed out, DNS).
    #[error("catalog '{catalog}': cannot connect to {dialect} at {address}: {message}")]
    Unreachable {
        /// Catalog.
        catalog: String,
        /// `mysql`, `postgresql`, `sqlite`.
        dialect: &'static str,
        /// host:port or file.
        address: String,
        /// The driver's words.
        message: String,
    },
    /// The server refused the credentials.
    #[error(
        "catalog '{catalog}': {dialect} at {address} refused the login of user '{user}': {message}"
    )]
    Authentication {
        /// Catalog.
        catalog: String,
        /// Database kind.
        dialect: &'static str,
        /// host:port.
        address: String,
        /// The user.
        user: String,
        /// The server's words.
        message: String,
    },
    /// The database rejected a statement.
    #[error("catalog '{catalog}': {message}")]
    Database {
        /// Catalog.
        catalog: String,
        /// The server's words (and what we asked, where it helps).
        message: String,
    },
    /// A value could not be converted between the database and Arrow.
    #[error("catalog '{catalog}', table {table}: {message}")]
    Conversion {
        /// Catalog.
        catalog: String,
        /// Table.
        table: String,
        /// What and why.
        message: String,
    },
    /// A statement is not supported by this connector.
    #[error("{0}")]
    NotSupported(String),
    /// A serialised table handle or split could not be read.
    #[error("invalid {what}: {reason}")]
    Decode {
        /// What.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// The connector's runtime failed.
    #[error("SQL connector runtime: {0}")]
    Runtime(String),
}

impl SqlError {
    /// Classifies a driver error for a catalog.
    pub(crate) fn from_sqlx(config: &SqlConfig, e: sqlx::Error) -> Self {
        let catalog = config.catalog.clone();
        let dialect = config.dialect.connector_name();
        let address = config.address.to_string();
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolClosed => SqlError::Unreachable {
                catalog,
                dialect,
                address,
                message: e.to_string(),
            },
            sqlx::Error::Database(db) => {
                let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
                // MySQL 1045 / PostgreSQL 28P01, 28000: bad user or password.
                if matches!(code.as_str(), "28000" | "28P01")
                    || db.message().contains("Access denied")
                {
                    SqlError::Authentication {
                        catalog,
                        dialect,
                        address,
                        user: config.user.clone().unwrap_or_default(),
                        message: db.message().to_owned(),
                    }
                } else {
                    SqlError::Database {
                        catalog,
                        message: db.message().to_owned(),
                    }
                }
            }
            other => SqlError::Database {
                catalog,
                message: other.to_string(),
            },
        }
    }

    /// Whether retrying may help (the server was unreachable).
    pub fn is_transient(&self) -> bool {
        matches!(self, SqlError::Unreachable { .. })
    }
}

impl From<SqlError> for datafusion::error::DataFusionError {
    fn from(e: SqlError) -> Self {
        if e.is_transient() {
            datafusion::error::DataFusionError::IoError(std::io::Error::other(e.to_string()))
        } else {
            datafusion::error::DataFusionError::External(Box::new(e))
        }
    }
}

impl From<SqlError> for tributary_connector::ConnectorError {
    fn from(e: SqlError) -> Self {
        tributary_connector::ConnectorError::DataFusion(e.into())
    }
}
