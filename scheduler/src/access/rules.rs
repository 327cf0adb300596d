//! Trino's file-based access-control rules (`security.config-file`): catalog, schema, table
//! and session-property rules, read as Trino documents them. For each kind, the first rule
//! matching the user (and object) decides; when the file has no rules of a kind, that kind is
//! allowed to everyone.

use std::path::Path;

use regex::Regex;
use serde::Deserialize;

use crate::error::{Result, SchedulerError};

/// What a catalog rule grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogAccess {
    /// Every statement.
    All,
    /// Queries only: no INSERT, CREATE, DROP.
    ReadOnly,
    /// Nothing: the catalog is invisible.
    None,
}

/// A table privilege, Trino's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Privilege {
    /// Read rows.
    Select,
    /// Add rows.
    Insert,
    /// Remove rows.
    Delete,
    /// Change rows.
    Update,
    /// Create, drop and alter the table; implies every other privilege.
    Ownership,
    /// SELECT, and granting it (no GRANT statement in Tributary: taken as SELECT).
    GrantSelect,
}

impl Privilege {
    /// The verb of Trino's denial messages (`Cannot select from table …`).
    pub fn denial(self) -> &'static str {
        match self {
            Privilege::Select | Privilege::GrantSelect => "select from",
            Privilege::Insert => "insert into",
            Privilege::Delete => "delete from",
            Privilege::Update => "update",
            Privilege::Ownership => "own",
        }
    }
}

/// A `user`/`role`/`group` pattern, a full-match regular expression (absent: everyone).
#[derive(Debug, Clone)]
struct Pattern(Option<Regex>);

impl Pattern {
    fn new(text: Option<&str>, field: &str, at: &str) -> Result<Self> {
        text.map(|t| {
            Regex::new(&format!("^(?:{t})$")).map_err(|e| {
                SchedulerError::Config(format!(
                    "{at}: \"{field}\": '{t}' is not a regular expression: {e}"
                ))
            })
        })
        .transpose()
        .map(Pattern)
    }

    fn matches(&self, text: &str) -> bool {
        self.0.as_ref().is_none_or(|r| r.is_match(text))
    }
}

/// Who a rule applies to. Tributary has no group provider and no roles, so a rule naming a
/// `group` or `role` never matches (as in Trino without them).
#[derive(Debug, Clone)]
struct Subject {
    user: Pattern,
    needs_group_or_role: bool,
}

impl Subject {
    fn new(user: Option<&str>, group: Option<&str>, role: Option<&str>, at: &str) -> Result<Self> {
        Pattern::new(group, "group", at)?;
        Pattern::new(role, "role", at)?;
        Ok(Self {
            user: Pattern::new(user, "user", at)?,
            needs_group_or_role: group.is_some() || role.is_some(),
        })
    }

