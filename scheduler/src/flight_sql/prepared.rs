//! Prepared statements: parsed once, schema and parameter types known at prepare time
//! (JDBC treats a prepared statement without a dataset schema as an update).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::logical_expr::LogicalPlan;

use crate::engine::client_schema;
use crate::error::{Result, SchedulerError};
use crate::statement::Statement;

/// One prepared statement.
#[derive(Debug, Clone)]
pub(super) struct Prepared {
    /// The statement's text, as the client sent it.
    pub sql: String,
    /// The statement.
    pub statement: Statement,
    /// Schema of its rows (empty for statements that return none).
    pub dataset_schema: SchemaRef,
    /// One nullable field per `?`, in order.
    pub parameter_schema: SchemaRef,
    /// Parameters bound by the last DoPut.
    pub parameters: Option<RecordBatch>,
}

impl Prepared {
    /// Describes a statement, using its logical plan when it is DataFusion SQL.
    pub(super) fn new(statement: Statement, plan: Option<&LogicalPlan>) -> Result<Self> {
        let empty = Arc::new(Schema::empty());
        let (dataset_schema, parameter_schema) = match plan {
            Some(LogicalPlan::Ddl(_) | LogicalPlan::Statement(_)) => {
                (Arc::clone(&empty), Arc::clone(&empty))
            }
            Some(plan) => (
                client_schema(plan.schema().as_arrow()),
                parameter_schema(plan)?,
            ),
            None => (static_schema(&statement), Arc::clone(&empty)),
        };
        Ok(Self {
            sql: String::new(),
            statement,
            dataset_schema,
            parameter_schema,
            parameters: None,
        })
    }

    /// The bound parameters as DataFusion values (first row of the bound batch).
    pub(super) fn param_values(&self) -> Result<Option<ParamValues>> {
        let Some(batch) = &self.parameters else {
            return Ok(None);
        };
        if batch.num_rows() == 0 || batch.num_columns() == 0 {
            return Ok(None);
        }
        let values = batch
            .columns()
            .iter()
            .map(|c| ScalarValue::try_from_array(c, 0))
            .collect::<datafusion::error::Result<Vec<_>>>()?;
        Ok(Some(ParamValues::List(
            values.into_iter().map(Into::into).collect(),
        )))
    }
}

fn parameter_schema(plan: &LogicalPlan) -> Result<SchemaRef> {
    let types = plan.get_parameter_types()?;
    let mut ids: Vec<(usize, String, Option<DataType>)> = types
        .into_iter()
        .map(|(id, t)| {
            (
                id.trim_start_matches('$')
                    .parse::<usize>()
                    .unwrap_or(usize::MAX),
                id,
                t,
            )
        })
        .collect();
    ids.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    let fields: Vec<Field> = ids
        .into_iter()
        // JDBC cannot bind to Null: an untyped parameter is declared as a string.
        .map(|(_, id, t)| {
            Field::new(
                id,
                t.filter(|t| *t != DataType::Null).unwrap_or(DataType::Utf8),
                true,
            )
        })
        .collect();
    Ok(Arc::new(Schema::new(fields)))
}

fn static_schema(statement: &Statement) -> SchemaRef {
    let names: &[&str] = match statement {
        Statement::ShowCatalogs { .. } => &["Catalog"],
        Statement::ShowSchemas { .. } => &["Schema"],
        Statement::ShowTables { .. } => &["Table"],
        Statement::ShowColumns { .. } => &["Column", "Type", "Extra", "Comment"],
        Statement::ShowSession => &["Name", "Value", "Default", "Type", "Description"],
        Statement::ShowCreateTable { .. } => &["Create Table"],
        Statement::ShowCreateView {
            materialized: false,
            ..
        } => &["Create View"],
        Statement::ShowCreateView {
            materialized: true, ..
        } => &["Create Materialized View"],
        Statement::ExplainDistributed { .. } => &["plan_type", "plan"],
        Statement::SetSession { .. }
        | Statement::ResetSession { .. }
        | Statement::Use { .. }
        | Statement::ShowPartitions { .. }
        | Statement::Call { .. }
        | Statement::CreateView { .. }
        | Statement::CreateMaterializedView { .. }
        | Statement::RefreshMaterializedView { .. }
        | Statement::DropView { .. }
        | Statement::Sql(_) => &[],
    };
    Arc::new(Schema::new(
        names
            .iter()
            .map(|n| Field::new(*n, DataType::Utf8, false))
            .collect::<Vec<_>>(),
    ))
}

/// Prepared statements by handle.
#[derive(Debug, Default)]
pub(super) struct PreparedStore {
    statements: Mutex<HashMap<Vec<u8>, Prepared>>,
}

impl PreparedStore {
    /// Keeps a statement; returns its handle.
    pub(super) fn insert(&self, prepared: Prepared) -> Vec<u8> {
        let handle = uuid::Uuid::new_v4().as_bytes().to_vec();
        self.statements
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(handle.clone(), prepared);
        handle
    }

    /// A copy of a statement.
    pub(super) fn get(&self, handle: &[u8]) -> Result<Prepared> {
        self.statements
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(handle)
            .cloned()
            .ok_or_else(|| SchedulerError::UnknownHandle("prepared statement".into()))
    }

    /// Binds parameters.
    pub(super) fn bind(&self, handle: &[u8], parameters: RecordBatch) -> Result<()> {
        let mut statements = self.statements.lock().unwrap_or_else(|e| e.into_inner());
        let prepared = statements
            .get_mut(handle)
            .ok_or_else(|| SchedulerError::UnknownHandle("prepared statement".into()))?;
        prepared.parameters = Some(parameters);
        Ok(())
    }

    /// Forgets a statement.
    pub(super) fn remove(&self, handle: &[u8]) {
        self.statements
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(handle);
    }
}
