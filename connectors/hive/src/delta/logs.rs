//! Delta logs read so far, by table location.
//!
//! A table is looked up several times to plan and run one statement, and each lookup read
//! the whole log again: the last checkpoint and every commit after it (five times for one
//! `SELECT count(*)` of a local 12-commit table from `tributary sql`: 60 commit files opened,
//! now 1). A table read before is now brought up to date instead (`update_incremental`: only
//! the commits after its version), so every lookup still sees the newest version. It is read
//! from scratch when the commit file of its version is gone or is another file (same path,
//! other size or time: the table was dropped and made again at its location).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use deltalake_core::DeltaTable;
use deltalake_core::kernel::Version;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};

use crate::context::HiveContext;
use crate::error::{HiveError, Result};
use crate::storage::Location;

/// Tables kept; past it the oldest is forgotten (each holds its snapshot's file list).
const MAX_TABLES: usize = 64;

/// Loaded Delta tables by location, each with the commit file of its version.
#[derive(Default)]
pub struct DeltaLogs(Mutex<HashMap<String, Loaded>>);

impl std::fmt::Debug for DeltaLogs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeltaLogs({} tables)", self.lock().len())
    }
}

#[derive(Clone)]
struct Loaded {
    table: DeltaTable,
    commit: ObjectMeta,
    used: u64,
}

impl DeltaLogs {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Loaded>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The newest version of the Delta table at `location`.
    pub async fn open(
        &self,
        ctx: &HiveContext,
        location: &Location,
        table: &str,
    ) -> Result<DeltaTable> {
        let key = location.to_string();
        let store = ctx.stores.get(location)?;
        let cached = self.lock().get(&key).cloned();
        // The commit file the held table was checked against, while its version stays.
        let (mut delta, held) = match cached {
            Some(loaded) if same_file(&store, &loaded.commit).await => {
                (loaded.table, Some(loaded.commit))
            }
            Some(_) => {
                // Another table now (or none): its newer version must not keep this one out.
                self.forget(location);
                (super::handle(ctx, location, table)?, None)
            }
            None => (super::handle(ctx, location, table)?, None),
        };
        let before = delta.version();
        delta.load().await.map_err(|e| HiveError::BadData {
            table: table.to_owned(),
            message: format!("cannot read the Delta log at {location}: {e}"),
        })?;
        let Some(version) = delta.version() else {
            return Ok(delta);
        };
        // Kept only with its commit file's identity: without it a recreated table would go
        // unnoticed.
        let commit = match held {
            Some(commit) if before == Some(version) => Some(commit),
            _ => store.head(&commit_path(location, version)).await.ok(),
        };
        if let Some(commit) = commit {
            self.keep(key, delta.clone(), commit);
        }
        Ok(delta)
    }

    /// Forgets the table at `location` (dropped, its files deleted).
    pub fn forget(&self, location: &Location) {
        self.lock().remove(&location.to_string());
    }

    fn keep(&self, key: String, table: DeltaTable, commit: ObjectMeta) {
        let mut tables = self.lock();
        let used = tables.values().map(|l| l.used).max().unwrap_or(0) + 1;
        // A concurrent lookup may have kept a newer version meanwhile.
        if tables
            .get(&key)
            .is_some_and(|kept| kept.table.version() > table.version())
        {
            return;
        }
        if tables.len() >= MAX_TABLES && !tables.contains_key(&key) {
            let oldest = tables
                .iter()
                .min_by_key(|(_, l)| l.used)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                tables.remove(&oldest);
            }
        }
        tables.insert(
            key,
            Loaded {
                table,
                commit,
                used,
            },
        );
    }
}

/// Whether the commit file a table was loaded at is still the same file.
async fn same_file(store: &Arc<dyn ObjectStore>, commit: &ObjectMeta) -> bool {
    match store.head(&commit.location).await {
        Ok(now) => {
            now.size == commit.size
                && now.last_modified == commit.last_modified
                && now.e_tag == commit.e_tag
        }
        Err(_) => false,
    }
}

/// `_delta_log/<version, 20 digits>.json` under the table's location.
fn commit_path(location: &Location, version: Version) -> Path {
    location
        .path
        .clone()
        .join("_delta_log")
        .join(format!("{version:020}.json"))
}
