//! A broadcast join's build side, fetched, built and held once per executor.
//!
//! Ballista runs a broadcast join as DataFusion's `HashJoinExec` in `CollectLeft` mode whose
//! build (left) side is read whole by every task of the probe stage: a broadcast
//! `ShuffleReaderExec` (the build side's own stage, as the adaptive planner makes it), or the
//! build side's scan itself when it is planned in the probe's stage (a one-split table: then
//! every task read the table from its source). The partitions of one task share the join's
//! build (the join's `OnceAsync` build future), but each task decodes its own plan, so every
//! task fetched or scanned the build side, built its own hash table and held it. Ballista packs as many partitions into a
//! task as the executor has free slots, so an idle executor gets one task per stage; an
//! executor whose slots free one at a time (it runs other stages' tasks too), a stage with more
//! partitions than slots, or `ballista.scheduler.max_partitions_per_task` gives it several.
//!
//! [`SharedBuilds`] keeps, per executor, one join per (job, stage, join, build side) and gives
//! the joins of later tasks the same build future: DataFusion's `HashJoinExecBuilder` keeps it
//! when the join's children are replaced, so each task's join probes with its own input and
//! the build side is fetched, built and held once on this executor, charged to the query's
//! memory pool here (`memory.rs`). Only joins whose build side keeps no per-probe state are
//! shared (inner, right, right semi/anti/mark joins; a left or full join's build side records
//! the rows its own probes matched), and only build sides whose leaves are broadcast readers or
//! file scans (connectors' splits are file scans), identical for every task of the stage: the
//! readers' partition locations and the scans' files and splits are part of the key, so a
//! stage re-run reading other files builds anew. An entry lives while a task using it is
//! alive and [`LINGER`] after (the stage's next task on this executor usually starts within a
//! scheduler round trip), and is dropped when a task using it fails, so a retry builds anew.
//!
//! The joins share DataFusion's metrics set too; [`SharedBuildJoin`] reports only the metrics
//! its own task registered, so EXPLAIN ANALYZE shows the build side read and built once per
//! executor (`build_input_rows`) and each task's own probe.

mod join;

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use ballista_core::execution_plans::ShuffleReaderExec;
use datafusion::common::JoinType;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};
use datafusion::physical_plan::{ExecutionPlan, displayable};

use join::SharedBuildJoin;

/// How long a build side is kept after the last task using it ended.
pub(crate) const LINGER: Duration = Duration::from_secs(2);

/// The build sides shared on this executor.
#[derive(Debug, Default)]
pub(crate) struct SharedBuilds {
    entries: Mutex<HashMap<BuildKey, Entry>>,
    generations: AtomicU64,
}

/// One join's build side in one stage of one job.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct BuildKey {
    job_id: String,
    stage_id: usize,
    /// The join's place among the stage plan's hash joins (pre-order).
    join: usize,
    /// The build side's plan and the partition locations its readers read.
    build_side: u64,
}

#[derive(Debug)]
struct Entry {
    /// The join whose build future the tasks share (never executed itself).
    template: Arc<HashJoinExec>,
    /// Serialises the tasks' `execute` calls, which register metrics in the shared set.
    registration: Arc<Mutex<()>>,
    /// Tasks alive that use it.
    users: usize,
    /// Tells this entry from a later one of the same key.
    generation: u64,
}

/// A task's use of a shared build side: released when the task's stage executor is dropped.
#[derive(Debug)]
pub(crate) struct BuildLease {
    builds: Arc<SharedBuilds>,
    key: BuildKey,
    generation: u64,
}

/// What a task gets of an entry.
struct Held {
    lease: BuildLease,
    template: Arc<HashJoinExec>,
    registration: Arc<Mutex<()>>,
    /// The entry was made for this task.
    first: bool,
}

