//! The live resource-group tree: how many queries run and wait in each group, who starts
//! next when one ends.
//!
//! A query may start when every group on its path runs fewer queries than its
//! `hardConcurrencyLimit` and nobody waits before it in its own group; otherwise it waits
//! (QUEUED) unless a group on its path already holds `maxQueued` waiting queries (then it is
//! rejected, Trino's QUERY_QUEUE_FULL). When a query ends, the scheduler walks down from the
//! roots choosing, among the subgroups that could start a query, the one whose turn it is:
//! under `fair` the subgroups take turns (the one that started a query longest ago goes next;
//! within a group, first come first served), under `weighted` and `weighted_fair` the one
//! running the fewest queries for its `schedulingWeight` (Trino's `weighted` draws at random
//! in proportion to the weights; this is its deterministic form). Groups made from templates
//! (`${USER}`) are dropped again when idle.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::oneshot;

use super::config::{GroupSpec, ResourceGroupsConfig, Selected};
use crate::error::{Result, SchedulerError};

/// A waiting query.
#[derive(Debug)]
struct Waiter {
    id: u64,
    since: Instant,
    path: Vec<String>,
    start: oneshot::Sender<()>,
}

/// One group's live state.
#[derive(Debug)]
struct Group {
    concurrency: usize,
    max_queued: usize,
    weight: u32,
    weighted_children: bool,
    /// Made from a template (`${USER}`): dropped when idle.
    template: bool,
    /// When this group last started a query (its parent's turn counter), for `fair`.
    last_turn: u64,
    /// Turns handed out to this group's subgroups.
    turns: u64,
    running: usize,
    /// Waiting in this group or below.
    queued: usize,
    /// Waiting in this group itself (leaves).
    waiters: VecDeque<Waiter>,
    children: BTreeMap<String, Group>,
}

impl Group {
    fn new(spec: &GroupSpec) -> Self {
        Self {
            concurrency: spec.concurrency(),
            max_queued: spec.max_queued,
            weight: spec.scheduling_weight.unwrap_or(1).max(1),
            weighted_children: spec.weighted(),
            template: spec.name.contains("${"),
            last_turn: 0,
            turns: 0,
            running: 0,
            queued: 0,
            waiters: VecDeque::new(),
            children: BTreeMap::new(),
        }
    }

    fn has_room(&self) -> bool {
        self.running < self.concurrency
    }

    /// Whether a query arriving at `rest` below this group may start at once.
    fn can_start(&self, rest: &[String]) -> bool {
        self.has_room()
            && match rest.split_first() {
                None => self.waiters.is_empty(),
                Some((next, rest)) => self.children.get(next).is_some_and(|c| c.can_start(rest)),
            }
    }

    /// The first group along `rest` (this one included) whose queue is full.
    fn full_queue(&self, name: &str, rest: &[String]) -> Option<String> {
        if self.queued >= self.max_queued {
            return Some(name.to_owned());
        }
        let (next, rest) = rest.split_first()?;
        self.children
            .get(next)?
            .full_queue(&format!("{name}.{next}"), rest)
    }

    fn add(&mut self, rest: &[String], running: isize, queued: isize) {
        self.running = self.running.saturating_add_signed(running);
        self.queued = self.queued.saturating_add_signed(queued);
        if let Some((next, rest)) = rest.split_first() {
            let drop_child = self.children.get_mut(next).is_some_and(|child| {
                child.add(rest, running, queued);
                child.template && child.idle()
            });
            if drop_child {
                self.children.remove(next);
            }
        }
    }

    fn idle(&self) -> bool {
        self.running == 0 && self.queued == 0
    }

    fn leaf_mut(&mut self, rest: &[String]) -> Option<&mut Group> {
        match rest.split_first() {
            None => Some(self),
            Some((next, rest)) => self.children.get_mut(next)?.leaf_mut(rest),
        }
    }

