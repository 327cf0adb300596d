//! Each process's own directory under each of `fs.cache.directories`:
//! `<directory>/<catalog>/<host>.<pid>/`, started empty, and the directories of this host's
//! processes that are gone removed.

use std::path::{Path, PathBuf};

use crate::config::FsCacheConfig;
use crate::error::{HiveError, Result};

/// Prepares this process's directory under each cache directory, empty, after removing those
/// of this host's processes that are gone.
pub(super) fn own(config: &FsCacheConfig, catalog: &str) -> Result<Vec<PathBuf>> {
    let host = host_name();
    let pid = std::process::id();
    let mut dirs = Vec::new();
    for (dir, _) in &config.directories {
        let parent = dir.join(catalog);
        std::fs::create_dir_all(&parent).map_err(|e| cache_dir_error(&parent, &e))?;
        remove_departed(&parent, &host, pid);
        let own = parent.join(format!("{host}.{pid}"));
        if own.exists() {
            std::fs::remove_dir_all(&own).map_err(|e| cache_dir_error(&own, &e))?;
        }
        std::fs::create_dir_all(&own).map_err(|e| cache_dir_error(&own, &e))?;
        dirs.push(own);
    }
    Ok(dirs)
}

fn cache_dir_error(dir: &Path, e: &std::io::Error) -> HiveError {
    HiveError::Metadata(format!(
        "cannot prepare the file system cache directory {} (fs.cache.directories): {e}",
        dir.display()
    ))
}

pub(super) fn host_name() -> String {
    sysinfo::System::host_name()
        .filter(|h| !h.is_empty())
        .map(|h| h.replace(['/', '.'], "_"))
        .unwrap_or_else(|| "localhost".into())
}

/// Removes directories `<host>.<pid>` of this host whose process is gone (or that carry this
/// process's id from an earlier life, as in a restarted container).
fn remove_departed(parent: &Path, host: &str, pid: u32) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some((h, p)) = name.to_str().and_then(|n| n.rsplit_once('.')) else {
            continue;
        };
        let Ok(other) = p.parse::<u32>() else {
            continue;
        };
        let alive = other != pid && Path::new(&format!("/proc/{other}")).exists();
        if h == host && !alive {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
