//! A session's catalogs as its user may see them: listings (`catalog_names`, `schema_names`,
//! `table_names`, and so `information_schema` and `SHOW`) leave out what the user may not
//! see; lookups by name still answer, so that planning reaches the access check and a
//! query fails with "Access Denied" rather than "does not exist".

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, CatalogProviderList, SchemaProvider, TableProvider};
use datafusion::error::Result;
use datafusion::logical_expr::TableType;

use super::AccessScope;

/// The session's catalog list, filtered for its user.
#[derive(Debug)]
pub struct FilteredCatalogList {
    inner: Arc<dyn CatalogProviderList>,
    scope: Arc<AccessScope>,
}

impl FilteredCatalogList {
    /// Wraps `inner` for `scope`'s user.
    pub fn new(inner: Arc<dyn CatalogProviderList>, scope: Arc<AccessScope>) -> Self {
        Self { inner, scope }
    }
}

impl CatalogProviderList for FilteredCatalogList {
    fn register_catalog(
        &self,
        name: String,
        catalog: Arc<dyn CatalogProvider>,
    ) -> Option<Arc<dyn CatalogProvider>> {
        self.inner.register_catalog(name, catalog)
    }

    fn catalog_names(&self) -> Vec<String> {
        let mut names = self.inner.catalog_names();
        names.retain(|c| self.scope.catalog_visible(c));
        names
    }

    fn catalog(&self, name: &str) -> Option<Arc<dyn CatalogProvider>> {
        self.inner.catalog(name).map(|inner| {
            Arc::new(FilteredCatalog {
                name: name.to_owned(),
                inner,
                scope: Arc::clone(&self.scope),
            }) as Arc<dyn CatalogProvider>
        })
    }
}

#[derive(Debug)]
struct FilteredCatalog {
    name: String,
    inner: Arc<dyn CatalogProvider>,
    scope: Arc<AccessScope>,
}

impl CatalogProvider for FilteredCatalog {
    fn schema_names(&self) -> Vec<String> {
        let mut names = self.inner.schema_names();
        names.retain(|s| self.scope.schema_visible(&self.name, s));
        names
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        self.inner.schema(name).map(|inner| {
            Arc::new(FilteredSchema {
                catalog: self.name.clone(),
                name: name.to_owned(),
                inner,
                scope: Arc::clone(&self.scope),
            }) as Arc<dyn SchemaProvider>
        })
    }

    fn register_schema(
        &self,
        name: &str,
        schema: Arc<dyn SchemaProvider>,
    ) -> Result<Option<Arc<dyn SchemaProvider>>> {
        self.inner.register_schema(name, schema)
    }

    fn deregister_schema(
        &self,
        name: &str,
        cascade: bool,
    ) -> Result<Option<Arc<dyn SchemaProvider>>> {
        self.inner.deregister_schema(name, cascade)
    }
}

#[derive(Debug)]
struct FilteredSchema {
    catalog: String,
    name: String,
    inner: Arc<dyn SchemaProvider>,
    scope: Arc<AccessScope>,
}

#[async_trait]
impl SchemaProvider for FilteredSchema {
    fn owner_name(&self) -> Option<&str> {
        self.inner.owner_name()
    }

    fn table_names(&self) -> Vec<String> {
        let mut names = self.inner.table_names();
        names.retain(|t| self.scope.table_visible(&self.catalog, &self.name, t));
        names
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        self.inner.table(name).await
    }

    async fn table_type(&self, name: &str) -> Result<Option<TableType>> {
        self.inner.table_type(name).await
    }

    fn register_table(
        &self,
        name: String,
        table: Arc<dyn TableProvider>,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        self.inner.register_table(name, table)
    }

    fn deregister_table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        self.inner.deregister_table(name)
    }

    fn table_exist(&self, name: &str) -> bool {
        self.inner.table_exist(name)
    }
}