    /// The oldest waiting query at or below this group that could start now.
    fn oldest_startable(&self) -> Option<Instant> {
        if !self.has_room() || self.queued == 0 {
            return None;
        }
        let own = self.waiters.front().map(|w| w.since);
        let below = self
            .children
            .values()
            .filter_map(Group::oldest_startable)
            .min();
        match (own, below) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Takes the next query to start at or below this group (counting it as running).
    fn start_next(&mut self) -> Option<Waiter> {
        if !self.has_room() || self.queued == 0 {
            return None;
        }
        let waiter = if let Some(waiter) = self.waiters.pop_front() {
            waiter
        } else {
            let weighted = self.weighted_children;
            self.turns += 1;
            let turn = self.turns;
            let child = pick(&mut self.children, weighted)?;
            child.last_turn = turn;
            child.start_next()?
        };
        self.running += 1;
        self.queued -= 1;
        Some(waiter)
    }
}

/// The subgroup whose turn it is to start a query: `weighted`, the least running per weight;
/// otherwise (`fair`) the one that started a query longest ago (ties: the oldest waiter).
fn pick(groups: &mut BTreeMap<String, Group>, weighted: bool) -> Option<&mut Group> {
    let candidates = groups
        .values_mut()
        .filter_map(|g| g.oldest_startable().map(|since| (since, g)));
    if weighted {
        candidates
            .min_by(|(a_since, a), (b_since, b)| {
                let a_share = a.running as f64 / f64::from(a.weight);
                let b_share = b.running as f64 / f64::from(b.weight);
                a_share.total_cmp(&b_share).then(a_since.cmp(b_since))
            })
            .map(|(_, g)| g)
    } else {
        candidates
            .min_by_key(|(since, g)| (g.last_turn, *since))
            .map(|(_, g)| g)
    }
}

#[derive(Debug)]
struct Tree {
    roots: BTreeMap<String, Group>,
    next_id: u64,
}

impl Tree {
    /// Makes the groups of `selected` that do not exist yet (a template is made once per
    /// name it is filled with).
    fn ensure(&mut self, config: &ResourceGroupsConfig, selected: &Selected) -> Result<()> {
        let mut level = &mut self.roots;
        for (depth, name) in selected.path.iter().enumerate() {
            let spec = config.spec(&selected.template[..=depth]).ok_or_else(|| {
                SchedulerError::Config(format!(
                    "resource group '{}' is not in {}",
                    selected.template[..=depth].join("."),
                    config.file.display()
                ))
            })?;
            level = &mut level
                .entry(name.clone())
                .or_insert_with(|| Group::new(spec))
                .children;
        }
        Ok(())
    }

    fn add(&mut self, path: &[String], running: isize, queued: isize) {
        if let Some((root, rest)) = path.split_first()
            && let Some(group) = self.roots.get_mut(root)
        {
            group.add(rest, running, queued);
        }
    }

    /// Starts every waiting query that may start now, in turn.
    fn dispatch(&mut self) {
        loop {
            let Some(root) = pick(&mut self.roots, false) else {
                return;
            };
            let Some(waiter) = root.start_next() else {
                return;
            };
            if waiter.start.send(()).is_err() {
                // Its client left while it waited: give the slot back and go on.
                self.add(&waiter.path, -1, 0);
            }
        }
    }
}

/// Admission control: queries wait in their resource group until it has room.
#[derive(Debug, Clone)]
pub struct ResourceGroups {
    config: Arc<ResourceGroupsConfig>,
    tree: Arc<Mutex<Tree>>,
}

/// Holds a query's place among its group's running queries until dropped.
#[derive(Debug)]
pub struct Running {
    tree: Arc<Mutex<Tree>>,
    path: Vec<String>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let mut tree = self.tree.lock().unwrap_or_else(|e| e.into_inner());
        tree.add(&self.path, -1, 0);
        tree.dispatch();
    }
}

/// A query waiting for its turn; dropping it leaves the queue.
#[derive(Debug)]
pub struct Waiting {
    tree: Arc<Mutex<Tree>>,
    path: Vec<String>,
    id: u64,
    start: Option<oneshot::Receiver<()>>,
}

