//! The check of a statement's plan: every table it reads and writes, the columns it really
//! reads where rules deny some, what it creates and drops, the settings it changes.

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{ResolvedTableReference, TableReference};
use datafusion::logical_expr::{DdlStatement, LogicalPlan, WriteOp};
use datafusion::prelude::SessionContext;

use super::{AccessScope, Privilege, denied};
use crate::error::{Result, SchedulerError};

impl AccessScope {
    /// Checks everything a statement's plan reads and writes: SELECT on every table scanned
    /// (and on the columns it reads, where rules deny some), INSERT on an INSERT's target,
    /// OWNERSHIP for creating and dropping tables and views, schema ownership for schemas.
    pub fn check_plan(&self, ctx: &SessionContext, plan: &LogicalPlan) -> Result<()> {
        let state = ctx.state();
        let options = state.config().options();
        let (catalog, schema) = (
            options.catalog.default_catalog.clone(),
            options.catalog.default_schema.clone(),
        );
        let resolve = |name: &TableReference| name.clone().resolve(&catalog, &schema);
        let mut restricted = false;
        let mut failure = None;
        plan.apply_with_subqueries(|node| {
            let checked = match node {
                LogicalPlan::TableScan(scan) => {
                    let table = resolve(&scan.table_name);
                    restricted |= self.restricts_columns(&table);
                    self.check_table(&table, Privilege::Select)
                }
                LogicalPlan::Dml(dml) => match dml.op {
                    WriteOp::Insert(_) => {
                        self.check_table(&resolve(&dml.table_name), Privilege::Insert)
                    }
                    WriteOp::Delete => {
                        self.check_table(&resolve(&dml.table_name), Privilege::Delete)
                    }
                    WriteOp::Update => {
                        self.check_table(&resolve(&dml.table_name), Privilege::Update)
                    }
                    _ => self.check_table(&resolve(&dml.table_name), Privilege::Ownership),
                },
                LogicalPlan::Ddl(ddl) => self.check_ddl(ddl, &resolve, &catalog),
                // `SET datafusion.… = …` is a session property too.
                LogicalPlan::Statement(datafusion::logical_expr::Statement::SetVariable(set)) => {
                    self.check_session_property(&set.variable)
                }
                _ => Ok(()),
            };
            match checked {
                Ok(()) => Ok(TreeNodeRecursion::Continue),
                Err(e) => {
                    failure = Some(e);
                    Ok(TreeNodeRecursion::Stop)
                }
            }
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        if restricted {
            self.check_columns(plan, &resolve)?;
        }
        Ok(())
    }

    /// Creating (`action` "create") and dropping or changing a table or view need OWNERSHIP
    /// of it (or of its schema); the message says what was refused, as Trino's.
    pub fn check_owner(
        &self,
        table: &ResolvedTableReference,
        action: &str,
        kind: &str,
    ) -> Result<()> {
        let checked = if action == "create" {
            self.check_create(table)
        } else {
            self.check_table(table, Privilege::Ownership)
        };
        checked.map_err(|e| match e {
            SchedulerError::AccessDenied(m) if m.starts_with("Cannot access catalog") => {
                SchedulerError::AccessDenied(m)
            }
            _ => denied(format!(
                "Cannot {action} {kind} {}.{}.{}",
                table.catalog, table.schema, table.table
            )),
        })
    }

    fn check_ddl(
        &self,
        ddl: &DdlStatement,
        resolve: &dyn Fn(&TableReference) -> ResolvedTableReference,
        default_catalog: &str,
    ) -> Result<()> {
        // Creating and dropping need OWNERSHIP of the table (or of its schema); the message
        // says what was refused, as Trino's.
        let own = |name: &TableReference, action: &str, kind: &str| {
            self.check_owner(&resolve(name), action, kind)
        };
        match ddl {
            DdlStatement::CreateMemoryTable(c) => own(&c.name, "create", "table"),
            // An external table reads any location the scheduler's and executors' stores reach
            // (local files included: etc/, keys): not under access control.
            DdlStatement::CreateExternalTable(c) => Err(denied(format!(
                "Cannot create external table {}: CREATE EXTERNAL TABLE is not allowed under \
                 access control (create tables in a catalog)",
                c.name
            ))),
            DdlStatement::CreateView(c) => {
                // A view's query is checked as its readers' (their rights on its tables), so
                // its table names must not depend on the reader's USE.
                let mut partial = None;
                c.input.apply_with_subqueries(|node| {
                    if let LogicalPlan::TableScan(scan) = node
                        && !matches!(scan.table_name, TableReference::Full { .. })
                    {
                        partial = Some(scan.table_name.to_string());
                        return Ok(TreeNodeRecursion::Stop);
                    }
                    Ok(TreeNodeRecursion::Continue)
                })?;
                if let Some(name) = partial {
                    return Err(denied(format!(
                        "Cannot create view {}: under access control a view names its tables \
                         in full (catalog.schema.table), not '{name}'",
                        c.name
                    )));
                }
                own(&c.name, "create", "view")
            }
            DdlStatement::DropTable(d) => own(&d.name, "drop", "table"),
            DdlStatement::DropView(d) => own(&d.name, "drop", "view"),
            DdlStatement::CreateIndex(c) => own(&c.table, "create an index on", "table"),
            DdlStatement::CreateCatalogSchema(c) => {
                let (catalog, schema) = split_schema(&c.schema_name, default_catalog);
                self.check_schema_owner(&catalog, &schema, "create")
            }
            DdlStatement::DropCatalogSchema(d) => {
                let (catalog, schema) = match &d.name {
                    datafusion::common::SchemaReference::Bare { schema } => {
                        (default_catalog.to_owned(), schema.to_string())
                    }
                    datafusion::common::SchemaReference::Full { schema, catalog } => {
                        (catalog.to_string(), schema.to_string())
                    }
                };
                self.check_schema_owner(&catalog, &schema, "drop")
            }
            DdlStatement::CreateCatalog(c) => {
                Err(denied(format!("Cannot create catalog {}", c.catalog_name)))
            }
            _ => Err(denied(format!(
                "Cannot run {} under access control",
                ddl.name()
            ))),
        }
    }

    /// Column rules: the columns each scan of a restricted table really reads (its projection
    /// and pushed filters after DataFusion's own optimizer rules, without connectors' rules,
    /// which replace scans by remote queries).
    fn check_columns(
        &self,
        plan: &LogicalPlan,
        resolve: &dyn Fn(&TableReference) -> ResolvedTableReference,
    ) -> Result<()> {
        use datafusion::optimizer::{Optimizer, OptimizerContext};
        let optimized = Optimizer::new()
            .optimize(plan.clone(), &OptimizerContext::new(), |_, _| {})
            .map_err(SchedulerError::from)?;
        let mut failure = None;
        optimized.apply_with_subqueries(|node| {
            if let LogicalPlan::TableScan(scan) = node {
                let table = resolve(&scan.table_name);
                let schema = scan.source.schema();
                let mut read: Vec<String> = match &scan.projection {
                    Some(indices) => indices
                        .iter()
                        .map(|i| schema.field(*i).name().clone())
                        .collect(),
                    None => schema.fields().iter().map(|f| f.name().clone()).collect(),
                };
                for filter in &scan.filters {
                    read.extend(filter.column_refs().into_iter().map(|c| c.name.clone()));
                }
                let denied_columns = self.denied_columns(&table, read.iter().map(String::as_str));
                if !denied_columns.is_empty() {
                    let mut columns = denied_columns;
                    columns.sort();
                    columns.dedup();
                    failure = Some(denied(format!(
                        "Cannot select from columns [{}] in table or view {}.{}.{}",
                        columns.join(", "),
                        table.catalog,
                        table.schema,
                        table.table
                    )));
                    return Ok(TreeNodeRecursion::Stop);
                }
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        failure.map_or(Ok(()), Err)
    }
}

/// `catalog.schema` or `schema` (in the default catalog).
fn split_schema(name: &str, default_catalog: &str) -> (String, String) {
    match name.split_once('.') {
        Some((catalog, schema)) => (catalog.to_owned(), schema.to_owned()),
        None => (default_catalog.to_owned(), name.to_owned()),
    }
}
