//! The object-store registry of every scheduler and executor runtime: DataFusion's default
//! registry, plus stores that connectors create on first use for the URLs their scans name
//! (a Hive catalog's `s3://<catalog>@<bucket>/`), so executors reach the same storage with
//! the same credentials as the scheduler that planned the scan.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use datafusion::error::{DataFusionError, Result};
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use object_store::ObjectStore;
use url::Url;

use crate::registry::Catalogs;

/// Object stores of a runtime; one instance is shared by all runtimes of a process so
/// connections are reused.
#[derive(Debug)]
pub struct ConnectorStores {
    defaults: DefaultObjectStoreRegistry,
    catalogs: Catalogs,
    created: Mutex<HashMap<String, Arc<dyn ObjectStore>>>,
}

impl ConnectorStores {
    /// A registry resolving connector URLs through `catalogs`.
    pub fn new(catalogs: Catalogs) -> Self {
        Self {
            defaults: DefaultObjectStoreRegistry::new(),
            catalogs,
            created: Mutex::new(HashMap::new()),
        }
    }
}

/// `scheme://user@host:port`: unlike DataFusion's key, the user part (a catalog name) counts.
fn key(url: &Url) -> String {
    format!(
        "{}://{}@{}",
        url.scheme(),
        url.username(),
        &url[url::Position::BeforeHost..url::Position::AfterPort]
    )
}

impl ObjectStoreRegistry for ConnectorStores {
    fn register_store(
        &self,
        url: &Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        self.defaults.register_store(url, store)
    }

    fn deregister_store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        self.defaults.deregister_store(url)
    }

    fn get_store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        let catalog = url.username();
        if catalog.is_empty() {
            return self.defaults.get_store(url);
        }
        let key = key(url);
        let mut created = self
            .created
            .lock()
            .map_err(|_| DataFusionError::Internal("object store registry poisoned".into()))?;
        if let Some(store) = created.get(&key) {
            return Ok(Arc::clone(store));
        }
        let connector = self.catalogs.get(catalog)?;
        let store = connector.object_store(url).ok_or_else(|| {
            DataFusionError::Configuration(format!(
                "catalog '{catalog}' has no storage for {}",
                url.as_str()
            ))
        })??;
        created.insert(key, Arc::clone(&store));
        Ok(store)
    }
}
