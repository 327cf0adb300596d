//! Access control: Trino's file-based rules (`etc/access-control.properties` with
//! `access-control.name=file` and `security.config-file=…`), enforced on every statement's
//! plan and on every listing of catalogs, schemas and tables.
//!
//! A session's DataFusion context carries its user's [`AccessScope`] (a `SessionConfig`
//! extension). Its catalog list is wrapped (`access/catalogs.rs`) so that what the user may
//! not see is left out of every listing (`SHOW`, `information_schema`, Flight SQL metadata),
//! while names still resolve: a query of a table the user may not read fails with
//! "Access Denied", not "does not exist", as in Trino.

mod catalogs;
mod plan;
mod rules;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::common::ResolvedTableReference;
use datafusion::prelude::SessionContext;
use tributary_connector::Properties;

pub use catalogs::FilteredCatalogList;
pub use rules::{CatalogAccess, Privilege, Rules, TableDecision};

use crate::error::{Result, SchedulerError};

/// The properties file that configures access control, as Trino's.
pub const ACCESS_CONTROL_PROPERTIES: &str = "access-control.properties";

/// The schema every catalog has, always visible to who may see the catalog (its contents
/// are filtered).
const INFORMATION_SCHEMA: &str = "information_schema";

/// The rules of the cluster (`None` in the options: everyone may do everything).
#[derive(Debug, Clone)]
pub struct AccessControl {
    rules: Arc<Rules>,
    source: PathBuf,
}

impl AccessControl {
    /// The access control `<etc>/access-control.properties` configures, if present.
    pub fn from_etc(etc: &Path) -> Result<Option<Self>> {
        let path = etc.join(ACCESS_CONTROL_PROPERTIES);
        if !path.exists() {
            return Ok(None);
        }
        let config = |e: tributary_connector::ConnectorError| SchedulerError::Config(e.to_string());
        let props = Properties::load(&path).map_err(config)?;
        let mut reader = props.reader("access control");
        let name = reader
            .required_string("access-control.name", "file")
            .map_err(config)?;
        if name != "file" {
            return Err(SchedulerError::Config(format!(
                "{}: access-control.name={name} is not supported (only file)",
                path.display()
            )));
        }
        let file = reader
            .required_string("security.config-file", "the path of the rules JSON file")
            .map_err(config)?;
        // Accepted for Trino's files; the rules are read once at start-up.
        let _ = reader.optional_string("security.refresh-period");
        reader.finish().map_err(config)?;
        Self::from_rules_file(&tributary_connector::installation_path(etc, file)).map(Some)
    }

    /// Reads a rules file.
    pub fn from_rules_file(path: &Path) -> Result<Self> {
        Ok(Self {
            rules: Arc::new(Rules::from_file(path)?),
            source: path.to_path_buf(),
        })
    }

    /// The scope of one user.
    pub fn scope(&self, user: &str) -> AccessScope {
        AccessScope {
            user: user.to_owned(),
            rules: Arc::clone(&self.rules),
        }
    }

    /// The rules file (for start-up messages).
    pub fn source(&self) -> &Path {
        &self.source
    }
}

/// What one user may do: carried by the user's DataFusion contexts.
#[derive(Debug, Clone)]
pub struct AccessScope {
    user: String,
    rules: Arc<Rules>,
}

fn denied(message: String) -> SchedulerError {
    SchedulerError::AccessDenied(message)
}

impl AccessScope {
    /// The scope a context carries, if access control is on.
    pub fn of(ctx: &SessionContext) -> Option<Arc<AccessScope>> {
        ctx.state().config().get_extension::<AccessScope>()
    }

    /// The user.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Whether the catalog appears in listings.
    pub fn catalog_visible(&self, catalog: &str) -> bool {
        self.rules.catalog_access(&self.user, catalog) != CatalogAccess::None
            && self.rules.any_table_in_catalog(&self.user, catalog)
    }

    /// Whether the schema appears in listings.
    pub fn schema_visible(&self, catalog: &str, schema: &str) -> bool {
        if !self.catalog_visible(catalog) {
            return false;
        }
        schema == INFORMATION_SCHEMA
            || self.rules.schema_owner(&self.user, catalog, schema)
            || self.rules.any_table_in_schema(&self.user, catalog, schema)
    }

