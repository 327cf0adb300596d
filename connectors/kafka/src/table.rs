//! A Kafka table's columns: the key's fields, the message's fields, then the internal
//! columns (Trino's names, behind `kafka.internal-column-prefix`).

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde::{Deserialize, Serialize};
use tributary_connector::hide;

use crate::description::TableDescription;
use crate::error::{KafkaError, Result};
use crate::types::headers_type;

/// The internal columns every Kafka table has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Internal {
    /// `_partition_id`
    PartitionId,
    /// `_partition_offset`
    PartitionOffset,
    /// `_message_corrupt`
    MessageCorrupt,
    /// `_message`
    Message,
    /// `_message_length`
    MessageLength,
    /// `_headers`
    Headers,
    /// `_key_corrupt`
    KeyCorrupt,
    /// `_key`
    Key,
    /// `_key_length`
    KeyLength,
    /// `_timestamp`
    Timestamp,
    /// `_offset`: `_partition_offset` under the name users write.
    Offset,
}

impl Internal {
    /// All internal columns, in table order.
    pub const ALL: [Internal; 11] = [
        Self::PartitionId,
        Self::PartitionOffset,
        Self::MessageCorrupt,
        Self::Message,
        Self::MessageLength,
        Self::Headers,
        Self::KeyCorrupt,
        Self::Key,
        Self::KeyLength,
        Self::Timestamp,
        Self::Offset,
    ];

    /// The name after the prefix.
    pub fn suffix(self) -> &'static str {
        match self {
            Self::PartitionId => "partition_id",
            Self::PartitionOffset => "partition_offset",
            Self::MessageCorrupt => "message_corrupt",
            Self::Message => "message",
            Self::MessageLength => "message_length",
            Self::Headers => "headers",
            Self::KeyCorrupt => "key_corrupt",
            Self::Key => "key",
            Self::KeyLength => "key_length",
            Self::Timestamp => "timestamp",
            Self::Offset => "offset",
        }
    }

    fn data_type(self) -> DataType {
        match self {
            Self::PartitionId
            | Self::PartitionOffset
            | Self::MessageLength
            | Self::KeyLength
            | Self::Offset => DataType::Int64,
            Self::MessageCorrupt | Self::KeyCorrupt => DataType::Boolean,
            Self::Message | Self::Key => DataType::Utf8,
            Self::Headers => headers_type(),
            Self::Timestamp => DataType::Timestamp(TimeUnit::Millisecond, None),
        }
    }
}

/// Where a column's values come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Field `i` of the key.
    Key(usize),
    /// Field `i` of the message.
    Message(usize),
    /// An internal column.
    Internal(Internal),
}

/// One column of a Kafka table.
#[derive(Debug, Clone)]
pub struct Column {
    /// Column name.
    pub name: String,
    /// Where its values come from.
    pub source: Source,
    /// Arrow field (hidden columns carry the hidden mark).
    pub field: Field,
}

/// Everything needed to plan and read one table; travels to executors inside the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableSpec {
    /// The topic description.
    pub description: TableDescription,
    /// `kafka.internal-column-prefix`.
    pub internal_prefix: String,
    /// `kafka.hide-internal-columns`.
    pub hide_internal: bool,
}

impl TableSpec {
    /// The columns, in table order; a described field named like an internal column is an
    /// error naming both.
    pub fn columns(&self) -> Result<Vec<Column>> {
        let mut columns = Vec::new();
        let groups = [
            (self.description.key.as_ref(), true),
            (self.description.message.as_ref(), false),
        ];
        for (group, is_key) in groups {
            for (i, f) in group.iter().flat_map(|g| g.fields.iter()).enumerate() {
                let field = Field::new(&f.name, f.ty.arrow(), true);
                columns.push(Column {
                    name: f.name.clone(),
                    source: if is_key {
                        Source::Key(i)
                    } else {
                        Source::Message(i)
                    },
                    field: if f.hidden { hide(field) } else { field },
                });
            }
        }
        for internal in Internal::ALL {
            let name = format!("{}{}", self.internal_prefix, internal.suffix());
            // Nullable, so that an INSERT naming only the described fields leaves them NULL.
            let field = Field::new(&name, internal.data_type(), true);
            // `_offset` is an alias: always hidden, so SELECT * shows the offset once.
            let hidden = self.hide_internal || internal == Internal::Offset;
            columns.push(Column {
                name,
                source: Source::Internal(internal),
                field: if hidden { hide(field) } else { field },
            });
        }
        for (i, c) in columns.iter().enumerate() {
            if let Some(other) = columns[..i]
                .iter()
                .find(|o| o.name.eq_ignore_ascii_case(&c.name))
            {
                let what = match (other.source, c.source) {
                    (_, Source::Internal(_)) => format!(
                        "field '{}' has the name of an internal column (change the field's name or kafka.internal-column-prefix)",
                        other.name
                    ),
                    _ => format!("two fields are named '{}'", c.name),
                };
                return Err(KafkaError::Description {
                    path: format!(
                        "table {}.{}",
                        self.description.schema, self.description.table
                    )
                    .into(),
                    message: what,
                });
            }
        }
        Ok(columns)
    }

    /// The Arrow schema of the table.
    pub fn schema(&self) -> Result<SchemaRef> {
        let fields: Vec<Field> = self.columns()?.into_iter().map(|c| c.field).collect();
        Ok(Arc::new(Schema::new(fields)))
    }

    /// `schema.table`.
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.description.schema, self.description.table)
    }
}
