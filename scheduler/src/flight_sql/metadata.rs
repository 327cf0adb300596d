//! Flight SQL metadata commands (catalogs, schemas, tables, table types, keys) answered from
//! the session's DataFusion catalogs, in exactly the schemas the spec gives.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use arrow_flight::sql::{
    CommandGetCatalogs, CommandGetDbSchemas, CommandGetTableTypes, CommandGetTables,
};
use datafusion::error::Result;
use datafusion::prelude::SessionContext;
use tributary_connector::Catalogs;

pub(crate) fn catalogs(ctx: &SessionContext) -> Result<RecordBatch> {
    let mut b = CommandGetCatalogs {}.into_builder();
    let mut names = ctx.catalog_names();
    names.sort();
    for n in names {
        b.append(n);
    }
    b.build().map_err(external)
}

pub(crate) fn db_schemas(
    ctx: &SessionContext,
    loaded: &Catalogs,
    cmd: &CommandGetDbSchemas,
) -> Result<RecordBatch> {
    let mut b = cmd.clone().into_builder();
    for (c, schemas) in catalog_schemas(ctx, loaded, cmd.catalog.as_deref())? {
        for s in schemas {
            b.append(&c, s);
        }
    }
    b.build().map_err(external)
}

pub(crate) async fn tables(
    ctx: &SessionContext,
    loaded: &Catalogs,
    cmd: &CommandGetTables,
) -> Result<RecordBatch> {
    let mut b = cmd.clone().into_builder();
    for (c, schemas) in catalog_schemas(ctx, loaded, cmd.catalog.as_deref())? {
        let Some(provider) = ctx.catalog(&c) else {
            continue;
        };
        for s in schemas {
            if cmd
                .db_schema_filter_pattern
                .as_deref()
                .is_some_and(|p| !crate::local::like_match(&s, p))
            {
                continue;
            }
            let Some(schema) = provider.schema(&s) else {
                continue;
            };
            let mut names = match loaded.find(&c) {
                Some(connector) => connector
                    .table_names(&s)
                    .map_err(datafusion::error::DataFusionError::from)?
                    .unwrap_or_default(),
                None => schema.table_names(),
            };
            crate::access::visible_tables(ctx, &c, &s, &mut names);
            names.sort();
            for t in names {
                if cmd
                    .table_name_filter_pattern
                    .as_deref()
                    .is_some_and(|p| !crate::local::like_match(&t, p))
                {
                    continue;
                }
                let Some(table) = schema.table(&t).await? else {
                    continue;
                };
                let kind = if s == "information_schema" {
                    "SYSTEM TABLE"
                } else if table.table_type() == datafusion::logical_expr::TableType::View {
                    "VIEW"
                } else {
                    "TABLE"
                };
                let mut columns = table.schema().as_ref().clone();
                if let Some(scope) = crate::access::AccessScope::of(ctx) {
                    // Columns the user may not read are left out, as in SHOW COLUMNS.
                    let name = datafusion::common::ResolvedTableReference {
                        catalog: c.as_str().into(),
                        schema: s.as_str().into(),
                        table: t.as_str().into(),
                    };
                    let denied = scope
                        .denied_columns(&name, columns.fields().iter().map(|f| f.name().as_str()));
                    columns = Schema::new(
                        columns
                            .fields()
                            .iter()
                            .filter(|f| !denied.contains(f.name()))
                            .cloned()
                            .collect::<Vec<_>>(),
                    );
                }
                b.append(&c, &s, &t, kind, &with_column_metadata(&columns))
                    .map_err(external)?;
            }
        }
    }
    b.build().map_err(external)
}

/// JDBC's `getColumns` reads these field metadata keys from `table_schema`. Hidden
/// columns are left out, as Trino's `getColumns` does.
fn with_column_metadata(schema: &Schema) -> Schema {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .filter(|f| !tributary_connector::is_hidden(f))
        .map(|f| {
            let (precision, scale) = match f.data_type() {
                DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => {
                    (i32::from(*p), i32::from(*s))
                }
                _ => (0, 0),
            };
            let mut metadata = f.metadata().clone();
            metadata.insert(
                "ARROW:FLIGHT:SQL:TYPE_NAME".into(),
                trino_type_name(f.data_type()),
            );
            metadata.insert("ARROW:FLIGHT:SQL:PRECISION".into(), precision.to_string());
            metadata.insert("ARROW:FLIGHT:SQL:SCALE".into(), scale.to_string());
            metadata.insert("ARROW:FLIGHT:SQL:IS_AUTO_INCREMENT".into(), "0".into());
            metadata.insert("ARROW:FLIGHT:SQL:IS_CASE_SENSITIVE".into(), "1".into());
            metadata.insert("ARROW:FLIGHT:SQL:IS_READ_ONLY".into(), "1".into());
            metadata.insert("ARROW:FLIGHT:SQL:IS_SEARCHABLE".into(), "1".into());
            metadata.insert("ARROW:FLIGHT:SQL:REMARKS".into(), String::new());
            f.as_ref().clone().with_metadata(metadata)
        })
        .collect();
    Schema::new(fields)
}

/// The catalogs (sorted, only `filter` when given; an empty filter means "objects without a
/// catalog": there are none) with their sorted schema names.
fn catalog_schemas(
    ctx: &SessionContext,
    loaded: &Catalogs,
    filter: Option<&str>,
) -> Result<Vec<(String, Vec<String>)>> {
    let mut catalogs = ctx.catalog_names();
    catalogs.sort();
    let mut out = Vec::new();
    for c in catalogs {
        if filter.is_some_and(|f| f != c) {
            continue;
        }
        let names = crate::local::schema_names(ctx, loaded, &c);
        if let Some(mut schemas) = listed(names, &c, filter.is_some())? {
            schemas.sort();
            out.push((c, schemas));
        }
    }
    Ok(out)
}

