//! A table as the connector uses it, read from its metastore entry, and the entry built from
//! `CREATE TABLE … WITH (…)`.
//!
//! Table properties (Trino's names, plus one of ours):
//!
//! | property | meaning |
//! | --- | --- |
//! | `format` | `PARQUET` (default: `hive.storage-format`), `ORC`, `CSV`, `JSON`, `TEXTFILE` |
//! | `external_location` | an external table over existing files; DROP TABLE keeps them |
//! | `partitioned_by` | `ARRAY['year','month']`: the last columns, stored as `key=value` directories |
//! | `skip_header_line_count` | CSV/TEXTFILE header lines (0 or 1) |
//! | `csv_separator`, `csv_quote`, `csv_escape` | CSV characters |
//! | `textfile_field_separator` | TEXTFILE separator (default `\u0001`) |
//! | `partition_date_column` | the DATE/TIMESTAMP column the `year`/`month`/`day` directories derive from (see below) |
//!
//! Date-derived partitions: when a table's files sit in `year=…/month=…[/day=…]` (or
//! `date=…`/`dt=…`) directories — declared as partition columns or not — a filter on the
//! date column the directories derive from prunes whole directories: `order_date >= DATE
//! '2025-09-01'` reads `year=2025/month=9` and later only. The column is
//! `partition_date_column`. When it is not given, `CREATE TABLE` infers it for a Parquet
//! table with exactly one DATE column whose location already holds such directories, and
//! only if every file's footer statistics put that column inside its directory's dates (so a
//! table partitioned by something else, say an ingestion date, is never pruned by it);
//! `SHOW CREATE TABLE` shows the result. `partition_date_column = ''` turns it off. Rows are
//! still filtered after pruning.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use tributary_connector::{PropertyValue, TableProperties};

use crate::config::{Format, HiveConfig};
use crate::error::{HiveError, Result};
use crate::metastore::{Column, EXTERNAL_TABLE, MANAGED_TABLE, TableMetadata};
use crate::storage::Location;
use crate::types::{arrow_type, hive_type};

/// Table parameter holding the ids of writes that have not committed.
pub const PENDING_WRITES: &str = "tributary.pending-writes";
/// Table parameter: where a managed table keeps its data when not in the metastore directory.
pub const LOCATION: &str = "tributary.location";
/// Table parameter: the date column partition directories derive from.
pub const DATE_COLUMN: &str = "tributary.partition-date-column";

/// The table properties, as `system.metadata.table_properties` lists them.
pub(crate) const PROPERTIES: [tributary_connector::PropertySpec; 9] = [
    spec(
        "format",
        "'PARQUET'",
        "Storage format: PARQUET (default: hive.storage-format), ORC, CSV, JSON, TEXTFILE",
    ),
    spec(
        "external_location",
        "",
        "An external table over existing files; DROP TABLE keeps them",
    ),
    spec_typed(
        "partitioned_by",
        "ARRAY[]",
        "array(varchar)",
        "Partition columns (the last columns), stored as key=value directories",
    ),
    spec_typed(
        "skip_header_line_count",
        "0",
        "integer",
        "CSV/TEXTFILE header lines (0 or 1)",
    ),
    spec("csv_separator", "','", "CSV field separator"),
    spec("csv_quote", "'\"'", "CSV quote character"),
    spec("csv_escape", "", "CSV escape character"),
    spec(
        "textfile_field_separator",
        "'\\u0001'",
        "TEXTFILE field separator",
    ),
    spec(
        "partition_date_column",
        "",
        "The DATE/TIMESTAMP column year=/month=/day= directories derive from ('' turns inference off)",
    ),
];

const fn spec(
    name: &'static str,
    default: &'static str,
    description: &'static str,
) -> tributary_connector::PropertySpec {
    spec_typed(name, default, "varchar", description)
}

pub(crate) const fn spec_typed(
    name: &'static str,
    default: &'static str,
    sql_type: &'static str,
    description: &'static str,
) -> tributary_connector::PropertySpec {
    tributary_connector::PropertySpec {
        name,
        default,
        sql_type,
        description,
    }
}

