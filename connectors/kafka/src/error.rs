//! Errors of the Kafka connector. Messages name the catalog, the topic (or description file)
//! and the brokers, so that a user can tell which of several Kafka clusters failed.

use std::path::PathBuf;

/// Result type of this crate.
pub type Result<T, E = KafkaError> = std::result::Result<T, E>;

/// What went wrong in a Kafka catalog.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// A catalog property is wrong (reported through the SPI's property errors).
    #[error(transparent)]
    Config(#[from] tributary_connector::ConnectorError),
    /// A topic description file cannot be read or does not describe a table.
    #[error("topic description {}: {message}", path.display())]
    Description {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the field.
        message: String,
    },
    /// The brokers could not be reached or refused a request.
    #[error("catalog '{catalog}': {what} (brokers {brokers}): {message}")]
    Broker {
        /// The catalog.
        catalog: String,
        /// What was being done, naming the topic.
        what: String,
        /// `kafka.nodes`.
        brokers: String,
        /// librdkafka's words.
        message: String,
    },
    /// A topic named by a table does not exist on the brokers.
    #[error(
        "catalog '{catalog}': topic '{topic}' of table {table} does not exist on brokers {brokers}"
    )]
    MissingTopic {
        /// The catalog.
        catalog: String,
        /// The topic.
        topic: String,
        /// `schema.table`.
        table: String,
        /// `kafka.nodes`.
        brokers: String,
    },
    /// A value cannot be written in the table's message format.
    #[error("table {table}: {message}")]
    Encode {
        /// `catalog.schema.table`.
        table: String,
        /// What and where.
        message: String,
    },
    /// A split or an encoded table is malformed (a bug or a version mismatch).
    #[error("{0}")]
    Internal(String),
}

impl From<KafkaError> for datafusion::error::DataFusionError {
    fn from(e: KafkaError) -> Self {
        match e {
            // Transient: Ballista retries tasks failing with I/O errors.
            KafkaError::Broker { .. } => {
                datafusion::error::DataFusionError::IoError(std::io::Error::other(e.to_string()))
            }
            KafkaError::Config(e) => e.into(),
            KafkaError::Internal(m) => datafusion::error::DataFusionError::Internal(m),
            other => datafusion::error::DataFusionError::Plan(other.to_string()),
        }
    }
}

impl From<KafkaError> for tributary_connector::ConnectorError {
    fn from(e: KafkaError) -> Self {
        match e {
            KafkaError::Config(e) => e,
            other => tributary_connector::ConnectorError::DataFusion(other.into()),
        }
    }
}