/// A task's stage plan with its broadcast joins sharing their build sides.
#[derive(Debug)]
pub(crate) struct SharedPlan {
    pub(crate) plan: Arc<dyn ExecutionPlan>,
    pub(crate) leases: Vec<BuildLease>,
    /// Build sides this task is the first on this executor to use.
    pub(crate) built: u64,
    /// Build sides another task on this executor built or is building.
    pub(crate) reused: u64,
}

impl SharedBuilds {
    /// `plan` (a task's stage plan) with each shareable broadcast join replaced by one sharing
    /// its build side with the other tasks of the stage on this executor.
    pub(crate) fn share(
        self: &Arc<Self>,
        job_id: &str,
        stage_id: usize,
        plan: Arc<dyn ExecutionPlan>,
    ) -> Result<SharedPlan> {
        let mut leases = Vec::new();
        let (mut built, mut reused) = (0, 0);
        let mut ordinal = 0;
        let plan = plan
            .transform_down(|node| {
                let Some(join) = node.downcast_ref::<HashJoinExec>() else {
                    return Ok(Transformed::no(node));
                };
                ordinal += 1;
                let Some(build_side) = shareable(join) else {
                    return Ok(Transformed::no(node));
                };
                let key = BuildKey {
                    job_id: job_id.to_owned(),
                    stage_id,
                    join: ordinal - 1,
                    build_side,
                };
                let Held {
                    lease,
                    template,
                    registration,
                    first,
                } = self.acquire(key, || join.builder().reset_state().build())?;
                leases.push(lease);
                if first {
                    built += 1;
                } else {
                    reused += 1;
                }
                let own = template
                    .builder()
                    .with_new_children(vec![Arc::clone(join.left()), Arc::clone(join.right())])?
                    .build_exec()?;
                // Joins below it (a probe side joining another broadcast side) are shared too.
                Ok(Transformed::yes(Arc::new(SharedBuildJoin::new(
                    own,
                    registration,
                ))))
            })?
            .data;
        Ok(SharedPlan {
            plan,
            leases,
            built,
            reused,
        })
    }

    /// The entry of `key` (made with `make` when there is none), counted as used.
    fn acquire(
        self: &Arc<Self>,
        key: BuildKey,
        make: impl FnOnce() -> Result<HashJoinExec>,
    ) -> Result<Held> {
        let mut entries = self.lock();
        let first = !entries.contains_key(&key);
        let entry = match entries.entry(key.clone()) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(vacant) => vacant.insert(Entry {
                template: Arc::new(make()?),
                registration: Arc::default(),
                users: 0,
                generation: self.generations.fetch_add(1, Ordering::Relaxed),
            }),
        };
        entry.users += 1;
        let lease = BuildLease {
            builds: Arc::clone(self),
            key,
            generation: entry.generation,
        };
        Ok(Held {
            lease,
            template: Arc::clone(&entry.template),
            registration: Arc::clone(&entry.registration),
            first,
        })
    }

    /// A task using the entry ended: the last one leaves it for [`LINGER`].
    fn release(self: &Arc<Self>, key: &BuildKey, generation: u64) {
        let mut entries = self.lock();
        let Some(entry) = entries.get_mut(key).filter(|e| e.generation == generation) else {
            return;
        };
        entry.users -= 1;
        if entry.users > 0 {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let builds: Weak<Self> = Arc::downgrade(self);
                let key = key.clone();
                runtime.spawn(async move {
                    tokio::time::sleep(LINGER).await;
                    if let Some(builds) = builds.upgrade() {
                        builds.expire(&key, generation);
                    }
                });
            }
            Err(_) => {
                entries.remove(key);
            }
        }
    }

    /// Drops the entry if no task took it up again.
    fn expire(&self, key: &BuildKey, generation: u64) {
        let mut entries = self.lock();
        if entries
            .get(key)
            .is_some_and(|e| e.generation == generation && e.users == 0)
        {
            entries.remove(key);
        }
    }

    /// Drops the entry whatever uses it (a task using it failed): later tasks build anew.
    fn forget(&self, key: &BuildKey, generation: u64) {
        let mut entries = self.lock();
        if entries.get(key).is_some_and(|e| e.generation == generation) {
            entries.remove(key);
        }
    }

    /// Build sides kept now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<BuildKey, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl BuildLease {
    /// The task failed: its build side is not handed to later tasks.
    pub(crate) fn forget(&self) {
        self.builds.forget(&self.key, self.generation);
    }
}

