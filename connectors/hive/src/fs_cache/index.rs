//! What the file system cache holds, in memory: each object's version and pages, each page's
//! size and last use, and the bytes each directory holds. No I/O: callers delete the files of
//! the pages it gives back.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::ObjectMeta;
use object_store::path::Path;

/// An object of one bucket.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ObjectKey {
    pub(crate) bucket: Arc<str>,
    pub(crate) path: Path,
}

impl ObjectKey {
    pub(crate) fn new(bucket: &Arc<str>, path: &Path) -> Self {
        Self {
            bucket: Arc::clone(bucket),
            path: path.clone(),
        }
    }
}

/// A page's file: the directory, the object's id and the page's number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PageFile {
    pub(crate) dir: usize,
    pub(crate) object: u64,
    pub(crate) page: u64,
}

/// The version of an object the cache reads pages of.
#[derive(Debug, Clone)]
pub(crate) struct Current {
    /// Names the object's page files; a new version gets a new id.
    pub(crate) id: u64,
    pub(crate) dir: usize,
    pub(crate) meta: ObjectMeta,
}

#[derive(Debug)]
struct Object {
    current: Current,
    version: String,
    checked: Instant,
    pages: HashMap<u64, Page>,
}

#[derive(Debug, Clone, Copy)]
struct Page {
    tick: u64,
    len: u64,
    used: Instant,
}

/// The index of one cache.
#[derive(Debug)]
pub(crate) struct Index {
    objects: HashMap<ObjectKey, Object>,
    keys: HashMap<u64, ObjectKey>,
    /// Per directory: pages by last use (tick), oldest first.
    by_use: Vec<BTreeMap<u64, (u64, u64)>>,
    used: Vec<u64>,
    limits: Vec<u64>,
    tick: u64,
    next_id: u64,
}

/// What identifies an object's content: its ETag, else its version, else its modification time
/// and size.
pub(crate) fn version_of(meta: &ObjectMeta) -> String {
    meta.e_tag
        .clone()
        .or_else(|| meta.version.clone())
        .unwrap_or_else(|| format!("{}/{}", meta.last_modified.to_rfc3339(), meta.size))
}

impl Index {
    /// An empty index over directories of these sizes.
    pub(crate) fn new(limits: Vec<u64>) -> Self {
        Self {
            objects: HashMap::new(),
            keys: HashMap::new(),
            by_use: limits.iter().map(|_| BTreeMap::new()).collect(),
            used: vec![0; limits.len()],
            limits,
            tick: 0,
            next_id: 0,
        }
    }

    /// The object's version if it was checked against the store within `fresh`.
    pub(crate) fn fresh(&self, key: &ObjectKey, fresh: Duration, now: Instant) -> Option<Current> {
        self.objects
            .get(key)
            .filter(|o| now.saturating_duration_since(o.checked) < fresh)
            .map(|o| o.current.clone())
    }

    /// Records what the store says the object is now: the same version keeps its pages, another
    /// drops them (returned, to delete) and gets a new id.
    pub(crate) fn checked(
        &mut self,
        key: &ObjectKey,
        meta: ObjectMeta,
        now: Instant,
    ) -> (Current, Vec<PageFile>) {
        let version = version_of(&meta);
        if let Some(object) = self.objects.get_mut(key)
            && object.version == version
        {
            object.checked = now;
            return (object.current.clone(), Vec::new());
        }
        let dropped = self.remove(key);
        let id = self.next_id;
        self.next_id += 1;
        let current = Current {
            id,
            dir: usize::try_from(id).unwrap_or(0) % self.limits.len().max(1),
            meta,
        };
        self.keys.insert(id, key.clone());
        self.objects.insert(
            key.clone(),
            Object {
                current: current.clone(),
                version,
                checked: now,
                pages: HashMap::new(),
            },
        );
        (current, dropped)
    }

    /// Which of `pages` of object `id` are held (marking them used).
    pub(crate) fn held(&mut self, id: u64, pages: &[u64], now: Instant) -> Vec<bool> {
        let Some(key) = self.keys.get(&id) else {
            return vec![false; pages.len()];
        };
        let Some(object) = self.objects.get_mut(key) else {
            return vec![false; pages.len()];
        };
        let dir = object.current.dir;
        pages
            .iter()
            .map(|p| match object.pages.get_mut(p) {
                Some(page) => {
                    self.by_use[dir].remove(&page.tick);
                    self.tick += 1;
                    page.tick = self.tick;
                    page.used = now;
                    self.by_use[dir].insert(self.tick, (id, *p));
                    true
                }
                None => false,
            })
            .collect()
    }

