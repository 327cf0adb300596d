//! Batches that reach Ballista's shuffle writers in their real size.
//!
//! The sort-based writer (`SortShuffleWriterExec`) holds a task's batches until its input ends,
//! and counts what it holds as `RecordBatch::get_array_memory_size`: every buffer a batch
//! references, whole. Many operators emit *slices* of larger arrays (an aggregation emits its
//! groups as 8192-row slices of one set of arrays; a join's output may share its inputs'
//! buffers), so each slice is counted as the whole set: TPC-H SF1 Q18's partial aggregation
//! of 1.5 M groups was counted as 2.2 GB, the writer passed its per-task budget
//! (`ballista.shuffle.sort_based.memory_limit_per_task_bytes`, 256 MB) and the query's memory
//! share many times over, and it spilled 127 MB to disk in 14 spills (0.4 s of a 0.8 s query)
//! while it really held under 100 MB. The same over-count inflated the peak memory the tasks
//! reported.
//!
//! The pass-through writer (`ShuffleWriterExec`: broadcast build sides, results, inputs of a
//! final merge) writes each batch as Arrow IPC, and IPC writes a view array's data buffers
//! whole: a join's output whose `Utf8View` column was taken from a broadcast build side
//! references that side's Parquet-decoded buffers, so every 8192-row batch carried them again.
//! TPC-H SF1 Q21 wrote 134.7 MB for 156.7 K rows of four columns (supplier names joined to
//! late lineitems) as a broadcast side, which each task of the next stage then read and
//! decoded: 611 MB in all.
//!
//! The pass-through writer's files of a query's result are forwarded to the client message by
//! message (`scheduler/src/flight_sql/forward.rs`) when each batch's IPC body is at most
//! [`tributary_proto::MAX_RESULT_BODY_BYTES`]; a larger one must be decoded, cut and encoded
//! again on the scheduler. Batches of wide rows at the session's batch size pass that size, so
//! the pass-through writer is given them as row slices under it (slicing costs nothing: IPC
//! writes a slice's own rows, and a slice's view columns keep only their own strings).
//!
//! Ballista counts and writes what the batches it is given reference; this module gives it
//! batches that reference only their own rows. [`compact_shuffle_input`] wraps a writer's
//! input in [`CompactOutput`], which copies a batch's columns into arrays of their own when
//! they reference at least [`WASTE_FACTOR`] times more memory than their rows occupy (a copy
//! of the rows, cheaper than spilling or shipping them; untouched batches pass as they are),
//! and for the pass-through writer cuts batches whose body would pass the size above.
//! The wrapper delegates its identity (`downcast_delegate`), children, properties and metrics
//! to the operator it wraps, so the stage plan keeps its shape for the scheduler's metrics and
//! for Ballista's own plan inspection.

use std::sync::Arc;

use ballista_core::execution_plans::ShuffleWriterExec;
use ballista_core::execution_plans::sort_shuffle::SortShuffleWriterExec;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, GenericByteViewArray, MutableArrayData, RecordBatch, make_array,
};
use datafusion::arrow::datatypes::ByteViewType;
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::metrics::MetricsSet;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{ChildrenPropertiesMode, ExecutionPlan, ReplaceChildrenOptions};
use futures::StreamExt;

use crate::delegate::delegate_plan_to;

/// A column is copied when the memory it references is at least this many times what its
/// rows occupy.
pub(crate) const WASTE_FACTOR: usize = 4;

/// Below this many referenced bytes a column is never copied (not worth a copy).
const MIN_REFERENCED_BYTES: usize = 256 * 1024;

/// Largest estimated IPC body of a batch given to the pass-through writer: the forwarded size
/// less room for the padding of each buffer (64 bytes apiece), which the estimate leaves out.
const MAX_WRITTEN_BODY_BYTES: usize =
    tributary_proto::MAX_RESULT_BODY_BYTES - tributary_proto::MAX_RESULT_BODY_BYTES / 16;