impl Drop for BuildLease {
    fn drop(&mut self) {
        self.builds.release(&self.key, self.generation);
    }
}

/// The key part of a join's build side, when the join can share it: a `CollectLeft` join that
/// keeps no per-probe state of its build side, whose build side's leaves are broadcast readers
/// or file scans (connector splits are file scans), each read whole by every task.
fn shareable(join: &HashJoinExec) -> Option<u64> {
    let stateless = matches!(
        join.join_type(),
        JoinType::Inner
            | JoinType::Right
            | JoinType::RightSemi
            | JoinType::RightAnti
            | JoinType::RightMark
    );
    if *join.partition_mode() != PartitionMode::CollectLeft || !stateless || join.null_aware {
        return None;
    }
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    let mut other_leaves = 0;
    join.left()
        .apply(|node| {
            if let Some(reader) = node.downcast_ref::<ShuffleReaderExec>() {
                if reader.broadcast {
                    reader.stage_id.hash(&mut hasher);
                    format!("{:?}", reader.partition).hash(&mut hasher);
                } else {
                    other_leaves += 1;
                }
                return Ok(TreeNodeRecursion::Jump);
            }
            if let Some(files) = node
                .downcast_ref::<DataSourceExec>()
                .and_then(|scan| scan.data_source().downcast_ref::<FileScanConfig>())
            {
                // Every file and split, with its byte range (the display abbreviates them).
                format!("{:?}", files.file_groups).hash(&mut hasher);
                return Ok(TreeNodeRecursion::Jump);
            }
            if node.children().is_empty() {
                other_leaves += 1;
            }
            Ok(TreeNodeRecursion::Continue)
        })
        .ok()?;
    displayable(join.left().as_ref())
        .indent(true)
        .to_string()
        .hash(&mut hasher);
    (other_leaves == 0).then(|| hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, RecordBatch};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::common::NullEquality;
    use datafusion::datasource::memory::MemorySourceConfig;
    use datafusion::execution::TaskContext;
    use datafusion::physical_expr::expressions::col;
    use datafusion::physical_plan::collect;

    fn table(name: &str, values: Vec<i64>, partitions: usize) -> Arc<dyn ExecutionPlan> {
        let schema = Arc::new(Schema::new(vec![Field::new(name, DataType::Int64, false)]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(Int64Array::from(values))],
        )
        .expect("test batch");
        let parts = vec![vec![batch]; partitions];
        MemorySourceConfig::try_new_exec(&parts, schema, None).expect("memory exec")
    }

    /// A CollectLeft join of a 3-row build side with a 2-partition probe side.
    fn join() -> HashJoinExec {
        let left = table("k", vec![1, 2, 3], 1);
        let right = table("v", vec![2, 3, 4], 2);
        let on = vec![(
            col("k", &left.schema()).expect("k"),
            col("v", &right.schema()).expect("v"),
        )];
        HashJoinExec::try_new(
            left,
            right,
            on,
            None,
            &JoinType::Inner,
            None,
            PartitionMode::CollectLeft,
            NullEquality::NullEqualsNothing,
            false,
        )
        .expect("join")
    }

    fn key(n: u64) -> BuildKey {
        BuildKey {
            job_id: "job".into(),
            stage_id: 1,
            join: 0,
            build_side: n,
        }
    }

    fn metric(plan: &dyn ExecutionPlan, name: &str) -> usize {
        plan.metrics()
            .and_then(|m| m.sum_by_name(name))
            .map(|v| v.as_usize())
            .unwrap_or(0)
    }

    #[tokio::test]
    async fn tasks_share_one_build_and_report_their_own_metrics() {
        let builds = Arc::new(SharedBuilds::default());
        let mut tasks = Vec::new();
        for _ in 0..3 {
            let held = builds
                .acquire(key(1), || join().builder().reset_state().build())
                .expect("acquire");
            let own = held.template.builder().build_exec().expect("own join");
            tasks.push((held.lease, SharedBuildJoin::new(own, held.registration)));
        }
        assert_eq!(builds.len(), 1);
        let ctx = Arc::new(TaskContext::default());
        for (_, task) in &tasks {
            for partition in 0..2 {
                let stream = task.execute(partition, Arc::clone(&ctx)).expect("execute");
                let rows: usize = datafusion::physical_plan::common::collect(stream)
                    .await
                    .expect("rows")
                    .iter()
                    .map(RecordBatch::num_rows)
                    .sum();
                assert_eq!(rows, 2, "2 and 3 match");
            }
        }
        // Built once (3 build rows), by one task; every task probed its own 6 rows.
        let built: Vec<usize> = tasks
            .iter()
            .map(|(_, t)| metric(t, "build_input_rows"))
            .collect();
        assert_eq!(built.iter().sum::<usize>(), 3, "{built:?}");
        for (_, task) in &tasks {
            assert_eq!(metric(task, "input_rows"), 6);
            let output = task.metrics().and_then(|m| m.output_rows());
            assert_eq!(output, Some(4));
        }
        drop(tasks);
        // Kept for LINGER after the last task, then dropped.
        assert_eq!(builds.len(), 1);
        tokio::time::sleep(LINGER + Duration::from_millis(200)).await;
        assert_eq!(builds.len(), 0);
    }

    #[tokio::test]
    async fn a_failed_task_makes_later_tasks_build_anew() {
        let builds = Arc::new(SharedBuilds::default());
        let make = || join().builder().reset_state().build();
        let failed = builds.acquire(key(1), make).expect("acquire");
        assert!(failed.first);
        failed.lease.forget();
        let second = builds.acquire(key(1), make).expect("acquire");
        assert!(second.first, "a new entry");
        assert!(!Arc::ptr_eq(&failed.template, &second.template));
        // The failed task's lease no longer touches the new entry.
        drop(failed);
        let third = builds.acquire(key(1), make).expect("acquire");
        assert!(!third.first);
        assert!(Arc::ptr_eq(&second.template, &third.template));
        // Another build side (other files) is another entry.
        let other = builds.acquire(key(2), make).expect("acquire");
        assert!(other.first);
        assert_eq!(builds.len(), 2);
    }

    #[test]
    fn build_sides_read_from_memory_and_partitioned_joins_are_not_shared() {
        // A build side read from memory (neither a broadcast reader nor a file scan).
        assert!(shareable(&join()).is_none());
        let partitioned = join()
            .builder()
            .with_partition_mode(PartitionMode::Partitioned)
            .build()
            .expect("join");
        assert!(shareable(&partitioned).is_none());
    }

    /// A join whose build side is a broadcast reader of stage 3's partitions.
    fn broadcast_join() -> Arc<dyn ExecutionPlan> {
        let probe = join();
        let reader = ShuffleReaderExec::try_new_broadcast(3, Vec::new(), probe.left().schema(), 2)
            .expect("reader")
            .with_work_dir(std::env::temp_dir().display().to_string());
        probe
            .builder()
            .with_new_children(vec![Arc::new(reader), Arc::clone(probe.right())])
            .and_then(|b| b.build_exec())
            .expect("join")
    }

    #[tokio::test]
    async fn tasks_of_one_stage_share_a_broadcast_build_side() {
        let builds = Arc::new(SharedBuilds::default());
        let first = builds.share("job", 4, broadcast_join()).expect("share");
        assert_eq!((first.built, first.reused, first.leases.len()), (1, 0, 1));
        assert_eq!(first.plan.name(), "HashJoinExec");
        assert!(first.plan.is::<HashJoinExec>(), "downcasts reach the join");
        let second = builds.share("job", 4, broadcast_join()).expect("share");
        assert_eq!((second.built, second.reused), (0, 1));
        // Another stage or job builds its own.
        let other = builds.share("job", 5, broadcast_join()).expect("share");
        assert_eq!(other.built, 1);
        assert_eq!(builds.len(), 2);
        // Both tasks run; the shared (empty) build side yields no rows.
        for plan in [first.plan, second.plan] {
            let rows: usize = collect(plan, Arc::new(TaskContext::default()))
                .await
                .expect("run")
                .iter()
                .map(RecordBatch::num_rows)
                .sum();
            assert_eq!(rows, 0);
        }
    }

    /// A CollectLeft join whose build side scans `files` (as a one-split connector table is).
    fn scan_join(files: &[&str]) -> HashJoinExec {
        use datafusion::datasource::listing::PartitionedFile;
        use datafusion::datasource::physical_plan::{
            FileGroup, FileScanConfigBuilder, ParquetSource,
        };
        use datafusion::execution::object_store::ObjectStoreUrl;
        let probe = join();
        let source = Arc::new(ParquetSource::new(probe.left().schema()));
        let group = FileGroup::new(files.iter().map(|f| PartitionedFile::new(*f, 10)).collect());
        let config = FileScanConfigBuilder::new(ObjectStoreUrl::local_filesystem(), source)
            .with_file_groups(vec![group])
            .build();
        probe
            .builder()
            .with_new_children(vec![
                DataSourceExec::from_data_source(config),
                Arc::clone(probe.right()),
            ])
            .and_then(|b| b.build())
            .expect("join")
    }

    #[test]
    fn a_build_side_scanned_by_every_task_is_shared_by_its_files() {
        let a = shareable(&scan_join(&["a.parquet", "b.parquet"])).expect("shareable");
        assert_eq!(shareable(&scan_join(&["a.parquet", "b.parquet"])), Some(a));
        assert_ne!(
            shareable(&scan_join(&["a.parquet"])),
            Some(a),
            "other files, other key"
        );
    }

    #[test]
    fn joins_stacked_in_one_stage_each_share_their_build_side() {
        let inner = broadcast_join();
        let outer = inner.children().into_iter().cloned().collect::<Vec<_>>();
        // outer: the same broadcast side, probed by the inner join's output.
        let probe = join();
        let on = vec![(
            col("k", &outer[0].schema()).expect("k"),
            col("k", &inner.schema()).expect("k"),
        )];
        let stacked: Arc<dyn ExecutionPlan> = Arc::new(
            HashJoinExec::try_new(
                Arc::clone(&outer[0]),
                Arc::clone(&inner),
                on,
                None,
                probe.join_type(),
                None,
                PartitionMode::CollectLeft,
                NullEquality::NullEqualsNothing,
                false,
            )
            .expect("stacked join"),
        );
        let builds = Arc::new(SharedBuilds::default());
        let first = builds.share("job", 1, Arc::clone(&stacked)).expect("share");
        assert_eq!((first.built, first.reused), (2, 0));
        let second = builds.share("job", 1, stacked).expect("share");
        assert_eq!((second.built, second.reused), (0, 2));
    }

    #[tokio::test]
    async fn an_unshared_plan_is_unchanged() {
        let builds = Arc::new(SharedBuilds::default());
        let plan: Arc<dyn ExecutionPlan> = Arc::new(join());
        let shared = builds.share("job", 1, Arc::clone(&plan)).expect("share");
        assert!(Arc::ptr_eq(&shared.plan, &plan));
        assert!(shared.leases.is_empty());
        let batches = collect(shared.plan, Arc::new(TaskContext::default()))
            .await
            .expect("run");
        assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 4);
    }
}
