use std::sync::Arc;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use arrow_flight::sql::{CommandGetCatalogs, CommandGetDbSchemas, CommandGetTables, CommandGetTableTypes};
use datafusion::error::Result;
use datafusion::prelude::SessionContext;
pub(crate) fn catalogs(ctx: &SessionContext) -> Result<RecordBatch> {
    let mut b = CommandGetCatalogs {}.into_builder();
    let mut names = ctx.catalog_names(); names.sort();
    for n in names { b.append(n); }
    Ok(b.build().map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?)
}
pub(crate) fn db_schemas(ctx: &SessionContext, cmd: &CommandGetDbSchemas) -> Result<RecordBatch> {
    let mut b = cmd.clone().into_builder();
    for c in ctx.catalog_names() { if let Some(p) = ctx.catalog(&c) { for s in p.schema_names() { b.append(&c, s); } } }
    Ok(b.build().map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?)
}
pub(crate) async fn tables(ctx: &SessionContext, cmd: &CommandGetTables) -> Result<RecordBatch> {
    let mut b = cmd.clone().into_builder();
    for c in ctx.catalog_names() { if let Some(p) = ctx.catalog(&c) { for s in p.schema_names() { if let Some(sp) = p.schema(&s) { for t in sp.table_names() {
        if let Some(tp) = sp.table(&t).await? { b.append(&c, &s, &t, "TABLE", &tp.schema()).map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?; } } } } } }
    Ok(b.build().map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?)
}
pub(crate) fn table_types() -> Result<RecordBatch> {
    let mut b = CommandGetTableTypes {}.into_builder();
    b.append("TABLE"); b.append("VIEW");
    Ok(b.build().map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?)
}
fn keys() -> SchemaRef { Arc::new(Schema::new(vec![Field::new("catalog_name", DataType::Utf8, true)])) }
pub(crate) fn primary_keys_schema() -> SchemaRef { keys() }
pub(crate) fn exported_keys_schema() -> SchemaRef { keys() }
pub(crate) fn imported_keys_schema() -> SchemaRef { keys() }
pub(crate) fn cross_reference_schema() -> SchemaRef { keys() }
pub(crate) fn empty_batch(schema: SchemaRef) -> RecordBatch { RecordBatch::new_empty(schema) }
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
        DataType::Decimal32(p, s) | DataType::Decimal64(p, s) | DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => {
            format!("decimal({p},{s})")
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "varchar".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => "varbinary".into(),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Time32(u) | DataType::Time64(u) => format!("time({})", precision(u)),
        DataType::Timestamp(u, None) => format!("timestamp({})", precision(u)),
        DataType::Timestamp(u, Some(_)) => format!("timestamp({}) with time zone", precision(u)),
        DataType::Interval(arrow::datatypes::IntervalUnit::YearMonth) => "interval year to month".into(),
        DataType::Interval(_) | DataType::Duration(_) => "interval day to second".into(),
        DataType::List(f) | DataType::LargeList(f) | DataType::ListView(f) | DataType::LargeListView(f) | DataType::FixedSizeList(f, _) => {
            format!("array({})", trino_type_name(f.data_type()))
        }
        DataType::Map(f, _) => match f.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => {
                format!("map({}, {})", trino_type_name(kv[0].data_type()), trino_type_name(kv[1].data_type()))
            }
            other => format!("map({})", trino_type_name(other)),
        },
        DataType::Struct(fields) => format!(
            "row({})",
            fields.iter().map(|f| format!("{} {}", f.name(), trino_type_name(f.data_type()))).collect::<Vec<_>>().join(", ")
        ),
        DataType::Dictionary(_, v) => trino_type_name(v),
        DataType::RunEndEncoded(_, v) => trino_type_name(v.data_type()),
        DataType::Union(..) => "union".into(),
    }
}