    /// Whether the table appears in listings (the user has some privilege on it).
    pub fn table_visible(&self, catalog: &str, schema: &str, table: &str) -> bool {
        if self.rules.catalog_access(&self.user, catalog) == CatalogAccess::None {
            return false;
        }
        if schema == INFORMATION_SCHEMA {
            return true;
        }
        match self
            .rules
            .table(&self.user, catalog, schema, base_table(table))
        {
            TableDecision::Unrestricted => true,
            TableDecision::Rule(rule) => rule.any(),
            TableDecision::Denied => false,
        }
    }

    /// Checks a privilege on a table.
    pub fn check_table(&self, table: &ResolvedTableReference, privilege: Privilege) -> Result<()> {
        let (catalog, schema, name) = (&*table.catalog, &*table.schema, &*table.table);
        let refuse = || {
            denied(format!(
                "Cannot {} table {catalog}.{schema}.{name}",
                privilege.denial()
            ))
        };
        match self.rules.catalog_access(&self.user, catalog) {
            CatalogAccess::None => {
                return Err(denied(format!("Cannot access catalog {catalog}")));
            }
            CatalogAccess::ReadOnly if privilege != Privilege::Select => return Err(refuse()),
            _ => {}
        }
        if schema == INFORMATION_SCHEMA {
            return if privilege == Privilege::Select {
                Ok(())
            } else {
                Err(refuse())
            };
        }
        // Table rules alone decide (schema ownership is about the schema, as in Trino).
        match self
            .rules
            .table(&self.user, catalog, schema, base_table(name))
        {
            TableDecision::Unrestricted => Ok(()),
            TableDecision::Rule(rule) if rule.grants(privilege) => Ok(()),
            _ => Err(refuse()),
        }
    }

    /// A new table: OWNERSHIP by a table rule, or an owned schema (rules that name it).
    fn check_create(&self, table: &ResolvedTableReference) -> Result<()> {
        match self.check_table(table, Privilege::Ownership) {
            Err(_)
                if self
                    .rules
                    .explicit_schema_owner(&self.user, &table.catalog, &table.schema)
                    && self.rules.catalog_access(&self.user, &table.catalog)
                        == CatalogAccess::All =>
            {
                Ok(())
            }
            checked => checked,
        }
    }

    /// `USE catalog.schema`: the catalog must be accessible.
    pub fn check_catalog(&self, catalog: &str) -> Result<()> {
        if self.rules.catalog_access(&self.user, catalog) == CatalogAccess::None {
            return Err(denied(format!("Cannot access catalog {catalog}")));
        }
        Ok(())
    }

