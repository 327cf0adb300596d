//! Writing Delta tables: a statement's rows (`INSERT`, CTAS: [`DeltaWrite`], each executor
//! task writing its own files; the `DeltaSink` for one stream) and a materialized view's
//! refresh ([`commit_rows`]) write Parquet files as the rows arrive and make them visible in
//! ONE Delta commit; a write that fails or is killed before the commit leaves the table as it
//! was.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType};
use datafusion_datasource::sink::DataSink;
use deltalake_core::DeltaTable;
use deltalake_core::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake_core::kernel::{Action, Add};
use deltalake_core::protocol::{DeltaOperation, SaveMode};
use deltalake_core::writer::{DeltaWriter, RecordBatchWriter};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use tributary_connector::{DistributedWrite, WrittenPart};

use super::{arrow_schema, delta_error, open};
use crate::context::HiveContext;
use crate::error::{HiveError, Result};
use crate::sink::{decode_write, encode_write};
use crate::storage::Location;

/// Writes a statement's rows into a Delta table as one commit.
#[derive(Debug)]
pub(super) struct DeltaSink {
    pub(super) ctx: Arc<HiveContext>,
    pub(super) qualified: String,
    pub(super) location: Location,
    pub(super) schema: SchemaRef,
}

impl DisplayAs for DeltaSink {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "DeltaSink: table={} location={}",
            self.qualified, self.location
        )
    }
}

#[async_trait]
impl DataSink for DeltaSink {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    async fn write_all(
        &self,
        data: SendableRecordBatchStream,
        _context: &Arc<TaskContext>,
    ) -> DfResult<u64> {
        let delta = open(&self.ctx, &self.location, &self.qualified).await?;
        write_and_commit(delta, &self.qualified, data, false, Vec::new()).await
    }
}

/// The commit-info key under which a materialized view's refresh state is committed.
pub const REFRESH_STATE_KEY: &str = "tributary.refresh";

/// Writes `rows` into the Delta table at `location` and commits them in one version, either
/// replacing every active file (`replace`) or beside them, with `app_metadata` in the
/// commit's info. Nothing is visible until that commit; a failure leaves the table as it was.
pub async fn commit_rows(
    ctx: &HiveContext,
    location: &Location,
    qualified: &str,
    rows: SendableRecordBatchStream,
    replace: bool,
    app_metadata: Vec<(String, serde_json::Value)>,
) -> Result<u64> {
    let delta = open(ctx, location, qualified).await?;
    Ok(write_and_commit(delta, qualified, rows, replace, app_metadata).await?)
}

/// The one write path. Errors of the rows themselves (a source failing, the query being
/// cancelled) come back as they are, so that retries still see I/O errors as I/O errors.
async fn write_and_commit(
    delta: DeltaTable,
    qualified: &str,
    rows: SendableRecordBatchStream,
    replace: bool,
    app_metadata: Vec<(String, serde_json::Value)>,
) -> DfResult<u64> {
    let (written, adds) = write_files(&delta, qualified, rows).await?;
    commit_files(&delta, qualified, adds, replace, app_metadata).await?;
    Ok(written)
}

/// Writes `rows` as Parquet files of the Delta table, not yet in its log: returns the rows
/// written and the files' add actions.
async fn write_files(
    delta: &DeltaTable,
    qualified: &str,
    mut rows: SendableRecordBatchStream,
) -> DfResult<(u64, Vec<Add>)> {
    let target: SchemaRef = Arc::new(arrow_schema(delta, qualified)?);
    // The table's columns in the log's order (partition columns may sit anywhere there).
    let given = rows.schema();
    let order: Vec<usize> = target
        .fields()
        .iter()
        .map(|f| {
            given.index_of(f.name()).map_err(|_| HiveError::BadData {
                table: qualified.to_owned(),
                message: format!("the rows to write have no column '{}'", f.name()),
            })
        })
        .collect::<Result<_>>()?;
    let mut writer = RecordBatchWriter::for_table(delta)
        .map_err(|e| delta_error(qualified, "cannot write", e))?;
    let mut written = 0u64;
    while let Some(batch) = rows.next().await {
        let batch = batch?;
        written += batch.num_rows() as u64;
        let batch = tributary_connector::conform_batch(&batch.project(&order)?, &target)?;
        writer
            .write(batch)
            .await
            .map_err(|e| delta_error(qualified, "cannot write", e))?;
    }
    let adds = writer
        .flush()
        .await
        .map_err(|e| delta_error(qualified, "cannot write", e))?;
    Ok((written, adds))
}