    /// Adds a page just written, evicting the least recently used pages of its directory to
    /// make room. Returns the files to delete: evicted pages, and the page itself when its
    /// object changed meanwhile or it cannot fit (a page held already was rewritten with the
    /// same bytes and stays).
    pub(crate) fn add(&mut self, file: PageFile, len: u64, now: Instant) -> Vec<PageFile> {
        let limit = self.limits.get(file.dir).copied().unwrap_or(0);
        let object = self
            .keys
            .get(&file.object)
            .and_then(|k| self.objects.get(k))
            .filter(|o| o.current.dir == file.dir);
        match object {
            None => return vec![file],
            Some(o) if o.pages.contains_key(&file.page) => return Vec::new(),
            Some(_) if len > limit => return vec![file],
            Some(_) => {}
        }
        let mut dropped = Vec::new();
        while self.used[file.dir] + len > limit {
            match self.pop_oldest(file.dir) {
                Some(evicted) => dropped.push(evicted),
                None => break,
            }
        }
        let Some(object) = self
            .keys
            .get(&file.object)
            .and_then(|k| self.objects.get_mut(k))
        else {
            dropped.push(file);
            return dropped;
        };
        self.tick += 1;
        object.pages.insert(
            file.page,
            Page {
                tick: self.tick,
                len,
                used: now,
            },
        );
        self.by_use[file.dir].insert(self.tick, (file.object, file.page));
        self.used[file.dir] += len;
        dropped
    }

    /// Drops a page whose file went missing.
    pub(crate) fn forget(&mut self, object: u64, page: u64) {
        let Some(o) = self.keys.get(&object).and_then(|k| self.objects.get_mut(k)) else {
            return;
        };
        if let Some(p) = o.pages.remove(&page) {
            let dir = o.current.dir;
            self.by_use[dir].remove(&p.tick);
            self.used[dir] -= p.len;
        }
    }

    /// Evicts the least recently used page of a directory.
    fn pop_oldest(&mut self, dir: usize) -> Option<PageFile> {
        let (_, (object, page)) = self.by_use[dir].pop_first()?;
        self.forget(object, page);
        // An object with no page left is forgotten too: the index stays as large as the pages.
        let empty = self
            .keys
            .get(&object)
            .filter(|k| self.objects.get(*k).is_some_and(|o| o.pages.is_empty()))
            .cloned();
        if let Some(key) = empty {
            self.objects.remove(&key);
            self.keys.remove(&object);
        }
        Some(PageFile { dir, object, page })
    }

    /// Drops pages unused for `ttl`.
    pub(crate) fn expire(&mut self, ttl: Duration, now: Instant) -> Vec<PageFile> {
        let mut dropped = Vec::new();
        for dir in 0..self.by_use.len() {
            while let Some((_, &(object, page))) = self.by_use[dir].first_key_value() {
                let used = self
                    .keys
                    .get(&object)
                    .and_then(|k| self.objects.get(k))
                    .and_then(|o| o.pages.get(&page))
                    .map(|p| p.used);
                if used.is_some_and(|used| now.saturating_duration_since(used) < ttl) {
                    break;
                }
                dropped.extend(self.pop_oldest(dir));
            }
        }
        dropped
    }

    /// Drops an object (written, deleted, or changed): its page files to delete.
    pub(crate) fn remove(&mut self, key: &ObjectKey) -> Vec<PageFile> {
        let Some(object) = self.objects.remove(key) else {
            return Vec::new();
        };
        let id = object.current.id;
        let dir = object.current.dir;
        self.keys.remove(&id);
        object
            .pages
            .into_iter()
            .map(|(page, p)| {
                self.by_use[dir].remove(&p.tick);
                self.used[dir] -= p.len;
                PageFile {
                    dir,
                    object: id,
                    page,
                }
            })
            .collect()
    }

    /// Bytes held per directory.
    pub(crate) fn used(&self) -> &[u64] {
        &self.used
    }
}