/// A catalog's schemas. One that cannot list them (its source is down) fails a request
/// that names it, and is left out (with a warning) of a request over every catalog, so one
/// unreachable database does not hide the others from a client's object browser.
fn listed(
    names: crate::error::Result<Vec<String>>,
    catalog: &str,
    named: bool,
) -> Result<Option<Vec<String>>> {
    match names {
        Ok(names) => Ok(Some(names)),
        Err(e) if named => Err(unlisted(e)),
        Err(e) => {
            tracing::warn!("catalog '{catalog}' left out of a metadata listing: {e}");
            Ok(None)
        }
    }
}

/// A catalog that cannot list its schemas (its source is unreachable): the connector's error.
fn unlisted(e: crate::error::SchedulerError) -> datafusion::error::DataFusionError {
    match e {
        crate::error::SchedulerError::Unavailable(message) => {
            datafusion::error::DataFusionError::IoError(std::io::Error::other(message))
        }
        other => datafusion::error::DataFusionError::External(Box::new(other)),
    }
}

fn external(e: arrow_flight::error::FlightError) -> datafusion::error::DataFusionError {
    datafusion::error::DataFusionError::External(Box::new(e))
}

pub(crate) fn table_types() -> Result<RecordBatch> {
    let mut b = CommandGetTableTypes {}.into_builder();
    for kind in ["SYSTEM TABLE", "TABLE", "VIEW"] {
        b.append(kind);
    }
    b.build().map_err(external)
}

fn utf8(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

/// `CommandGetPrimaryKeys` result schema (Flight SQL spec).
pub(crate) fn primary_keys_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        utf8("catalog_name", true),
        utf8("db_schema_name", true),
        utf8("table_name", false),
        utf8("column_name", false),
        utf8("key_name", true),
        Field::new("key_sequence", DataType::Int32, false),
    ]))
}

fn foreign_keys_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        utf8("pk_catalog_name", true),
        utf8("pk_db_schema_name", true),
        utf8("pk_table_name", false),
        utf8("pk_column_name", false),
        utf8("fk_catalog_name", true),
        utf8("fk_db_schema_name", true),
        utf8("fk_table_name", false),
        utf8("fk_column_name", false),
        Field::new("key_sequence", DataType::Int32, false),
        utf8("fk_key_name", true),
        utf8("pk_key_name", true),
        Field::new("update_rule", DataType::UInt8, false),
        Field::new("delete_rule", DataType::UInt8, false),
    ]))
}

/// `CommandGetExportedKeys` result schema.
pub(crate) fn exported_keys_schema() -> SchemaRef {
    foreign_keys_schema()
}

/// `CommandGetImportedKeys` result schema.
pub(crate) fn imported_keys_schema() -> SchemaRef {
    foreign_keys_schema()
}

/// `CommandGetCrossReference` result schema.
pub(crate) fn cross_reference_schema() -> SchemaRef {
    foreign_keys_schema()
}

/// No rows, in `schema` (keys are unknown to Tributary: empty, not an error).
pub(crate) fn empty_batch(schema: SchemaRef) -> RecordBatch {
    RecordBatch::new_empty(schema)
}

/// The Trino name of an Arrow type (what `DESCRIBE` shows and JDBC's TYPE_NAME carries).
pub(crate) fn trino_type_name(dt: &DataType) -> String {
    use arrow::datatypes::TimeUnit;
    let precision = |unit: &TimeUnit| match unit {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 3,
        TimeUnit::Microsecond => 6,
        TimeUnit::Nanosecond => 9,
    };
    match dt {
        DataType::Null => "unknown".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Int8 => "tinyint".into(),
        DataType::Int16 | DataType::UInt8 => "smallint".into(),
        DataType::Int32 | DataType::UInt16 => "integer".into(),
        DataType::Int64 | DataType::UInt32 => "bigint".into(),
        DataType::UInt64 => "decimal(20,0)".into(),
        DataType::Float16 | DataType::Float32 => "real".into(),
        DataType::Float64 => "double".into(),
        DataType::Decimal32(p, s)
        | DataType::Decimal64(p, s)
        | DataType::Decimal128(p, s)
        | DataType::Decimal256(p, s) => {
            format!("decimal({p},{s})")
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "varchar".into(),
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => "varbinary".into(),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Time32(u) | DataType::Time64(u) => format!("time({})", precision(u)),
        DataType::Timestamp(u, None) => format!("timestamp({})", precision(u)),
        DataType::Timestamp(u, Some(_)) => format!("timestamp({}) with time zone", precision(u)),
        DataType::Interval(arrow::datatypes::IntervalUnit::YearMonth) => {
            "interval year to month".into()
        }
        DataType::Interval(_) | DataType::Duration(_) => "interval day to second".into(),
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::ListView(f)
        | DataType::LargeListView(f)
        | DataType::FixedSizeList(f, _) => {
            format!("array({})", trino_type_name(f.data_type()))
        }
        DataType::Map(f, _) => match f.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => {
                format!(
                    "map({}, {})",
                    trino_type_name(kv[0].data_type()),
                    trino_type_name(kv[1].data_type())
                )
            }
            other => format!("map({})", trino_type_name(other)),
        },
        DataType::Struct(fields) => format!(
            "row({})",
            fields
                .iter()
                .map(|f| format!("{} {}", f.name(), trino_type_name(f.data_type())))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        DataType::Dictionary(_, v) => trino_type_name(v),
        DataType::RunEndEncoded(_, v) => trino_type_name(v.data_type()),
        DataType::Union(..) => "union".into(),
    }
}
