//! What an executor is sent of a table, for reading its ORC files or writing its files: its
//! name, location and columns ([`TableSpec`], serialisable), rebuilt as a [`TableShape`].

use std::sync::Arc;

use arrow::datatypes::{FieldRef, Schema, SchemaRef};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use tributary_connector::{ConnectorError, decode_schema, encode_schema};

use crate::storage::Location;
use crate::table_info::TableInfo;

/// A table as sent to executors.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TableSpec {
    qualified: String,
    location: String,
    /// Data columns then partition columns: base64 of DataFusion's protobuf schema.
    schema: String,
    /// How many of the last columns are partition columns.
    partition_columns: usize,
}

/// A table's name, location and columns.
#[derive(Debug, Clone)]
pub(crate) struct TableShape {
    /// Qualified name, for messages.
    pub(crate) qualified: String,
    /// Where its files are.
    pub(crate) location: Location,
    /// Data columns, then partition columns.
    pub(crate) schema: SchemaRef,
    /// The columns in the files.
    pub(crate) data_schema: SchemaRef,
    /// The columns of the partition directories.
    pub(crate) partition_fields: Vec<FieldRef>,
}

impl From<&TableInfo> for TableShape {
    fn from(info: &TableInfo) -> Self {
        Self {
            qualified: info.qualified.clone(),
            location: info.location.clone(),
            schema: Arc::clone(&info.schema),
            data_schema: Arc::clone(&info.data_schema),
            partition_fields: info.partition_fields.clone(),
        }
    }
}

impl TableShape {
    /// The shape as sent to executors.
    pub(crate) fn to_spec(&self) -> tributary_connector::Result<TableSpec> {
        Ok(TableSpec {
            qualified: self.qualified.clone(),
            location: self.location.to_string(),
            schema: BASE64.encode(encode_schema(&self.schema)?),
            partition_columns: self.partition_fields.len(),
        })
    }

    /// The shape an executor was sent.
    pub(crate) fn from_spec(spec: &TableSpec) -> tributary_connector::Result<Self> {
        let bytes = BASE64
            .decode(&spec.schema)
            .map_err(|e| ConnectorError::Decode {
                what: "table schema",
                reason: e.to_string(),
            })?;
        let schema = Arc::new(decode_schema(&bytes)?);
        let split = schema.fields().len().saturating_sub(spec.partition_columns);
        Ok(Self {
            qualified: spec.qualified.clone(),
            location: Location::parse(&spec.location)?,
            data_schema: Arc::new(Schema::new(schema.fields()[..split].to_vec())),
            partition_fields: schema.fields()[split..].to_vec(),
            schema,
        })
    }
}
