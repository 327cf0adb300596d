//! The registry of connector factories and the catalogs loaded from `etc/catalog`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use datafusion::prelude::SessionContext;

use crate::connector::{Connector, ConnectorFactory};
use crate::error::{ConnectorError, Result};
use crate::properties::{CONNECTOR_NAME, Properties};

/// Maps `connector.name` to factories. The `tributary` binary builds the one registry and
/// hands it to the scheduler and the executors.
#[derive(Debug, Default, Clone)]
pub struct ConnectorRegistry {
    factories: BTreeMap<&'static str, Arc<dyn ConnectorFactory>>,
}

impl ConnectorRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a factory (replacing one of the same name).
    pub fn register(mut self, factory: Arc<dyn ConnectorFactory>) -> Self {
        self.factories.insert(factory.name(), factory);
        self
    }

    /// Names of the registered connectors.
    pub fn names(&self) -> Vec<&'static str> {
        self.factories.keys().copied().collect()
    }

    /// Builds the catalog of one properties file.
    pub fn create(&self, catalog: &str, properties: &Properties) -> Result<Arc<dyn Connector>> {
        let name = properties
            .get(CONNECTOR_NAME)
            .map(str::trim)
            .ok_or_else(|| ConnectorError::MissingProperty {
                path: properties.path().to_path_buf(),
                key: CONNECTOR_NAME.to_owned(),
                expected: format!("the connector to use, one of {}", self.names().join(", ")),
            })?;
        let factory = self
            .factories
            .get(name)
            .ok_or_else(|| ConnectorError::UnknownConnector {
                path: properties.path().to_path_buf(),
                name: name.to_owned(),
                available: self.names().join(", "),
            })?;
        factory.create(catalog, properties)
    }

    /// Loads every `*.properties` file of `etc/catalog` (the file name is the catalog name).
    /// The first bad file stops loading with an error naming it.
    pub fn load_catalogs(&self, etc: &Path) -> Result<Catalogs> {
        let dir = etc.join("catalog");
        let entries =
            std::fs::read_dir(&dir).map_err(|source| ConnectorError::ReadCatalogFile {
                path: dir.clone(),
                source,
            })?;
        let mut paths = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| ConnectorError::ReadCatalogFile {
                path: dir.clone(),
                source,
            })?;
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "properties") {
                paths.push(path);
            }
        }
        paths.sort();
        let mut catalogs = Catalogs::default();
        for path in paths {
            let name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_owned();
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(ConnectorError::InvalidCatalogName { path, name });
            }
            let properties = Properties::load(&path)?;
            let connector = self.create(&name, &properties)?;
            let connector_name = properties
                .get(CONNECTOR_NAME)
                .unwrap_or_default()
                .trim()
                .to_owned();
            catalogs.insert_named(name, &connector_name, connector);
        }
        Ok(catalogs)
    }
}

/// The catalogs of one process, by name.
#[derive(Debug, Default, Clone)]
pub struct Catalogs {
    connectors: BTreeMap<String, Arc<dyn Connector>>,
    connector_names: BTreeMap<String, String>,
}

impl Catalogs {
    /// Adds a catalog.
    pub fn insert(&mut self, name: impl Into<String>, connector: Arc<dyn Connector>) {
        self.connectors.insert(name.into(), connector);
    }

    /// Adds a catalog made by the factory `connector_name` (`connector.name` of its file).
    pub fn insert_named(
        &mut self,
        name: impl Into<String>,
        connector_name: &str,
        connector: Arc<dyn Connector>,
    ) {
        let name = name.into();
        self.connector_names
            .insert(name.clone(), connector_name.to_owned());
        self.connectors.insert(name, connector);
    }

    /// The `connector.name` a catalog was made with, when known.
    pub fn connector_name(&self, name: &str) -> Option<&str> {
        self.connector_names.get(name).map(String::as_str)
    }

    /// A catalog's connector.
    pub fn get(&self, name: &str) -> Result<&Arc<dyn Connector>> {
        self.connectors
            .get(name)
            .ok_or_else(|| ConnectorError::UnknownCatalog(name.to_owned()))
    }

    /// A catalog's connector, if this process loaded one of that name.
    pub fn find(&self, name: &str) -> Option<&Arc<dyn Connector>> {
        self.connectors.get(name)
    }

    /// Catalog names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.connectors.keys().map(String::as_str)
    }

    /// The optimizer rules of every catalog's connector, each rule once (by name).
    pub fn optimizer_rules(
        &self,
    ) -> Vec<Arc<dyn datafusion::optimizer::OptimizerRule + Send + Sync>> {
        let mut rules: Vec<Arc<dyn datafusion::optimizer::OptimizerRule + Send + Sync>> = vec![];
        for connector in self.connectors.values() {
            for rule in connector.optimizer_rules() {
                if !rules.iter().any(|r| r.name() == rule.name()) {
                    rules.push(rule);
                }
            }
        }
        rules
    }

    /// Registers every catalog in a DataFusion session.
    pub fn register_all(&self, ctx: &SessionContext) {
        for (name, connector) in &self.connectors {
            ctx.register_catalog(name.as_str(), connector.catalog_provider());
        }
    }
}
