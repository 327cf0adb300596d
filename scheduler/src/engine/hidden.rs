//! Hidden columns (see `tributary_connector::is_hidden`): `SELECT *` and `t.*` leave them
//! out, while naming them still works. DataFusion has no such notion, so wildcards over
//! tables with hidden columns are rewritten in the parsed statement before planning:
//! `SELECT *` over one table gets `EXCLUDE (hidden…)`, over several tables becomes one
//! qualified wildcard per table, each excluding that table's hidden columns. An `INSERT`
//! without a column list into such a table gets the list of its visible columns.

use std::collections::HashMap;
use std::ops::ControlFlow;

use datafusion::common::TableReference;
use datafusion::error::Result as DfResult;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::planner::object_name_to_table_reference;
use datafusion::sql::sqlparser::ast::{
    ExcludeSelectItem, Ident, ObjectName, ObjectNamePart, Query, Select, SelectItem,
    SelectItemQualifiedWildcardKind, SetExpr, Statement as SqlStatement, TableFactor, TableObject,
    Visit, VisitMut, Visitor, VisitorMut, WildcardAdditionalOptions,
};
use tributary_connector::is_hidden;

/// Plans SQL text with hidden columns left out of wildcards.
pub(crate) async fn plan(ctx: &SessionContext, sql: &str) -> DfResult<LogicalPlan> {
    let state = ctx.state();
    let dialect = state.config().options().sql_parser.dialect;
    let mut statement = state.sql_to_statement(sql, &dialect)?;
    exclude_hidden(ctx, &state, &mut statement).await?;
    state.statement_to_plan(statement).await
}

/// Rewrites the wildcards of `statement` over tables that have hidden columns (and Trino's
/// type names DataFusion lacks: every statement planned from SQL text passes here).
pub(crate) async fn exclude_hidden(
    ctx: &SessionContext,
    state: &SessionState,
    statement: &mut DfStatement,
) -> DfResult<()> {
    super::trino_types::rewrite(statement);
    // Looking tables up costs catalog I/O (a metastore file, a database's catalog), and the
    // planner looks them up again: only statements the rewrite could change pay for it.
    if !rewritable(statement) {
        return Ok(());
    }
    let mut hidden: HashMap<TableReference, Columns> = HashMap::new();
    for reference in state.resolve_table_references(statement)? {
        let resolved = resolve(state, reference);
        // Unknown tables are reported by the planner, with its own message.
        let Ok(provider) = ctx.table_provider(resolved.clone()).await else {
            continue;
        };
        let schema = provider.schema();
        let (hidden_fields, visible_fields): (Vec<_>, Vec<_>) =
            schema.fields().iter().partition(|f| is_hidden(f));
        if !hidden_fields.is_empty() {
            hidden.insert(
                resolved,
                Columns {
                    hidden: hidden_fields.iter().map(|f| f.name().clone()).collect(),
                    visible: visible_fields.iter().map(|f| f.name().clone()).collect(),
                },
            );
        }
    }
    if hidden.is_empty() {
        return Ok(());
    }
    let mut rewriter = Rewriter {
        state,
        hidden: &hidden,
        normalize: state
            .config()
            .options()
            .sql_parser
            .enable_ident_normalization,
    };
    visit(statement, &mut rewriter);
    Ok(())
}

/// A table reference with the session's default catalog and schema filled in.
fn resolve(state: &SessionState, reference: TableReference) -> TableReference {
    let defaults = &state.config_options().catalog;
    TableReference::from(reference.resolve(&defaults.default_catalog, &defaults.default_schema))
}

/// Whether a statement has a wildcard in a SELECT list or an INSERT without a column list.
fn rewritable(statement: &DfStatement) -> bool {
    match statement {
        DfStatement::Statement(s) => s.visit(&mut Rewritable).is_break(),
        DfStatement::Explain(explain) => rewritable(&explain.statement),
        _ => false,
    }
}

struct Rewritable;

impl Visitor for Rewritable {
    type Break = ();

    fn pre_visit_statement(&mut self, statement: &SqlStatement) -> ControlFlow<()> {
        match statement {
            SqlStatement::Insert(insert) if insert.columns.is_empty() => ControlFlow::Break(()),
            _ => ControlFlow::Continue(()),
        }
    }

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if has_wildcard(&query.body) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }
}

fn has_wildcard(body: &SetExpr) -> bool {
    match body {
        SetExpr::Select(select) => select.projection.iter().any(|item| {
            matches!(
                item,
                SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
            )
        }),
        SetExpr::SetOperation { left, right, .. } => has_wildcard(left) || has_wildcard(right),
        // Nested queries are visited on their own.
        _ => false,
    }
}

fn visit(statement: &mut DfStatement, rewriter: &mut Rewriter<'_>) {
    match statement {
        DfStatement::Statement(s) => {
            let _ = s.visit(rewriter);
        }
        DfStatement::Explain(explain) => visit(&mut explain.statement, rewriter),
        _ => {}
    }
}

/// The columns of a table that has hidden ones.
struct Columns {
    hidden: Vec<String>,
    visible: Vec<String>,
}

struct Rewriter<'a> {
    state: &'a SessionState,
    hidden: &'a HashMap<TableReference, Columns>,
    normalize: bool,
}

/// A relation of a FROM clause: how to qualify its columns, and its hidden columns.
struct Relation {
    qualifier: Option<ObjectName>,
    hidden: Vec<String>,
}