const KNOWN: [&str; 9] = [
    "format",
    "external_location",
    "partitioned_by",
    "skip_header_line_count",
    "csv_separator",
    "csv_quote",
    "csv_escape",
    "textfile_field_separator",
    "partition_date_column",
];

/// What the connector needs to know about a table.
#[derive(Debug, Clone)]
pub struct TableInfo {
    /// `catalog.schema.table`.
    pub qualified: String,
    /// Data columns, then partition columns.
    pub schema: SchemaRef,
    /// Data columns (what the files hold).
    pub data_schema: SchemaRef,
    /// Declared partition columns.
    pub partition_fields: Vec<Arc<Field>>,
    /// Storage format.
    pub format: Format,
    /// Where the files are.
    pub location: Location,
    /// An external table (DROP keeps the data).
    pub external: bool,
    /// The column date-derived directories prune by (explicit), `Some("")` when switched off.
    pub date_column: Option<String>,
    /// Writes not committed yet.
    pub pending: Vec<String>,
    /// CSV/TEXTFILE: header lines, separator, quote, escape.
    pub text: TextOptions,
    /// `SHOW CREATE TABLE`.
    pub definition: String,
}

/// Options of CSV and TEXTFILE tables.
#[derive(Debug, Clone, Copy)]
pub struct TextOptions {
    /// Files start with a header line.
    pub header: bool,
    /// Field separator.
    pub separator: u8,
    /// Quote character.
    pub quote: u8,
    /// Escape character.
    pub escape: Option<u8>,
}

fn field(column: &Column, table: &str) -> Result<Field> {
    let data_type = arrow_type(&column.hive_type).ok_or_else(|| HiveError::BadData {
        table: table.to_owned(),
        message: format!(
            "column '{}' has type '{}', which is not supported",
            column.name, column.hive_type
        ),
    })?;
    Ok(Field::new(&column.name, data_type, true))
}