    /// Columns of `table` the user may not read, among `columns`.
    pub fn denied_columns<'a>(
        &self,
        table: &ResolvedTableReference,
        columns: impl IntoIterator<Item = &'a str>,
    ) -> Vec<String> {
        match self.rules.table(
            &self.user,
            &table.catalog,
            &table.schema,
            base_table(&table.table),
        ) {
            TableDecision::Rule(rule) if rule.has_column_rules() => columns
                .into_iter()
                .filter(|c| rule.denies_column(c))
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Whether some columns of `table` are denied to the user.
    fn restricts_columns(&self, table: &ResolvedTableReference) -> bool {
        matches!(
            self.rules.table(&self.user, &table.catalog, &table.schema, base_table(&table.table)),
            TableDecision::Rule(rule) if rule.has_column_rules()
        )
    }

    /// `CREATE SCHEMA` / `DROP SCHEMA`: the user must own the schema, in a catalog they may
    /// write.
    pub fn check_schema_owner(&self, catalog: &str, schema: &str, action: &str) -> Result<()> {
        if self.rules.catalog_access(&self.user, catalog) == CatalogAccess::All
            && self.rules.schema_owner(&self.user, catalog, schema)
        {
            Ok(())
        } else {
            Err(denied(format!("Cannot {action} schema {catalog}.{schema}")))
        }
    }

    /// `SET SESSION name = …`: Trino's `system_session_properties` and
    /// `catalog_session_properties` rules (`catalog.property`).
    pub fn check_session_property(&self, name: &str) -> Result<()> {
        // Engine settings (`datafusion.…`, `ballista.…`) are system properties.
        let engine = ["datafusion.", "ballista.", "tributary."]
            .iter()
            .any(|p| name.starts_with(p));
        let allowed = match name.split_once('.').filter(|_| !engine) {
            Some((catalog, property)) => self
                .rules
                .catalog_session_property(&self.user, catalog, property),
            None => self.rules.system_session_property(&self.user, name),
        };
        if allowed {
            Ok(())
        } else {
            Err(denied(format!("Cannot set system session property {name}")))
        }
    }
}

/// The table whose rules apply to `name`: `orders$partitions` is `orders`'s.
fn base_table(name: &str) -> &str {
    name.split('$').next().unwrap_or(name)
}

/// Leaves out of `names` (schemas of `catalog`) those the context's user may not see.
pub fn visible_schemas(ctx: &SessionContext, catalog: &str, names: &mut Vec<String>) {
    if let Some(scope) = AccessScope::of(ctx) {
        names.retain(|s| scope.schema_visible(catalog, s));
    }
}

/// Leaves out of `names` (tables of `catalog.schema`) those the context's user may not see.
pub fn visible_tables(ctx: &SessionContext, catalog: &str, schema: &str, names: &mut Vec<String>) {
    if let Some(scope) = AccessScope::of(ctx) {
        names.retain(|t| scope.table_visible(catalog, schema, t));
    }
}

/// Checks that the context's user may see a table (SHOW COLUMNS, SHOW CREATE TABLE,
/// DESCRIBE, SHOW PARTITIONS).
pub fn check_visible(ctx: &SessionContext, catalog: &str, schema: &str, table: &str) -> Result<()> {
    match AccessScope::of(ctx) {
        Some(scope) if !scope.table_visible(catalog, schema, table) => Err(denied(format!(
            "Cannot show columns of table {catalog}.{schema}.{table}"
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::common::TableReference;

    const RULES: &str = r#"{
        "catalogs": [
            {"user": "admin", "catalog": ".*", "allow": "all"},
            {"user": "alice", "catalog": "hive", "allow": "read-only"},
            {"catalog": "system", "allow": "none"},
            {"catalog": "(tpch|hive)", "allow": true}
        ],
        "schemas": [
            {"user": "admin", "owner": true},
            {"user": "bob", "catalog": "hive", "schema": "bob_.*", "owner": true},
            {"owner": false}
        ],
        "tables": [
            {"user": "admin", "privileges": ["OWNERSHIP"]},
            {"catalog": "tpch", "table": "nation", "privileges": ["SELECT"],
             "columns": [{"name": "n_comment", "allow": false}]},
            {"catalog": "tpch", "table": "region", "privileges": []},
            {"catalog": "tpch", "privileges": ["SELECT"]},
            {"user": "bob", "catalog": "hive", "schema": "default", "table": "orders",
             "privileges": ["SELECT", "INSERT"]}
        ],
        "system_session_properties": [
            {"user": "admin", "allow": true},
            {"property": "query_max_run_time", "allow": false},
            {"allow": true}
        ]
    }"#;

    fn table(name: &str) -> ResolvedTableReference {
        TableReference::parse_str(name).resolve("x", "y")
    }

    #[test]
    fn rules_decide_in_order() {
        let rules = Arc::new(Rules::parse(RULES, "rules.json").expect("rules"));
        let scope = |user: &str| AccessScope {
            user: user.into(),
            rules: Arc::clone(&rules),
        };
        let (admin, alice, bob) = (scope("admin"), scope("alice"), scope("bob"));
        assert!(admin.catalog_visible("system"));
        assert!(!alice.catalog_visible("system"));
        assert!(alice.catalog_visible("tpch"));
        // alice has no table rule in hive: nothing there to see.
        assert!(!alice.catalog_visible("hive"));
        assert!(bob.catalog_visible("hive"));
        assert!(bob.schema_visible("hive", "default"));
        assert!(!bob.schema_visible("hive", "other"));
        assert!(bob.schema_visible("hive", "bob_scratch"));
        assert!(bob.table_visible("hive", "default", "orders"));
        assert!(!bob.table_visible("hive", "default", "customers"));
        assert!(!bob.table_visible("tpch", "tiny", "region"));
        assert!(bob.table_visible("tpch", "tiny", "nation"));

        bob.check_table(&table("tpch.tiny.lineitem"), Privilege::Select)
            .expect("select");
        let err = bob
            .check_table(&table("tpch.tiny.lineitem"), Privilege::Insert)
            .expect_err("insert");
        assert_eq!(
            err.to_string(),
            "Access Denied: Cannot insert into table tpch.tiny.lineitem"
        );
        bob.check_table(&table("hive.default.orders"), Privilege::Insert)
            .expect("insert orders");
        bob.check_create(&table("hive.bob_scratch.t"))
            .expect("a schema owner creates tables in it");
        // ... but owning a schema grants nothing on tables the table rules do not give.
        assert!(
            bob.check_table(&table("hive.bob_scratch.t"), Privilege::Select)
                .is_err()
        );
        // Without a schemas section everyone owns every schema, and table rules still decide.
        let open_schemas = AccessScope {
            user: "eve".into(),
            rules: Arc::new(
                Rules::parse(
                    r#"{"tables": [{"table": "salaries", "privileges": []},
                                   {"privileges": ["SELECT"]}]}"#,
                    "rules.json",
                )
                .expect("rules"),
            ),
        };
        assert!(
            open_schemas
                .check_table(&table("hive.hr.salaries"), Privilege::Select)
                .is_err()
        );
        assert!(
            open_schemas
                .check_table(&table("hive.hr.salaries$partitions"), Privilege::Select)
                .is_err()
        );
        assert!(open_schemas.check_create(&table("hive.hr.new")).is_err());
        open_schemas
            .check_table(&table("hive.hr.teams"), Privilege::Select)
            .expect("select");
        let err = alice
            .check_table(&table("system.runtime.queries"), Privilege::Select)
            .expect_err("system");
        assert_eq!(
            err.to_string(),
            "Access Denied: Cannot access catalog system"
        );
        // information_schema is readable in any catalog the user may access.
        bob.check_table(&table("tpch.information_schema.tables"), Privilege::Select)
            .expect("information_schema");
        admin
            .check_table(&table("system.runtime.queries"), Privilege::Ownership)
            .expect("admin");
        assert_eq!(
            bob.denied_columns(&table("tpch.tiny.nation"), ["n_name", "n_comment"]),
            vec!["n_comment".to_owned()]
        );
        bob.check_schema_owner("hive", "bob_x", "create")
            .expect("owner");
        assert!(bob.check_schema_owner("hive", "default", "create").is_err());
        assert!(bob.check_session_property("query_max_run_time").is_err());
        bob.check_session_property("join_distribution_type")
            .expect("allowed");
        admin
            .check_session_property("query_max_run_time")
            .expect("admin");
    }

    #[test]
    fn bad_rules_are_refused_with_their_place() {
        for (text, expected) in [
            (
                r#"{"catalogs": [{"catalog": "(", "allow": "all"}]}"#,
                "catalogs[0]: \"catalog\"",
            ),
            (
                r#"{"catalogs": [{"allow": "sometimes"}]}"#,
                "catalogs[0]: \"allow\"",
            ),
            (
                r#"{"tables": [{"privileges": ["READ"]}]}"#,
                "unknown variant `READ`",
            ),
            (r#"{"tabels": []}"#, "unknown field `tabels`"),
            (
                r#"{"tables": [{"privileges": ["SELECT"], "filter": "x > 1"}]}"#,
                "tables[0]: row filters",
            ),
            (
                r#"{"tables": [{"privileges": ["SELECT"], "columns": [{"name": "ssn", "mask": "'x'"}]}]}"#,
                "column 'ssn': column masks",
            ),
        ] {
            let err = Rules::parse(text, "rules.json").expect_err(text);
            assert!(err.to_string().contains(expected), "{text}: {err}");
            assert!(err.to_string().starts_with("rules.json"), "{err}");
        }
    }
}