impl Waiting {
    /// Waits until the query may start.
    pub async fn started(mut self) -> Running {
        if let Some(start) = self.start.as_mut() {
            // The sender lives in the tree until the query starts; it is only dropped unsent
            // when this waiter is removed, which takes `self`.
            let _ = start.await;
        }
        self.start = None;
        Running {
            tree: Arc::clone(&self.tree),
            path: std::mem::take(&mut self.path),
        }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let Some(mut start) = self.start.take() else {
            return;
        };
        let mut tree = self.tree.lock().unwrap_or_else(|e| e.into_inner());
        let removed = match self.path.split_first() {
            Some((root, rest)) => tree
                .roots
                .get_mut(root)
                .and_then(|g| g.leaf_mut(rest))
                .and_then(|leaf| {
                    let at = leaf.waiters.iter().position(|w| w.id == self.id)?;
                    leaf.waiters.remove(at)
                })
                .is_some(),
            None => false,
        };
        if removed {
            tree.add(&self.path, 0, -1);
        } else if start.try_recv().is_ok() {
            // Started just as its client left: give the slot back.
            tree.add(&self.path, -1, 0);
            tree.dispatch();
        }
    }
}

/// Whether a query starts now or waits.
#[derive(Debug)]
pub enum Admission {
    /// It runs now.
    Run(Running),
    /// It waits (QUEUED) for its turn.
    Wait(Waiting),
}

impl ResourceGroups {
    /// The groups of a configuration, none running yet.
    pub fn new(config: ResourceGroupsConfig) -> Self {
        Self {
            config: Arc::new(config),
            tree: Arc::new(Mutex::new(Tree {
                roots: BTreeMap::new(),
                next_id: 0,
            })),
        }
    }

    /// The configuration (selectors).
    pub fn config(&self) -> &ResourceGroupsConfig {
        &self.config
    }