impl TableInfo {
    /// Reads a metastore entry.
    pub fn from_metadata(
        qualified: String,
        metadata: &TableMetadata,
        default_location: Location,
    ) -> Result<Self> {
        let data: Vec<Field> = metadata
            .data_columns
            .iter()
            .map(|c| field(c, &qualified))
            .collect::<Result<_>>()?;
        let partition_fields: Vec<Arc<Field>> = metadata
            .partition_columns
            .iter()
            .map(|c| field(c, &qualified).map(Arc::new))
            .collect::<Result<_>>()?;
        let data_schema = Arc::new(Schema::new(data.clone()));
        let mut all = data;
        all.extend(partition_fields.iter().map(|f| f.as_ref().clone()));
        let format_name = metadata
            .storage_format
            .clone()
            .unwrap_or_else(|| "PARQUET".into());
        let format = Format::parse(&format_name).ok_or_else(|| HiveError::BadData {
            table: qualified.clone(),
            message: format!("unknown storage format '{format_name}'"),
        })?;
        let external = metadata.table_type == EXTERNAL_TABLE;
        let location = match (
            &metadata.external_location,
            metadata.parameters.get(LOCATION),
        ) {
            (Some(l), _) | (None, Some(l)) => Location::parse(l)?,
            (None, None) => default_location,
        };
        let serde = &metadata.serde_parameters;
        let char_of = |key: &str, default: u8| {
            serde
                .get(key)
                .and_then(|s| s.bytes().next())
                .unwrap_or(default)
        };
        let text = TextOptions {
            header: serde
                .get("skip.header.line.count")
                .is_some_and(|v| v.trim() == "1"),
            separator: if format == Format::Csv {
                char_of("separatorChar", b',')
            } else {
                char_of("field.delim", 1)
            },
            quote: char_of("quoteChar", b'"'),
            escape: serde.get("escapeChar").and_then(|s| s.bytes().next()),
        };
        let pending = metadata
            .parameters
            .get(PENDING_WRITES)
            .map(|p| {
                p.split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let mut info = Self {
            qualified,
            schema: Arc::new(Schema::new(all)),
            data_schema,
            partition_fields,
            format,
            location,
            external,
            date_column: metadata.parameters.get(DATE_COLUMN).cloned(),
            pending,
            text,
            definition: String::new(),
        };
        info.definition = info.render(metadata);
        Ok(info)
    }

    /// The date column that `year`/`month`/`day` directories prune by, if any.
    pub fn derived_date_column(&self) -> Option<&str> {
        self.date_column.as_deref().filter(|c| !c.is_empty())
    }

    /// The column `CREATE TABLE` may infer as `partition_date_column`: the only DATE data
    /// column of a Parquet table that names none.
    pub fn inferable_date_column(&self) -> Option<&str> {
        if self.date_column.is_some() || self.format != Format::Parquet {
            return None;
        }
        let mut dates = self
            .data_schema
            .fields()
            .iter()
            .filter(|f| f.data_type() == &DataType::Date32);
        let first = dates.next()?;
        dates.next().is_none().then_some(first.name().as_str())
    }

    fn render(&self, metadata: &TableMetadata) -> String {
        let mut sql = format!("CREATE TABLE {} (\n", self.qualified);
        let columns: Vec<String> = metadata
            .data_columns
            .iter()
            .chain(&metadata.partition_columns)
            .map(|c| format!("   {} {}", c.name, trino_type(&c.hive_type)))
            .collect();
        sql.push_str(&columns.join(",\n"));
        sql.push_str("\n)\nWITH (\n");
        let mut props = vec![];
        if self.external {
            props.push(format!("   external_location = '{}'", self.location));
        }
        props.push(format!("   format = '{}'", self.format.name()));
        if !metadata.partition_columns.is_empty() {
            let names: Vec<String> = metadata
                .partition_columns
                .iter()
                .map(|c| format!("'{}'", c.name))
                .collect();
            props.push(format!("   partitioned_by = ARRAY[{}]", names.join(", ")));
        }
        if let Some(c) = &self.date_column {
            props.push(format!("   partition_date_column = '{c}'"));
        }
        if self.text.header {
            props.push("   skip_header_line_count = 1".into());
        }
        sql.push_str(&props.join(",\n"));
        sql.push_str("\n)");
        sql
    }
}

/// Trino's spelling of a Hive type.
fn trino_type(hive: &str) -> String {
    match hive {
        "string" => "varchar".into(),
        "int" => "integer".into(),
        "float" => "real".into(),
        "binary" => "varbinary".into(),
        "timestamp" => "timestamp(6)".into(),
        other => other.replace("array<", "array(").replace('>', ")"),
    }
}

/// Builds the metastore entry of `CREATE TABLE schema.table (columns) WITH (properties)`.
pub fn new_table_metadata(
    config: &HiveConfig,
    schema_location: Option<&str>,
    (schema, table): (&str, &str),
    columns: &Schema,
    properties: &TableProperties,
) -> Result<TableMetadata> {
    let target = format!("table {}.{schema}.{table}", config.catalog);
    let invalid = |message: String| HiveError::InvalidProperty {
        target: target.clone(),
        message,
    };
    for name in properties.names() {
        if !KNOWN.contains(&name) {
            return Err(invalid(format!(
                "unknown table property '{name}' (known: {})",
                KNOWN.join(", ")
            )));
        }
    }
    let string = |name: &str| -> Result<Option<String>> {
        match properties.get(name) {
            None => Ok(None),
            Some(PropertyValue::String(s)) => Ok(Some(s.clone())),
            Some(PropertyValue::Number(n)) => Ok(Some(n.clone())),
            Some(other) => Err(invalid(format!(
                "property '{name}' must be a string, not {other}"
            ))),
        }
    };
    let format = match string("format")? {
        None => config.default_format,
        Some(name) => Format::parse(&name).ok_or_else(|| {
            invalid(format!(
                "unknown format '{name}': expected one of {}",
                Format::NAMES.join(", ")
            ))
        })?,
    };
    let partitioned_by: Vec<String> = match properties.get("partitioned_by") {
        None => vec![],
        Some(PropertyValue::Array(items)) => items
            .iter()
            .map(|v| match v {
                PropertyValue::String(s) => Ok(s.to_ascii_lowercase()),
                other => Err(invalid(format!(
                    "partitioned_by must list column names as strings, not {other}"
                ))),
            })
            .collect::<Result<_>>()?,
        Some(other) => {
            return Err(invalid(format!(
                "partitioned_by must be ARRAY['col', …], not {other}"
            )));
        }
    };
    let mut data_columns = Vec::new();
    let mut partition_columns = Vec::new();
    for f in columns.fields() {
        let hive = hive_type(f.data_type()).ok_or_else(|| {
            invalid(format!(
                "column '{}' has type {}, which Hive tables cannot store",
                f.name(),
                f.data_type()
            ))
        })?;
        let column = Column {
            name: f.name().to_ascii_lowercase(),
            hive_type: hive,
            comment: None,
        };
        if partitioned_by.contains(&column.name) {
            partition_columns.push(column);
        } else {
            if !partition_columns.is_empty() {
                return Err(invalid(
                    "partition columns must be the last columns of the table".into(),
                ));
            }
            data_columns.push(column);
        }
    }
    for name in &partitioned_by {
        if !partition_columns.iter().any(|c| &c.name == name) {
            return Err(invalid(format!(
                "partition column '{name}' is not a column of the table"
            )));
        }
    }
    let order: Vec<&String> = partition_columns.iter().map(|c| &c.name).collect();
    if order != partitioned_by.iter().collect::<Vec<_>>() {
        return Err(invalid(
            "partition columns must be listed in partitioned_by in table column order".into(),
        ));
    }
    if data_columns.is_empty() {
        return Err(invalid(
            "a table needs at least one column that is not a partition column".into(),
        ));
    }
    let mut parameters = BTreeMap::new();
    if let Some(column) = string("partition_date_column")? {
        let column = column.to_ascii_lowercase();
        if !column.is_empty()
            && !data_columns
                .iter()
                .any(|c| c.name == column && (c.hive_type == "date" || c.hive_type == "timestamp"))
        {
            return Err(invalid(format!(
                "partition_date_column '{column}' is not a DATE or TIMESTAMP column of the table"
            )));
        }
        parameters.insert(DATE_COLUMN.to_owned(), column);
    }
    let mut serde_parameters = BTreeMap::new();
    if let Some(n) = string("skip_header_line_count")? {
        if n != "0" && n != "1" {
            return Err(invalid(format!(
                "skip_header_line_count must be 0 or 1, not {n}"
            )));
        }
        serde_parameters.insert("skip.header.line.count".to_owned(), n);
    }
    for (property, key) in [
        ("csv_separator", "separatorChar"),
        ("csv_quote", "quoteChar"),
        ("csv_escape", "escapeChar"),
        ("textfile_field_separator", "field.delim"),
    ] {
        if let Some(v) = string(property)? {
            if v.len() != 1 {
                return Err(invalid(format!(
                    "{property} must be a single character, not '{v}'"
                )));
            }
            serde_parameters.insert(key.to_owned(), v);
        }
    }
    let external_location = string("external_location")?
        .map(|l| Location::parse(&l).map(|l| l.to_string()))
        .transpose()?;
    let table_type = if external_location.is_some() {
        EXTERNAL_TABLE
    } else {
        MANAGED_TABLE
    };
    if external_location.is_none()
        && let Some(base) = schema_location
    {
        let location = Location::parse(base)?.child(table);
        parameters.insert(LOCATION.to_owned(), location.to_string());
    }
    Ok(TableMetadata {
        writer_version: Some(format!("tributary {}", env!("CARGO_PKG_VERSION"))),
        owner: Some("tributary".into()),
        table_type: table_type.to_owned(),
        data_columns,
        partition_columns,
        parameters,
        storage_format: Some(format.name().to_owned()),
        serde_parameters,
        external_location,
        view_original_text: None,
        view_expanded_text: None,
    })
}
