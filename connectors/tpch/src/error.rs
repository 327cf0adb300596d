//! Errors of the TPC-H connector.

/// What went wrong in the TPC-H connector.
#[derive(Debug, thiserror::Error)]
pub enum TpchError {
    /// A schema name is neither `tiny` nor `sf<number>`.
    #[error(
        "unknown TPC-H schema '{0}': use 'tiny' (scale factor 0.01) or 'sf<scale factor>', e.g. 'sf1'"
    )]
    UnknownSchema(String),
    /// A table name is not one of the eight TPC-H tables.
    #[error("unknown TPC-H table '{0}'")]
    UnknownTable(String),
    /// A serialized table description is malformed.
    #[error("malformed TPC-H table description '{0}'")]
    MalformedTable(String),
    /// A split name is malformed.
    #[error("malformed TPC-H split '{0}': expected '<table>/<part>-of-<parts>'")]
    MalformedSplit(String),
}

impl From<TpchError> for tributary_connector::ConnectorError {
    fn from(e: TpchError) -> Self {
        tributary_connector::ConnectorError::DataFusion(datafusion::error::DataFusionError::Plan(
            e.to_string(),
        ))
    }
}