/// Commits files written by [`write_files`] in one version, beside the active files or
/// replacing them all, with `app_metadata` in the commit's info.
async fn commit_files(
    delta: &DeltaTable,
    qualified: &str,
    adds: Vec<Add>,
    replace: bool,
    app_metadata: Vec<(String, serde_json::Value)>,
) -> Result<()> {
    let mut actions: Vec<Action> = adds.into_iter().map(Action::Add).collect();
    if replace {
        let removed: Vec<_> = delta
            .get_active_add_actions_by_partitions(&[])
            .map_ok(|view| Action::Remove(view.remove_action(true)))
            .try_collect()
            .await
            .map_err(|e| delta_error(qualified, "cannot list the Delta table's files", e))?;
        actions.extend(removed);
    }
    let snapshot = delta
        .snapshot()
        .map_err(|e| delta_error(qualified, "cannot read the Delta table", e))?;
    let partition_columns: Vec<String> = snapshot.metadata().partition_columns().to_vec();
    let operation = DeltaOperation::Write {
        mode: if replace {
            SaveMode::Overwrite
        } else {
            SaveMode::Append
        },
        partition_by: (!partition_columns.is_empty()).then_some(partition_columns),
        predicate: None,
    };
    // Past this point the rows are committed: a kill is refused rather than reported as a
    // failure of a write that happened.
    tributary_connector::point_of_no_return().map_err(|why| HiveError::Stopped {
        table: qualified.to_owned(),
        message: why,
    })?;
    CommitBuilder::from(CommitProperties::default().with_metadata(app_metadata))
        .with_actions(actions)
        .build(Some(snapshot), delta.log_store(), operation)
        .await
        .map_err(|e| delta_error(qualified, "cannot commit", e))?;
    Ok(())
}

/// First byte of an encoded [`DeltaWrite`].
pub const DELTA_WRITE: u8 = b'd';

/// A write as an executor receives it.
#[derive(Debug, Serialize, Deserialize)]
struct WriteSpec {
    qualified: String,
    location: String,
}

/// One statement's write into a Delta table done by the executors' tasks: each writes its
/// files with deltalake's writer and reports their add actions; the scheduler commits every
/// task's files in ONE version. Files of tasks that failed, or of a write that is never
/// committed, are in no version: readers never see them (Delta's VACUUM removes them).
#[derive(Debug)]
pub struct DeltaWrite {
    pub(super) ctx: Arc<HiveContext>,
    pub(super) qualified: String,
    pub(super) location: Location,
}

impl DeltaWrite {
    /// Rebuilds a write on an executor from [`DistributedWrite::encode`]'s bytes.
    pub fn decode(ctx: Arc<HiveContext>, bytes: &[u8]) -> tributary_connector::Result<Self> {
        let spec: WriteSpec = decode_write(DELTA_WRITE, "delta write", "Delta write", bytes)?;
        Ok(Self {
            ctx,
            qualified: spec.qualified,
            location: Location::parse(&spec.location)?,
        })
    }
}

#[async_trait]
impl DistributedWrite for DeltaWrite {
    fn describe(&self) -> String {
        format!("delta table={} location={}", self.qualified, self.location)
    }

    fn encode(&self) -> tributary_connector::Result<Vec<u8>> {
        let spec = WriteSpec {
            qualified: self.qualified.clone(),
            location: self.location.to_string(),
        };
        encode_write(DELTA_WRITE, "delta write", &spec)
    }

    async fn write(
        &self,
        _partition: usize,
        data: SendableRecordBatchStream,
    ) -> DfResult<WrittenPart> {
        let delta = open(&self.ctx, &self.location, &self.qualified).await?;
        let (rows, adds) = write_files(&delta, &self.qualified, data).await?;
        Ok(WrittenPart {
            rows,
            data: serde_json::to_vec(&adds)
                .map_err(|e| DataFusionError::Internal(e.to_string()))?,
        })
    }

    async fn commit(&self, parts: Vec<WrittenPart>) -> tributary_connector::Result<u64> {
        let mut adds = Vec::new();
        let mut rows = 0;
        for part in parts {
            let part_adds: Vec<Add> =
                tributary_connector::decode_json("delta write part", &part.data)?;
            adds.extend(part_adds);
            rows += part.rows;
        }
        let (ctx, location, qualified) = (
            Arc::clone(&self.ctx),
            self.location.clone(),
            self.qualified.clone(),
        );
        self.ctx
            .run_gated(async move {
                let delta = open(&ctx, &location, &qualified).await?;
                commit_files(&delta, &qualified, adds, false, Vec::new()).await
            })
            .await?;
        Ok(rows)
    }

    async fn abort(&self) {
        tracing::info!(
            "delta table {}: write not committed; files its tasks wrote are in no version",
            self.qualified
        );
    }
}

/// The value committed under `key` in the newest commit's info, if any.
pub async fn last_commit_value(
    ctx: &HiveContext,
    location: &Location,
    qualified: &str,
    key: &str,
) -> Result<Option<serde_json::Value>> {
    let delta = open(ctx, location, qualified).await?;
    let newest: Vec<_> = delta
        .history(Some(1))
        .try_collect()
        .await
        .map_err(|e| delta_error(qualified, "cannot read the Delta log", e))?;
    Ok(newest
        .into_iter()
        .next()
        .and_then(|c| c.info.get(key).cloned()))
}

/// The version of the Delta table at `location`.
pub async fn version(ctx: &HiveContext, location: &Location, qualified: &str) -> Result<i64> {
    let delta = open(ctx, location, qualified).await?;
    delta
        .version()
        .map(|v| i64::try_from(v).unwrap_or(i64::MAX))
        .ok_or_else(|| delta_error(qualified, "cannot read the Delta table", "no version"))
}