/// `plan` (a stage plan, rooted in its shuffle writer) with the input of its sort-based or
/// pass-through shuffle writer wrapped in [`CompactOutput`]; other stage plans unchanged.
pub(crate) fn compact_shuffle_input(
    plan: Arc<dyn ExecutionPlan>,
) -> Result<Arc<dyn ExecutionPlan>> {
    if !plan.is::<SortShuffleWriterExec>() && !plan.is::<ShuffleWriterExec>() {
        return Ok(plan);
    }
    let children = plan.children();
    let [input] = children.as_slice() else {
        return Ok(plan);
    };
    // (Its own type: `is` would ask the operator it delegates to.)
    if (input.as_ref() as &dyn std::any::Any).is::<CompactOutput>() {
        return Ok(plan);
    }
    let max_body = plan
        .is::<ShuffleWriterExec>()
        .then_some(MAX_WRITTEN_BODY_BYTES);
    let wrapped: Arc<dyn ExecutionPlan> = Arc::new(CompactOutput::new(Arc::clone(input), max_body));
    Arc::clone(&plan).replace_children(
        vec![wrapped],
        ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
    )
}

/// An operator whose output batches are compacted (see the module documentation); otherwise
/// the operator it wraps.
#[derive(Debug)]
pub(crate) struct CompactOutput {
    inner: Arc<dyn ExecutionPlan>,
    /// The largest IPC body of a batch it gives (the pass-through writer's input); larger
    /// batches are given as row slices. None: batches of any size (the sort-based writer's).
    max_body: Option<usize>,
}

impl CompactOutput {
    pub(crate) fn new(inner: Arc<dyn ExecutionPlan>, max_body: Option<usize>) -> Self {
        Self { inner, max_body }
    }
}

delegate_plan_to!(CompactOutput, inner);

impl ExecutionPlan for CompactOutput {
    delegate_plan_to!(inner);

    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let inner = Arc::clone(&self.inner).replace_children(children, options)?;
        Ok(Arc::new(Self::new(inner, self.max_body)))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let stream = self.inner.execute(partition, context)?;
        let schema = stream.schema();
        let max_body = self.max_body;
        let compacted = stream.flat_map(move |batch| {
            let given = batch.and_then(|b| {
                let b = compact(b)?;
                Ok(match max_body {
                    Some(max_body) => sliced(b, max_body)?,
                    None => vec![b],
                })
            });
            futures::stream::iter(match given {
                Ok(batches) => batches.into_iter().map(Ok).collect(),
                Err(e) => vec![Err(e)],
            })
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, compacted)))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        self.inner.metrics()
    }
}

/// `batch` with each column that references much more memory than its rows occupy copied
/// into arrays of its own.
pub(crate) fn compact(batch: RecordBatch) -> datafusion::arrow::error::Result<RecordBatch> {
    let mut columns: Option<Vec<ArrayRef>> = None;
    for (i, column) in batch.columns().iter().enumerate() {
        if let Some(compacted) = compacted(column)? {
            columns.get_or_insert_with(|| batch.columns().to_vec())[i] = compacted;
        }
    }
    match columns {
        Some(columns) => RecordBatch::try_new(batch.schema(), columns),
        None => Ok(batch),
    }
}

/// `column` in arrays of its own, when it references at least [`WASTE_FACTOR`] times the
/// memory its rows occupy (and at least [`MIN_REFERENCED_BYTES`]).
fn compacted(column: &ArrayRef) -> datafusion::arrow::error::Result<Option<ArrayRef>> {
    let referenced = column.get_array_memory_size();
    if referenced < MIN_REFERENCED_BYTES {
        return Ok(None);
    }
    let wasteful = |occupied: usize| referenced >= occupied.saturating_mul(WASTE_FACTOR);
    // View arrays (Utf8View, BinaryView: what Parquet strings are read as) reference whole
    // data buffers their views point into; `gc` keeps the bytes they use.
    if let Some(views) = column.as_string_view_opt() {
        return Ok(wasteful(view_bytes(views)).then(|| Arc::new(views.gc()) as ArrayRef));
    }
    if let Some(views) = column.as_binary_view_opt() {
        return Ok(wasteful(view_bytes(views)).then(|| Arc::new(views.gc()) as ArrayRef));
    }
    let data = column.to_data();
    if !wasteful(data.get_slice_memory_size()?) {
        return Ok(None);
    }
    let mut copy = MutableArrayData::new(vec![&data], false, data.len());
    copy.try_extend(0, 0, data.len())?;
    Ok(Some(make_array(copy.freeze())))
}