    /// Lets a query of group `selected` start, wait, or be rejected (its group's queue is
    /// full).
    pub fn admit(&self, selected: &Selected) -> Result<Admission> {
        let path = selected.path.as_slice();
        let mut tree = self.tree.lock().unwrap_or_else(|e| e.into_inner());
        tree.ensure(&self.config, selected)?;
        let (root, rest) = path
            .split_first()
            .ok_or_else(|| SchedulerError::Config("empty resource group".into()))?;
        let group = tree
            .roots
            .get(root)
            .ok_or_else(|| SchedulerError::Config(format!("no resource group '{root}'")))?;
        if group.can_start(rest) {
            tree.add(path, 1, 0);
            return Ok(Admission::Run(Running {
                tree: Arc::clone(&self.tree),
                path: path.to_vec(),
            }));
        }
        if let Some(full) = group.full_queue(root, rest) {
            return Err(SchedulerError::QueryQueueFull(format!(
                "Too many queued queries for \"{full}\""
            )));
        }
        tree.next_id += 1;
        let id = tree.next_id;
        let (start, started) = oneshot::channel();
        tree.add(path, 0, 1);
        let leaf = tree
            .roots
            .get_mut(root)
            .and_then(|g| g.leaf_mut(rest))
            .ok_or_else(|| {
                SchedulerError::Config(format!("no resource group '{}'", path.join(".")))
            })?;
        leaf.waiters.push_back(Waiter {
            id,
            since: Instant::now(),
            path: path.to_vec(),
            start,
        });
        Ok(Admission::Wait(Waiting {
            tree: Arc::clone(&self.tree),
            path: path.to_vec(),
            id,
            start: Some(started),
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const GROUPS: &str = r#"{
      "rootGroups": [{"name": "global", "hardConcurrencyLimit": 3, "maxQueued": 10,
        "schedulingPolicy": "fair", "subGroups": [
          {"name": "${USER}", "hardConcurrencyLimit": 2, "maxQueued": 1}]}],
      "selectors": [{"group": "global.${USER}"}]
    }"#;

    fn groups() -> ResourceGroups {
        ResourceGroups::new(
            ResourceGroupsConfig::parse(Path::new("rg.json"), GROUPS).expect("parses"),
        )
    }

    fn path(user: &str) -> Selected {
        Selected {
            path: vec!["global".into(), user.into()],
            template: vec!["global".into(), "${USER}".into()],
        }
    }

    fn run(a: Result<Admission>) -> Running {
        match a.expect("admitted") {
            Admission::Run(r) => r,
            Admission::Wait(_) => panic!("waits"),
        }
    }

    fn wait(a: Result<Admission>) -> Waiting {
        match a.expect("admitted") {
            Admission::Wait(w) => w,
            Admission::Run(_) => panic!("runs"),
        }
    }

    #[tokio::test]
    async fn a_user_over_its_limit_waits_then_starts_and_a_full_queue_rejects() {
        let g = groups();
        let first = run(g.admit(&path("ann")));
        let _second = run(g.admit(&path("ann")));
        let third = wait(g.admit(&path("ann")));
        let err = g.admit(&path("ann")).expect_err("queue full").to_string();
        assert_eq!(err, "Too many queued queries for \"global.ann\"");
        // Another user has room of their own, up to the parent's limit (3): now full.
        let bob = run(g.admit(&path("bob")));
        let carol = wait(g.admit(&path("carol")));
        drop(first);
        // Both wait for the slot ann's first query frees; ann's third came first.
        let third = tokio::time::timeout(std::time::Duration::from_secs(1), third.started())
            .await
            .expect("started after the first ended");
        drop(bob);
        let carol = tokio::time::timeout(std::time::Duration::from_secs(1), carol.started())
            .await
            .expect("started after bob's ended");
        drop(third);
        drop(carol);
        let _again = run(g.admit(&path("ann")));
    }

    #[tokio::test]
    async fn fair_subgroups_take_turns() {
        let config = r#"{
          "rootGroups": [{"name": "global", "hardConcurrencyLimit": 2, "maxQueued": 10,
            "subGroups": [{"name": "${USER}", "hardConcurrencyLimit": 5, "maxQueued": 5}]}],
          "selectors": [{"group": "global.${USER}"}]
        }"#;
        let g = ResourceGroups::new(
            ResourceGroupsConfig::parse(Path::new("rg.json"), config).expect("parses"),
        );
        let quick = std::time::Duration::from_millis(200);
        let a1 = run(g.admit(&path("ann")));
        let a2 = run(g.admit(&path("ann")));
        let a3 = wait(g.admit(&path("ann")));
        let a4 = wait(g.admit(&path("ann")));
        let b1 = wait(g.admit(&path("bob")));
        drop(a1);
        let a3 = tokio::time::timeout(quick, a3.started())
            .await
            .expect("ann's a3 first");
        drop(a2);
        // First come, first served would start ann's a4 (older); fair gives bob his turn.
        let b1 = tokio::time::timeout(quick, b1.started())
            .await
            .expect("bob's turn");
        drop(a3);
        let a4 = tokio::time::timeout(quick, a4.started())
            .await
            .expect("then ann again");
        drop((a4, b1));
    }

    #[test]
    fn idle_template_groups_are_dropped() {
        let g = groups();
        for n in 0..100 {
            drop(run(g.admit(&path(&format!("user{n}")))));
        }
        let tree = g.tree.lock().expect("lock");
        let global = tree.roots.get("global").expect("root");
        assert!(global.children.is_empty());
        assert_eq!((global.running, global.queued), (0, 0));
    }

    #[tokio::test]
    async fn a_waiter_that_leaves_frees_its_place() {
        let g = groups();
        let _a = run(g.admit(&path("ann")));
        let _b = run(g.admit(&path("ann")));
        let waiting = wait(g.admit(&path("ann")));
        drop(waiting);
        // Its place in the queue (maxQueued 1) is free again.
        let _w = wait(g.admit(&path("ann")));
    }
}
