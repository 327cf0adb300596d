//! A database as DataFusion's catalog and schemas: listing, name resolution, and the DDL
//! DataFusion routes through them (`CREATE/DROP SCHEMA`, `CREATE/DROP TABLE`).

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider, TableProvider};
use datafusion::error::Result as DfResult;

use crate::client::SqlClient;
use crate::dialect::Dialect;
use crate::error::SqlError;
use crate::reader::TableHandle;
use crate::table::{SqlTable, TableColumn, df};
use crate::types::map_column;

/// A database as a DataFusion catalog.
#[derive(Debug)]
pub struct SqlCatalog {
    client: Arc<SqlClient>,
}

impl SqlCatalog {
    /// The catalog of a client.
    pub fn new(client: Arc<SqlClient>) -> Self {
        Self { client }
    }
}

impl CatalogProvider for SqlCatalog {
    fn schema_names(&self) -> Vec<String> {
        match self.client.schemas_blocking() {
            Ok(names) => names.into_iter().map(|n| n.to_lowercase()).collect(),
            Err(e) => {
                tracing::warn!("cannot list schemas: {e}");
                vec![]
            }
        }
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        let remote = match self.client.resolve_schema(name) {
            Ok(remote) => remote?,
            // The database cannot be asked now: assume the schema exists, so that reading
            // its tables reports what is wrong (unreachable, refused login) to the user.
            Err(e) => {
                tracing::warn!("cannot look up schema '{name}': {e}");
                name.to_owned()
            }
        };
        Some(Arc::new(SqlSchema {
            client: Arc::clone(&self.client),
            remote,
        }))
    }

    fn register_schema(
        &self,
        name: &str,
        _schema: Arc<dyn SchemaProvider>,
    ) -> DfResult<Option<Arc<dyn SchemaProvider>>> {
        let dialect = self.client.dialect();
        let sql = match dialect {
            Dialect::MySql => format!("CREATE DATABASE {}", dialect.quote(name)),
            Dialect::Postgres => format!("CREATE SCHEMA {}", dialect.quote(name)),
            Dialect::Sqlite => {
                return Err(df(SqlError::NotSupported(
                    "SQLite catalogs have one schema, 'main'".into(),
                )));
            }
        };
        self.client.execute_blocking(sql).map_err(df)?;
        Ok(None)
    }

    fn deregister_schema(
        &self,
        name: &str,
        cascade: bool,
    ) -> DfResult<Option<Arc<dyn SchemaProvider>>> {
        let Some(schema) = self.schema(name) else {
            return Ok(None);
        };
        let Some(remote) = self.client.resolve_schema(name).map_err(df)? else {
            return Ok(None);
        };
        let dialect = self.client.dialect();
        let sql = match dialect {
            Dialect::MySql => {
                if !cascade && !self.client.tables_blocking(&remote).map_err(df)?.is_empty() {
                    return Err(df(SqlError::Database {
                        catalog: self.client.config().catalog.clone(),
                        message: format!(
                            "schema '{name}' is not empty (use DROP SCHEMA … CASCADE)"
                        ),
                    }));
                }
                format!("DROP DATABASE {}", dialect.quote(&remote))
            }
            Dialect::Postgres => format!(
                "DROP SCHEMA {}{}",
                dialect.quote(&remote),
                if cascade { " CASCADE" } else { "" }
            ),
            Dialect::Sqlite => {
                return Err(df(SqlError::NotSupported(
                    "SQLite's schema 'main' cannot be dropped".into(),
                )));
            }
        };
        self.client.execute_blocking(sql).map_err(df)?;
        Ok(Some(schema))
    }
}

/// One remote schema.
#[derive(Debug)]
struct SqlSchema {
    client: Arc<SqlClient>,
    remote: String,
}

impl SqlSchema {
    fn remote_table_name(&self, table: &str) -> String {
        match self.client.dialect() {
            Dialect::Sqlite => self.client.dialect().quote(table),
            d => d.table_name(&self.remote, table),
        }
    }

    fn resolve_blocking(&self, name: &str) -> DfResult<Option<String>> {
        let names = self.client.tables_blocking(&self.remote).map_err(df)?;
        if names.iter().any(|n| n == name) {
            return Ok(Some(name.to_owned()));
        }
        let mut matches = names
            .iter()
            .filter(|n| n.to_lowercase() == name.to_lowercase());
        Ok(match (matches.next(), matches.next()) {
            (Some(one), None) => Some(one.clone()),
            _ => None,
        })
    }
}

#[async_trait]
impl SchemaProvider for SqlSchema {
    fn table_names(&self) -> Vec<String> {
        match self.client.tables_blocking(&self.remote) {
            Ok(names) => names.into_iter().map(|n| n.to_lowercase()).collect(),
            Err(e) => {
                tracing::warn!("cannot list tables of '{}': {e}", self.remote);
                vec![]
            }
        }
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let Some((remote, columns)) = self
            .client
            .resolve_table(&self.remote, name)
            .await
            .map_err(df)?
        else {
            return Ok(None);
        };
        let config = self.client.config();
        let mut mapped: Vec<TableColumn> = Vec::with_capacity(columns.len());
        for c in &columns {
            let Some(mapping) = map_column(config.dialect, c, config.unsupported_type_handling)
            else {
                continue;
            };
            let lower = c.name.to_lowercase();
            let name = if mapped.iter().any(|m| m.name == lower) {
                c.name.clone()
            } else {
                lower
            };
            mapped.push(TableColumn {
                name,
                remote: c.name.clone(),
                mapping,
                nullable: c.nullable,
            });
        }
        let handle = TableHandle {
            schema: self.remote.clone(),
            table: remote,
            columns: mapped,
            filter: None,
            params: vec![],
            limit: None,
            split_key: None,
            query: None,
            snapshot: None,
        };
        Ok(Some(Arc::new(SqlTable::new(
            Arc::clone(&self.client),
            handle,
        ))))
    }

    fn table_exist(&self, name: &str) -> bool {
        matches!(self.resolve_blocking(name), Ok(Some(_)))
    }

    fn register_table(
        &self,
        name: String,
        table: Arc<dyn TableProvider>,
    ) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let dialect = self.client.dialect();
        let schema = table.schema();
        let mut columns = Vec::with_capacity(schema.fields().len());
        for f in schema.fields() {
            let ty = dialect.ddl_type(f.data_type()).ok_or_else(|| {
                df(SqlError::NotSupported(format!(
                    "column '{}' of type {} cannot be stored in {} (catalog '{}')",
                    f.name(),
                    f.data_type(),
                    dialect.connector_name(),
                    self.client.config().catalog
                )))
            })?;
            let not_null = if f.is_nullable() { "" } else { " NOT NULL" };
            columns.push(format!("{} {ty}{not_null}", dialect.quote(f.name())));
        }
        let sql = format!(
            "CREATE TABLE {} ({})",
            self.remote_table_name(&name),
            columns.join(", ")
        );
        self.client.execute_blocking(sql).map_err(df)?;
        Ok(None)
    }

    fn deregister_table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let Some(remote) = self.resolve_blocking(name)? else {
            return Ok(None);
        };
        let sql = format!("DROP TABLE {}", self.remote_table_name(&remote));
        self.client.execute_blocking(sql).map_err(df)?;
        Ok(None)
    }
}