/// `batch` as row slices whose IPC bodies are at most about `max_body` bytes (one batch when its
/// rows fit; a row is never cut). Each slice's view columns keep only their own strings, as
/// does a batch within the size whose views reference more than it.
fn sliced(
    batch: RecordBatch,
    max_body: usize,
) -> datafusion::arrow::error::Result<Vec<RecordBatch>> {
    let rows = batch.num_rows();
    let body = |batch: &RecordBatch, whole_views: bool| {
        batch
            .columns()
            .iter()
            .map(|c| written_bytes(c, whole_views))
            .sum::<datafusion::arrow::error::Result<usize>>()
    };
    let used = body(&batch, false)?;
    if used <= max_body || rows < 2 {
        if body(&batch, true)? > max_body {
            return Ok(vec![own_strings(batch)?]);
        }
        return Ok(vec![batch]);
    }
    let per_slice = rows.div_ceil(used.div_ceil(max_body.max(1)).min(rows));
    (0..rows)
        .step_by(per_slice)
        .map(|offset| own_strings(batch.slice(offset, per_slice.min(rows - offset))))
        .collect()
}

/// What IPC writes of `column` (padding aside): a slice's own rows, and of view arrays their
/// views and their data buffers whole (`whole_views`) or the bytes their views use.
fn written_bytes(column: &ArrayRef, whole_views: bool) -> datafusion::arrow::error::Result<usize> {
    fn views<T: ByteViewType + ?Sized>(v: &GenericByteViewArray<T>, whole: bool) -> usize {
        if !whole {
            return view_bytes(v);
        }
        let data: usize = v.data_buffers().iter().map(|b| b.len()).sum();
        v.len() * std::mem::size_of::<u128>() + data
    }
    if let Some(v) = column.as_string_view_opt() {
        return Ok(views(v, whole_views));
    }
    if let Some(v) = column.as_binary_view_opt() {
        return Ok(views(v, whole_views));
    }
    column.to_data().get_slice_memory_size()
}

/// `batch` with its view columns holding only the strings their rows use.
fn own_strings(batch: RecordBatch) -> datafusion::arrow::error::Result<RecordBatch> {
    let columns = batch
        .columns()
        .iter()
        .map(|c| {
            if let Some(v) = c.as_string_view_opt() {
                Arc::new(v.gc()) as ArrayRef
            } else if let Some(v) = c.as_binary_view_opt() {
                Arc::new(v.gc()) as ArrayRef
            } else {
                Arc::clone(c)
            }
        })
        .collect();
    RecordBatch::try_new(batch.schema(), columns)
}