    fn matches(&self, user: &str) -> bool {
        !self.needs_group_or_role && self.user.matches(user)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    catalogs: Option<Vec<CatalogRuleSpec>>,
    schemas: Option<Vec<SchemaRuleSpec>>,
    tables: Option<Vec<TableRuleSpec>>,
    system_session_properties: Option<Vec<SessionPropertySpec>>,
    catalog_session_properties: Option<Vec<SessionPropertySpec>>,
    // Trino's other sections: read so that Trino's files load, not enforced (see from_file).
    queries: Option<serde_json::Value>,
    impersonation: Option<serde_json::Value>,
    principals: Option<serde_json::Value>,
    system_information: Option<serde_json::Value>,
    authorization: Option<serde_json::Value>,
    functions: Option<serde_json::Value>,
    procedures: Option<serde_json::Value>,
    table_procedures: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogRuleSpec {
    user: Option<String>,
    group: Option<String>,
    role: Option<String>,
    catalog: Option<String>,
    allow: serde_json::Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SchemaRuleSpec {
    user: Option<String>,
    group: Option<String>,
    role: Option<String>,
    catalog: Option<String>,
    schema: Option<String>,
    owner: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TableRuleSpec {
    user: Option<String>,
    group: Option<String>,
    role: Option<String>,
    catalog: Option<String>,
    schema: Option<String>,
    table: Option<String>,
    privileges: Vec<Privilege>,
    #[serde(default)]
    columns: Vec<ColumnRuleSpec>,
    filter: Option<String>,
    filter_environment: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ColumnRuleSpec {
    name: String,
    #[serde(default = "yes")]
    allow: bool,
    mask: Option<String>,
    mask_environment: Option<serde_json::Value>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionPropertySpec {
    user: Option<String>,
    group: Option<String>,
    role: Option<String>,
    catalog: Option<String>,
    property: Option<String>,
    allow: bool,
}

#[derive(Debug)]
struct CatalogRule {
    subject: Subject,
    catalog: Pattern,
    access: CatalogAccess,
}

#[derive(Debug)]
struct SchemaRule {
    subject: Subject,
    catalog: Pattern,
    schema: Pattern,
    owner: bool,
}

/// The table rule that applies to a user and table.
#[derive(Debug)]
pub struct TableRule {
    subject: Subject,
    catalog: Pattern,
    schema: Pattern,
    table: Pattern,
    privileges: Vec<Privilege>,
    /// Columns the rule denies.
    denied_columns: Vec<String>,
}

impl TableRule {
    /// Whether the rule grants `privilege` (OWNERSHIP grants all).
    pub fn grants(&self, privilege: Privilege) -> bool {
        self.privileges.contains(&Privilege::Ownership)
            || self.privileges.contains(&privilege)
            || (privilege == Privilege::Select && self.privileges.contains(&Privilege::GrantSelect))
    }

    /// Whether the rule grants anything (the table is visible).
    pub fn any(&self) -> bool {
        !self.privileges.is_empty()
    }

    /// Whether `column` is denied.
    pub fn denies_column(&self, column: &str) -> bool {
        self.denied_columns
            .iter()
            .any(|c| c.eq_ignore_ascii_case(column))
    }

    /// Whether any column is denied.
    pub fn has_column_rules(&self) -> bool {
        !self.denied_columns.is_empty()
    }
}

#[derive(Debug)]
struct SessionPropertyRule {
    subject: Subject,
    catalog: Pattern,
    property: Pattern,
    allow: bool,
}

/// The rules of one file.
#[derive(Debug)]
pub struct Rules {
    catalogs: Option<Vec<CatalogRule>>,
    schemas: Option<Vec<SchemaRule>>,
    tables: Option<Vec<TableRule>>,
    system_session_properties: Option<Vec<SessionPropertyRule>>,
    catalog_session_properties: Option<Vec<SessionPropertyRule>>,
}

/// The decision for one table: `None` when the file has no table rules (everything allowed).
pub enum TableDecision<'a> {
    /// No table rules: every privilege, every column.
    Unrestricted,
    /// The first matching rule.
    Rule(&'a TableRule),
    /// No rule matched: nothing.
    Denied,
}

impl Rules {
    /// Reads and checks a rules file; errors name the file and the rule.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            SchedulerError::Config(format!(
                "cannot read access-control rules {}: {e}",
                path.display()
            ))
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses rules; `source` names them in errors.
    pub fn parse(text: &str, source: &str) -> Result<Self> {
        let file: RulesFile = serde_json::from_str(text).map_err(|e| {
            SchedulerError::Config(format!("{source}: not a valid access-control file: {e}"))
        })?;
        for (present, section) in [
            (file.queries.is_some(), "queries"),
            (file.impersonation.is_some(), "impersonation"),
            (file.principals.is_some(), "principals"),
            (file.system_information.is_some(), "system_information"),
            (file.authorization.is_some(), "authorization"),
            (file.functions.is_some(), "functions"),
            (file.procedures.is_some(), "procedures"),
            (file.table_procedures.is_some(), "table_procedures"),
        ] {
            if present {
                tracing::warn!("{source}: \"{section}\" rules are not enforced by Tributary yet");
            }
        }
        // Each section: its rules in order, each read with its place ("rules.json:
        // tables[2]") for errors.
        fn section<T, R>(
            rules: Option<Vec<T>>,
            source: &str,
            name: &str,
            read: impl Fn(&T, &str) -> Result<R>,
        ) -> Result<Option<Vec<R>>> {
            rules
                .map(|rules| {
                    rules
                        .iter()
                        .enumerate()
                        .map(|(n, rule)| read(rule, &format!("{source}: {name}[{n}]")))
                        .collect()
                })
                .transpose()
        }
        let catalogs = section(file.catalogs, source, "catalogs", |r, at| {
            let access = match &r.allow {
                serde_json::Value::Bool(true) => CatalogAccess::All,
                serde_json::Value::Bool(false) => CatalogAccess::None,
                serde_json::Value::String(s) => match s.to_ascii_lowercase().as_str() {
                    "all" => CatalogAccess::All,
                    "read-only" => CatalogAccess::ReadOnly,
                    "none" => CatalogAccess::None,
                    other => {
                        return Err(SchedulerError::Config(format!(
                            "{at}: \"allow\": '{other}' is not all, read-only or none"
                        )));
                    }
                },
                other => {
                    return Err(SchedulerError::Config(format!(
                        "{at}: \"allow\": {other} is not all, read-only or none"
                    )));
                }
            };
            Ok(CatalogRule {
                subject: Subject::new(
                    r.user.as_deref(),
                    r.group.as_deref(),
                    r.role.as_deref(),
                    at,
                )?,
                catalog: Pattern::new(r.catalog.as_deref(), "catalog", at)?,
                access,
            })
        })?;
        let schemas = section(file.schemas, source, "schemas", |r, at| {
            Ok(SchemaRule {
                subject: Subject::new(
                    r.user.as_deref(),
                    r.group.as_deref(),
                    r.role.as_deref(),
                    at,
                )?,
                catalog: Pattern::new(r.catalog.as_deref(), "catalog", at)?,
                schema: Pattern::new(r.schema.as_deref(), "schema", at)?,
                owner: r.owner,
            })
        })?;
        let tables = section(file.tables, source, "tables", |r, at| {
            // Row filters and column masks change what a query returns: refusing them is
            // safer than ignoring them.
            if r.filter.is_some() || r.filter_environment.is_some() {
                return Err(SchedulerError::Config(format!(
                    "{at}: row filters (\"filter\") are not supported yet"
                )));
            }
            if let Some(c) = r
                .columns
                .iter()
                .find(|c| c.mask.is_some() || c.mask_environment.is_some())
            {
                return Err(SchedulerError::Config(format!(
                    "{at}: column '{}': column masks (\"mask\") are not supported yet; deny \
                     the column with \"allow\": false",
                    c.name
                )));
            }
            Ok(TableRule {
                subject: Subject::new(
                    r.user.as_deref(),
                    r.group.as_deref(),
                    r.role.as_deref(),
                    at,
                )?,
                catalog: Pattern::new(r.catalog.as_deref(), "catalog", at)?,
                schema: Pattern::new(r.schema.as_deref(), "schema", at)?,
                table: Pattern::new(r.table.as_deref(), "table", at)?,
                privileges: r.privileges.clone(),
                denied_columns: r
                    .columns
                    .iter()
                    .filter(|c| !c.allow)
                    .map(|c| c.name.clone())
                    .collect(),
            })
        })?;
        let property = |r: &SessionPropertySpec, at: &str| {
            Ok(SessionPropertyRule {
                subject: Subject::new(
                    r.user.as_deref(),
                    r.group.as_deref(),
                    r.role.as_deref(),
                    at,
                )?,
                catalog: Pattern::new(r.catalog.as_deref(), "catalog", at)?,
                property: Pattern::new(r.property.as_deref(), "property", at)?,
                allow: r.allow,
            })
        };
        Ok(Self {
            catalogs,
            schemas,
            tables,
            system_session_properties: section(
                file.system_session_properties,
                source,
                "system_session_properties",
                property,
            )?,
            catalog_session_properties: section(
                file.catalog_session_properties,
                source,
                "catalog_session_properties",
                property,
            )?,
        })
    }

    /// What `user` may do in `catalog`.
    pub fn catalog_access(&self, user: &str, catalog: &str) -> CatalogAccess {
        match &self.catalogs {
            None => CatalogAccess::All,
            Some(rules) => rules
                .iter()
                .find(|r| r.subject.matches(user) && r.catalog.matches(catalog))
                .map_or(CatalogAccess::None, |r| r.access),
        }
    }

    /// Whether `user` owns `catalog.schema` (may create and drop it and its tables).
    pub fn schema_owner(&self, user: &str, catalog: &str, schema: &str) -> bool {
        match &self.schemas {
            None => true,
            Some(rules) => rules
                .iter()
                .find(|r| {
                    r.subject.matches(user)
                        && r.catalog.matches(catalog)
                        && r.schema.matches(schema)
                })
                .is_some_and(|r| r.owner),
        }
    }

    /// Whether a schema rule (not the default of a file without them) makes `user` the owner.
    pub fn explicit_schema_owner(&self, user: &str, catalog: &str, schema: &str) -> bool {
        self.schemas.is_some() && self.schema_owner(user, catalog, schema)
    }

    /// Whether any table rule could give `user` something in `catalog.schema` (Trino shows
    /// such schemas).
    pub fn any_table_in_schema(&self, user: &str, catalog: &str, schema: &str) -> bool {
        match &self.tables {
            None => true,
            Some(rules) => rules.iter().any(|r| {
                r.any()
                    && r.subject.matches(user)
                    && r.catalog.matches(catalog)
                    && r.schema.matches(schema)
            }),
        }
    }

    /// Whether any table rule could give `user` something in `catalog`.
    pub fn any_table_in_catalog(&self, user: &str, catalog: &str) -> bool {
        let schema_owner = self.schemas.as_ref().is_none_or(|rules| {
            rules
                .iter()
                .any(|r| r.owner && r.subject.matches(user) && r.catalog.matches(catalog))
        });
        schema_owner
            || match &self.tables {
                None => true,
                Some(rules) => rules
                    .iter()
                    .any(|r| r.any() && r.subject.matches(user) && r.catalog.matches(catalog)),
            }
    }

    /// The table rule deciding what `user` may do with `catalog.schema.table`.
    pub fn table(&self, user: &str, catalog: &str, schema: &str, table: &str) -> TableDecision<'_> {
        match &self.tables {
            None => TableDecision::Unrestricted,
            Some(rules) => rules
                .iter()
                .find(|r| {
                    r.subject.matches(user)
                        && r.catalog.matches(catalog)
                        && r.schema.matches(schema)
                        && r.table.matches(table)
                })
                .map_or(TableDecision::Denied, TableDecision::Rule),
        }
    }

    /// Whether `user` may set a system session property.
    pub fn system_session_property(&self, user: &str, property: &str) -> bool {
        match &self.system_session_properties {
            None => true,
            Some(rules) => rules
                .iter()
                .find(|r| r.subject.matches(user) && r.property.matches(property))
                .is_some_and(|r| r.allow),
        }
    }

    /// Whether `user` may set `catalog.property`.
    pub fn catalog_session_property(&self, user: &str, catalog: &str, property: &str) -> bool {
        match &self.catalog_session_properties {
            None => true,
            Some(rules) => rules
                .iter()
                .find(|r| {
                    r.subject.matches(user)
                        && r.catalog.matches(catalog)
                        && r.property.matches(property)
                })
                .is_some_and(|r| r.allow),
        }
    }
}
