//! Whether a materialized view still holds what its query would return: every source table
//! has the version recorded by the last refresh.

use std::collections::BTreeMap;

use tributary_connector::{Catalogs, ConnectorMaterializedView, SourceVersion};

use super::split_key;

/// A materialized view's freshness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Freshness {
    /// Every source is as it was at the last refresh.
    Fresh,
    /// These sources changed since.
    Stale {
        /// `catalog.schema.table` of each changed source.
        changed: Vec<String>,
    },
    /// A source cannot tell its version (its changes cannot be seen).
    Unknown {
        /// `catalog.schema.table` of each such source.
        sources: Vec<String>,
    },
    /// Not refreshed yet.
    NeverRefreshed,
}

impl Freshness {
    /// Trino's word for it (`system.metadata.materialized_views.freshness`).
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Self::Fresh => "FRESH",
            Self::Stale { .. } | Self::NeverRefreshed => "STALE",
            Self::Unknown { .. } => "UNKNOWN",
        }
    }
}

/// The current version of each source (`None`: unknown, or it could not be asked — logged).
pub(crate) async fn current_versions<'a>(
    catalogs: &Catalogs,
    sources: impl IntoIterator<Item = &'a String>,
) -> BTreeMap<String, Option<SourceVersion>> {
    let mut versions = BTreeMap::new();
    for key in sources {
        let version = match split_key(key).and_then(|(c, s, t)| Some((catalogs.find(c)?, s, t))) {
            Some((connector, schema, table)) => {
                match connector.table_version(schema, table).await {
                    Ok(v) => v,
                    Err(e) => {
                        tracing::warn!(source = %key, "cannot read the version of a source: {e}");
                        None
                    }
                }
            }
            None => None,
        };
        versions.insert(key.clone(), version);
    }
    versions
}

/// Compares the versions recorded at the last refresh with the current ones.
pub(crate) fn compare(
    recorded: &BTreeMap<String, Option<SourceVersion>>,
    current: &BTreeMap<String, Option<SourceVersion>>,
) -> Freshness {
    let mut unknown = Vec::new();
    let mut changed = Vec::new();
    for (key, before) in recorded {
        match (before, current.get(key).cloned().flatten()) {
            (Some(before), Some(now)) if *before == now => {}
            (Some(_), Some(_)) => changed.push(key.clone()),
            _ => unknown.push(key.clone()),
        }
    }
    if !changed.is_empty() {
        Freshness::Stale { changed }
    } else if !unknown.is_empty() {
        Freshness::Unknown { sources: unknown }
    } else {
        Freshness::Fresh
    }
}

/// Freshness looked up once per view within one statement: reading a stale view from its
/// sources and then matching the query against the same view for a rewrite ask the sources'
/// versions (a `CHECKSUM TABLE`, a row hash) only once.
#[derive(Debug, Default)]
pub(crate) struct FreshnessMemo(std::sync::Mutex<std::collections::HashMap<String, Freshness>>);

impl FreshnessMemo {
    /// The freshness of `mv`, computed at its first lookup in this memo.
    pub(crate) async fn freshness(
        &self,
        catalogs: &Catalogs,
        mv: &ConnectorMaterializedView,
    ) -> Freshness {
        let known = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&mv.name)
            .cloned();
        if let Some(known) = known {
            return known;
        }
        let now = freshness(catalogs, mv).await;
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(mv.name.clone(), now.clone());
        now
    }
}

/// The freshness of `mv` now.
pub(crate) async fn freshness(catalogs: &Catalogs, mv: &ConnectorMaterializedView) -> Freshness {
    let Some(state) = &mv.state else {
        return Freshness::NeverRefreshed;
    };
    let current = current_versions(catalogs, state.sources.keys()).await;
    compare(&state.sources, &current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_versions() {
        let offsets = |o: i64| {
            Some(SourceVersion::Offsets {
                partitions: [(0, o)].into_iter().collect(),
            })
        };
        let recorded: BTreeMap<_, _> = [
            ("k.d.t".to_owned(), offsets(10)),
            (
                "tpch.tiny.nation".to_owned(),
                Some(SourceVersion::Immutable),
            ),
        ]
        .into_iter()
        .collect();
        assert_eq!(compare(&recorded, &recorded), Freshness::Fresh);
        let mut current = recorded.clone();
        current.insert("k.d.t".into(), offsets(12));
        assert_eq!(
            compare(&recorded, &current),
            Freshness::Stale {
                changed: vec!["k.d.t".into()]
            }
        );
        current.insert("tpch.tiny.nation".into(), None);
        assert_eq!(compare(&recorded, &current).label(), "STALE");
        let mut unknown = recorded.clone();
        unknown.insert("memory.default.m".into(), None);
        assert_eq!(compare(&unknown, &unknown).label(), "UNKNOWN");
    }
}