/// The bytes view arrays use: their views, and the data of the strings too long to inline.
fn view_bytes<T: ByteViewType + ?Sized>(views: &GenericByteViewArray<T>) -> usize {
    views.total_buffer_bytes_used() + views.len() * std::mem::size_of::<u128>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray, StringViewArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::physical_expr::PhysicalExpr;

    fn big_batch(rows: usize) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]));
        let keys = Int64Array::from_iter_values(0..rows as i64);
        let names =
            StringArray::from_iter((0..rows).map(|i| (i % 7 != 0).then(|| format!("name-{i}"))));
        RecordBatch::try_new(schema, vec![Arc::new(keys), Arc::new(names)]).expect("test value")
    }

    #[test]
    fn a_small_slice_of_large_arrays_is_copied_into_its_own_and_keeps_its_values() {
        let whole = big_batch(200_000);
        let slice = whole.slice(100_000, 8192);
        assert!(slice.get_array_memory_size() > 2_000_000);
        let compacted = compact(slice.clone()).expect("test value");
        assert_eq!(compacted, slice);
        assert!(
            compacted.get_array_memory_size() < 400_000,
            "{} bytes",
            compacted.get_array_memory_size()
        );
        let names = compacted
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("test value");
        assert_eq!(names.value(1), "name-100001");
        assert!(names.is_null(7 - 100_000 % 7));
    }

    #[test]
    fn a_sort_shuffle_writer_reads_through_the_wrapper_and_keeps_its_plan() {
        use ballista_core::execution_plans::sort_shuffle::SortShuffleConfig;
        use datafusion::physical_expr::expressions::Column;
        use datafusion::physical_plan::Partitioning;
        use datafusion::physical_plan::displayable;
        use datafusion::physical_plan::empty::EmptyExec;

        let input: Arc<dyn ExecutionPlan> = Arc::new(EmptyExec::new(big_batch(1).schema()));
        let key: Arc<dyn PhysicalExpr> = Arc::new(Column::new("k", 0));
        let writer: Arc<dyn ExecutionPlan> = Arc::new(
            SortShuffleWriterExec::try_new(
                "job".to_owned().into(),
                1,
                input,
                "/tmp".to_owned(),
                Partitioning::Hash(vec![key], 4),
                SortShuffleConfig::default(),
            )
            .expect("test value"),
        );
        let before = displayable(writer.as_ref()).indent(true).to_string();
        let wrapped = compact_shuffle_input(Arc::clone(&writer)).expect("test value");
        assert!(wrapped.is::<SortShuffleWriterExec>());
        let child = wrapped.children()[0];
        assert!(
            child.is::<EmptyExec>(),
            "the wrapper delegates its identity"
        );
        assert!((child.as_ref() as &dyn std::any::Any).is::<CompactOutput>());
        assert_eq!(
            displayable(wrapped.as_ref()).indent(true).to_string(),
            before
        );
        // Wrapped once, however often a plan is prepared.
        let again = compact_shuffle_input(Arc::clone(&wrapped)).expect("test value");
        let child = (again.children()[0].as_ref() as &dyn std::any::Any)
            .downcast_ref::<CompactOutput>()
            .expect("test value");
        assert!((child.inner.as_ref() as &dyn std::any::Any).is::<EmptyExec>());
    }

    #[test]
    fn a_pass_through_shuffle_writer_reads_through_the_wrapper() {
        use datafusion::physical_plan::empty::EmptyExec;

        let input: Arc<dyn ExecutionPlan> = Arc::new(EmptyExec::new(big_batch(1).schema()));
        let writer: Arc<dyn ExecutionPlan> = Arc::new(
            ShuffleWriterExec::try_new("job".to_owned().into(), 1, input, "/tmp".to_owned())
                .expect("test value"),
        );
        let wrapped = compact_shuffle_input(writer).expect("test value");
        assert!(wrapped.is::<ShuffleWriterExec>());
        assert!((wrapped.children()[0].as_ref() as &dyn std::any::Any).is::<CompactOutput>());
        // Any other root is left alone.
        let other: Arc<dyn ExecutionPlan> = Arc::new(EmptyExec::new(big_batch(1).schema()));
        let kept = compact_shuffle_input(Arc::clone(&other)).expect("test value");
        assert!(Arc::ptr_eq(&kept, &other));
    }

    #[test]
    fn a_few_views_into_large_string_buffers_keep_only_their_bytes() {
        let long = |i: usize| format!("a string longer than twelve bytes {i}");
        let whole = StringViewArray::from_iter_values((0..100_000).map(long));
        let taken = datafusion::arrow::compute::take(
            &whole,
            &datafusion::arrow::array::UInt32Array::from(vec![5, 50_000, 99_999]),
            None,
        )
        .expect("test value");
        let schema = Arc::new(Schema::new(vec![Field::new(
            "s",
            DataType::Utf8View,
            false,
        )]));
        let batch = RecordBatch::try_new(schema, vec![taken]).expect("test value");
        assert!(batch.get_array_memory_size() > 1_000_000);
        let compacted = compact(batch.clone()).expect("test value");
        assert_eq!(compacted, batch);
        assert!(compacted.get_array_memory_size() < 10_000);
        assert_eq!(compacted.column(0).as_string_view().value(1), long(50_000));
    }

    #[test]
    fn batches_that_own_their_memory_pass_untouched() {
        let whole = big_batch(200_000);
        let same = compact(whole.clone()).expect("test value");
        for (a, b) in whole.columns().iter().zip(same.columns()) {
            assert!(Arc::ptr_eq(a, b));
        }
        // A large slice (most of the arrays) is not worth a copy either.
        let most = whole.slice(10_000, 180_000);
        let kept = compact(most.clone()).expect("test value");
        assert!(Arc::ptr_eq(most.column(0), kept.column(0)));
    }

    /// A batch of `rows` rows of about 200 bytes each, as a string and as a string view.
    fn wide_batch(rows: usize) -> RecordBatch {
        let text = |i: usize| format!("{i:0>8}{}", "x".repeat(92));
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("text", DataType::Utf8, true),
            Field::new("view", DataType::Utf8View, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from_iter_values(0..rows as i64)),
                Arc::new(StringArray::from_iter(
                    (0..rows).map(|i| (i % 5 != 0).then(|| text(i))),
                )),
                Arc::new(StringViewArray::from_iter((0..rows).map(|i| Some(text(i))))),
            ],
        )
        .expect("test value")
    }

    #[test]
    fn a_batch_over_the_body_size_is_given_as_slices_under_it() {
        let whole = wide_batch(50_000);
        let max_body = 1 << 20;
        let slices = sliced(whole.clone(), max_body).expect("test value");
        assert!(slices.len() > 9, "{} slices", slices.len());
        for slice in &slices {
            let body: usize = slice
                .columns()
                .iter()
                .map(|c| written_bytes(c, true).expect("test value"))
                .sum();
            // (Views counted with their data buffers whole: each slice keeps its own strings.)
            assert!(body <= max_body, "{body} bytes");
        }
        let rejoined = datafusion::arrow::compute::concat_batches(&whole.schema(), &slices)
            .expect("test value");
        assert_eq!(rejoined, whole);
        // Rows within the size: one batch, its other columns as they were, its views (into the
        // whole batch's strings) keeping only their own.
        let small = whole.slice(0, 100);
        assert!(written_bytes(small.column(2), true).expect("test value") > max_body);
        let kept = sliced(small.clone(), max_body).expect("test value");
        assert_eq!(kept, vec![small.clone()]);
        assert!(Arc::ptr_eq(kept[0].column(1), small.column(1)));
        assert!(written_bytes(kept[0].column(2), true).expect("test value") < 30_000);
    }

    #[tokio::test]
    async fn the_pass_through_writer_writes_wide_batches_as_messages_the_scheduler_forwards() {
        use datafusion::arrow::ipc::{MessageHeader, root_as_message};
        use datafusion::datasource::memory::MemorySourceConfig;
        use datafusion::prelude::SessionContext;

        // 60,000 rows of ~200 bytes in one batch: 12 MB, three times the forwarded size.
        let batch = wide_batch(60_000);
        let schema = batch.schema();
        let input = MemorySourceConfig::try_new_exec(&[vec![batch.clone()]], schema, None)
            .expect("test value");
        let work_dir = std::env::temp_dir().join(format!("compact-{}", uuid::Uuid::new_v4()));
        let writer: Arc<dyn ExecutionPlan> = Arc::new(
            ShuffleWriterExec::try_new(
                "job".to_owned().into(),
                1,
                input,
                work_dir.display().to_string(),
            )
            .expect("test value"),
        );
        let writer = compact_shuffle_input(writer).expect("test value");
        let task = SessionContext::new().task_ctx();
        datafusion::physical_plan::collect(writer, task)
            .await
            .expect("writes");
        let file = work_dir.join("job/1/0/data-0.arrow");
        let bytes = std::fs::read(&file).expect("the partition's file");
        std::fs::remove_dir_all(&work_dir).expect("test value");

        // Every record batch message's body is within what the scheduler forwards as it is.
        let (mut at, mut batches) = (0, 0);
        while at + 8 <= bytes.len() {
            let length = i32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes"));
            if length <= 0 {
                break;
            }
            let header = &bytes[at + 8..at + 8 + length as usize];
            let message = root_as_message(header).expect("an IPC message");
            if message.header_type() == MessageHeader::RecordBatch {
                batches += 1;
                assert!(
                    message.bodyLength() as usize <= tributary_proto::MAX_RESULT_BODY_BYTES,
                    "a body of {} bytes",
                    message.bodyLength()
                );
            }
            at += 8 + length as usize + message.bodyLength() as usize;
        }
        assert!(batches >= 3, "{batches} batches");
        // And the file holds the rows as they were.
        let read = datafusion::arrow::ipc::reader::StreamReader::try_new(
            std::io::Cursor::new(bytes),
            None,
        )
        .expect("an IPC stream")
        .collect::<std::result::Result<Vec<_>, _>>()
        .expect("batches");
        assert_eq!(
            datafusion::arrow::compute::concat_batches(&batch.schema(), &read).expect("test value"),
            batch
        );
    }
}