impl Rewriter<'_> {
    fn columns(&self, name: &ObjectName) -> Option<&Columns> {
        object_name_to_table_reference(name.clone(), self.normalize)
            .ok()
            .map(|r| resolve(self.state, r))
            .and_then(|r| self.hidden.get(&r))
    }

    fn relation(&self, factor: &TableFactor) -> Relation {
        match factor {
            TableFactor::Table { name, alias, .. } => {
                let hidden = self
                    .columns(name)
                    .map(|c| c.hidden.clone())
                    .unwrap_or_default();
                let qualifier = match alias {
                    Some(a) => ObjectName(vec![ObjectNamePart::Identifier(a.name.clone())]),
                    None => name.clone(),
                };
                Relation {
                    qualifier: Some(qualifier),
                    hidden,
                }
            }
            TableFactor::Derived { alias, .. } => Relation {
                qualifier: alias
                    .as_ref()
                    .map(|a| ObjectName(vec![ObjectNamePart::Identifier(a.name.clone())])),
                hidden: vec![],
            },
            _ => Relation {
                qualifier: None,
                hidden: vec![],
            },
        }
    }

    fn rewrite_select(&self, select: &mut Select) {
        let relations: Vec<Relation> = select
            .from
            .iter()
            .flat_map(|t| std::iter::once(&t.relation).chain(t.joins.iter().map(|j| &j.relation)))
            .map(|f| self.relation(f))
            .collect();
        if relations.iter().all(|r| r.hidden.is_empty()) {
            return;
        }
        let mut items = Vec::with_capacity(select.projection.len());
        for item in std::mem::take(&mut select.projection) {
            match item {
                SelectItem::Wildcard(mut options) => {
                    if relations.len() == 1 {
                        add_excludes(&mut options, &relations[0].hidden);
                        items.push(SelectItem::Wildcard(options));
                    } else if is_plain(&options) && relations.iter().all(|r| r.qualifier.is_some())
                    {
                        for r in &relations {
                            let mut options = WildcardAdditionalOptions::default();
                            add_excludes(&mut options, &r.hidden);
                            if let Some(q) = &r.qualifier {
                                items.push(SelectItem::QualifiedWildcard(
                                    SelectItemQualifiedWildcardKind::ObjectName(q.clone()),
                                    options,
                                ));
                            }
                        }
                    } else {
                        items.push(SelectItem::Wildcard(options));
                    }
                }
                SelectItem::QualifiedWildcard(
                    SelectItemQualifiedWildcardKind::ObjectName(name),
                    mut options,
                ) => {
                    if let Some(r) = relations
                        .iter()
                        .find(|r| r.qualifier.as_ref().is_some_and(|q| same_name(q, &name)))
                    {
                        add_excludes(&mut options, &r.hidden);
                    }
                    items.push(SelectItem::QualifiedWildcard(
                        SelectItemQualifiedWildcardKind::ObjectName(name),
                        options,
                    ));
                }
                other => items.push(other),
            }
        }
        select.projection = items;
    }

    fn rewrite_set_expr(&self, body: &mut SetExpr) {
        match body {
            SetExpr::Select(select) => self.rewrite_select(select),
            SetExpr::SetOperation { left, right, .. } => {
                self.rewrite_set_expr(left);
                self.rewrite_set_expr(right);
            }
            // Nested queries are visited on their own.
            _ => {}
        }
    }
}

impl VisitorMut for Rewriter<'_> {
    type Break = ();

    fn pre_visit_statement(&mut self, statement: &mut SqlStatement) -> ControlFlow<()> {
        if let SqlStatement::Insert(insert) = statement
            && insert.columns.is_empty()
            && let TableObject::TableName(name) = &insert.table
            && let Some(columns) = self.columns(name)
        {
            insert.columns = columns
                .visible
                .iter()
                .map(|c| {
                    ObjectName(vec![ObjectNamePart::Identifier(Ident::with_quote(
                        '"',
                        c.as_str(),
                    ))])
                })
                .collect();
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        self.rewrite_set_expr(&mut query.body);
        ControlFlow::Continue(())
    }
}

fn is_plain(options: &WildcardAdditionalOptions) -> bool {
    options.opt_ilike.is_none()
        && options.opt_exclude.is_none()
        && options.opt_except.is_none()
        && options.opt_replace.is_none()
        && options.opt_rename.is_none()
        && options.opt_alias.is_none()
}

/// Adds `names` to the wildcard's EXCLUDE list (keeping what the user excluded).
fn add_excludes(options: &mut WildcardAdditionalOptions, names: &[String]) {
    if names.is_empty() {
        return;
    }
    let mut excluded: Vec<ObjectName> = match options.opt_exclude.take() {
        None => vec![],
        Some(ExcludeSelectItem::Single(name)) => vec![name],
        Some(ExcludeSelectItem::Multiple(names)) => names,
    };
    for name in names {
        if !excluded
            .iter()
            .any(|e| e.to_string().trim_matches('"').eq_ignore_ascii_case(name))
        {
            excluded.push(ObjectName(vec![ObjectNamePart::Identifier(
                Ident::with_quote('"', name.as_str()),
            )]));
        }
    }
    options.opt_exclude = Some(ExcludeSelectItem::Multiple(excluded));
}

fn same_name(a: &ObjectName, b: &ObjectName) -> bool {
    let idents = |n: &ObjectName| -> Vec<String> {
        n.0.iter()
            .map(|p| {
                p.as_ident()
                    .map(|i| i.value.to_lowercase())
                    .unwrap_or_default()
            })
            .collect()
    };
    let (a, b) = (idents(a), idents(b));
    a == b || a.last() == b.last() && (a.len() == 1 || b.len() == 1)
}
