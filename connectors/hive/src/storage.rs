//! Locations (`s3://`, `s3a://`, `s3n://`, `file://`, absolute paths) and the object stores
//! behind them, built on `object_store`.
//!
//! A scan names its store as `s3://<catalog>@<bucket>/`: the user part tells every process's
//! [`tributary_connector::ConnectorStores`] which catalog's credentials to use, so two
//! catalogs on one bucket keep their own. Local files use DataFusion's `file:///` store.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use datafusion::execution::object_store::ObjectStoreUrl;
use object_store::aws::{AmazonS3Builder, S3ConditionalPut};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ClientOptions, ObjectStore, RetryConfig};

use crate::config::S3Config;
use crate::error::{HiveError, Result};
use crate::fs_cache::FsCache;

/// A directory in storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// `s3`/`s3a`/`s3n` with the bucket, or `None` for the local file system.
    pub bucket: Option<(String, String)>,
    /// The directory inside the bucket (or the absolute local path without its leading `/`).
    pub path: Path,
}

impl Location {
    /// Parses a location as users write it.
    pub fn parse(text: &str) -> Result<Self> {
        let invalid = |reason: &str| HiveError::InvalidLocation {
            location: text.to_owned(),
            reason: reason.to_owned(),
        };
        let text = text.trim();
        if let Some((scheme, rest)) = text.split_once("://") {
            match scheme.to_ascii_lowercase().as_str() {
                "s3" | "s3a" | "s3n" => {
                    let (bucket, path) = rest.split_once('/').unwrap_or((rest, ""));
                    if bucket.len() < 3 {
                        return Err(invalid(
                            "the bucket name is missing or shorter than 3 characters",
                        ));
                    }
                    Ok(Self {
                        bucket: Some((scheme.to_ascii_lowercase(), bucket.to_owned())),
                        path: Path::parse(path.trim_matches('/'))
                            .map_err(|e| invalid(&e.to_string()))?,
                    })
                }
                "file" | "local" => Self::local(rest, &invalid),
                other => Err(invalid(&format!(
                    "unsupported scheme '{other}' (use s3://, s3a://, s3n://, file:// or an absolute path)"
                ))),
            }
        } else if let Some(rest) = text.strip_prefix("file:") {
            Self::local(rest, &invalid)
        } else {
            Self::local(text, &invalid)
        }
    }

    fn local(path: &str, invalid: &dyn Fn(&str) -> HiveError) -> Result<Self> {
        if !path.starts_with('/') {
            return Err(invalid("a local location must be an absolute path"));
        }
        Ok(Self {
            bucket: None,
            path: Path::parse(path.trim_matches('/')).map_err(|e| invalid(&e.to_string()))?,
        })
    }

    /// A sub-directory.
    pub fn child(&self, name: &str) -> Self {
        Self {
            bucket: self.bucket.clone(),
            path: self.path.clone().join(name),
        }
    }

    /// An object directly below this directory.
    pub fn file(&self, name: &str) -> Path {
        self.path.clone().join(name)
    }

    /// The object store URL scans of `catalog` name for this location.
    pub fn store_url(&self, catalog: &str) -> ObjectStoreUrl {
        let url = match &self.bucket {
            Some((_, bucket)) => format!("s3://{catalog}@{bucket}/"),
            None => "file:///".to_owned(),
        };
        // Both forms are valid object store URLs by construction.
        ObjectStoreUrl::parse(url).unwrap_or_else(|_| ObjectStoreUrl::local_filesystem())
    }

    /// The location of an object path of the same store, as users write it.
    pub fn display_path(&self, path: &Path) -> String {
        match &self.bucket {
            Some((scheme, bucket)) => format!("{scheme}://{bucket}/{path}"),
            None => format!("file:///{path}"),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.as_ref();
        let sep = if path.is_empty() { "" } else { "/" };
        match &self.bucket {
            Some((scheme, bucket)) => write!(f, "{scheme}://{bucket}/{path}{sep}"),
            None => write!(f, "file:///{path}{sep}"),
        }
    }
}

/// The object stores of one catalog, one per bucket, created on first use; buckets are read
/// through the catalog's file system cache when it has one.
#[derive(Debug)]
pub struct Stores {
    s3: S3Config,
    cache: Option<Arc<FsCache>>,
    local: Arc<dyn ObjectStore>,
    buckets: Mutex<HashMap<String, Arc<dyn ObjectStore>>>,
}

impl Stores {
    /// Stores with the catalog's S3 settings and file system cache.
    pub fn new(s3: S3Config, cache: Option<Arc<FsCache>>) -> Self {
        Self {
            s3,
            cache,
            local: Arc::new(LocalFileSystem::new()),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// The store holding `location`.
    pub fn get(&self, location: &Location) -> Result<Arc<dyn ObjectStore>> {
        match &location.bucket {
            None => Ok(Arc::clone(&self.local)),
            Some((_, bucket)) => self.bucket(bucket),
        }
    }

    /// The store of an S3 bucket.
    pub fn bucket(&self, bucket: &str) -> Result<Arc<dyn ObjectStore>> {
        let mut buckets = self
            .buckets
            .lock()
            .map_err(|_| HiveError::Metadata("object store cache poisoned".into()))?;
        if let Some(store) = buckets.get(bucket) {
            return Ok(Arc::clone(store));
        }
        let s3 = &self.s3;
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_region(s3.region.clone().unwrap_or_else(|| "us-east-1".into()))
            .with_virtual_hosted_style_request(!s3.path_style)
            .with_conditional_put(S3ConditionalPut::ETagMatch)
            .with_retry(RetryConfig {
                max_retries: 3,
                retry_timeout: Duration::from_secs(15),
                ..RetryConfig::default()
            })
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(5))
                    .with_timeout(Duration::from_secs(120)),
            );
        if let Some(endpoint) = &s3.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        if let Some(key) = &s3.access_key {
            builder = builder.with_access_key_id(key.expose());
        }
        if let Some(secret) = &s3.secret_key {
            builder = builder.with_secret_access_key(secret.expose());
        }
        let mut store: Arc<dyn ObjectStore> = Arc::new(builder.build().map_err(|e| {
            HiveError::storage(format!("cannot configure S3 for bucket '{bucket}'"), &e)
        })?);
        if let Some(cache) = &self.cache {
            store = cache.wrap(bucket, store);
        }
        buckets.insert(bucket.to_owned(), Arc::clone(&store));
        Ok(store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_locations() {
        let l = Location::parse("s3a://your-bucket/orders/").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(l.bucket, Some(("s3a".into(), "your-bucket".into())));
        assert_eq!(l.path.as_ref(), "orders");
        assert_eq!(l.to_string(), "s3a://your-bucket/orders/");
        assert_eq!(l.store_url("hive").as_str(), "s3://hive@your-bucket/");
        let l = Location::parse("file:///tmp/x").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((l.bucket.clone(), l.path.as_ref()), (None, "tmp/x"));
        assert_eq!(l.to_string(), "file:///tmp/x/");
        assert!(Location::parse("/tmp/y").is_ok());
        assert!(Location::parse("relative/dir").is_err());
        assert!(Location::parse("gs://b/x").is_err());
    }
}
