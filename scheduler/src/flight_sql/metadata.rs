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
pub(crate) fn trino_type_name(dt: &DataType) -> String { format!("{dt}").to_lowercase() }
