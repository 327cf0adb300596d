//! One query's memory on an executor: its tasks share a DataFusion [`FairSpillPool`] of the
//! query's limit, charged to the node's total ([`NodeMemory`]), with our rule for operators
//! that can spill (told to spill past their fair part of three quarters of the limit).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use datafusion::error::{DataFusionError, Result};
use datafusion::execution::memory_pool::{
    FairSpillPool, MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation,
};
use tributary_telemetry::data_size;

use super::NodeMemory;

/// One query's memory on this node.
#[derive(Debug)]
pub(super) struct QueryMemory {
    query_id: String,
    pub(super) limit: usize,
    pub(super) property: &'static str,
    inner: FairSpillPool,
    node: Arc<NodeMemory>,
    peak: AtomicUsize,
    /// Consumers registered that can spill (sorts, aggregations), across the query's tasks.
    spillers: AtomicUsize,
}

impl QueryMemory {
    pub(super) fn new(
        query_id: String,
        limit: usize,
        property: &'static str,
        node: Arc<NodeMemory>,
    ) -> Self {
        Self {
            query_id,
            limit,
            property,
            inner: FairSpillPool::new(limit),
            node,
            peak: AtomicUsize::new(0),
            spillers: AtomicUsize::new(0),
        }
    }

    pub(super) fn reserved(&self) -> usize {
        self.inner.reserved()
    }

    pub(super) fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    fn note_peak(&self) {
        self.peak
            .fetch_max(self.inner.reserved(), Ordering::Relaxed);
    }

    /// What the query's spilling operators may hold before they are told to spill: three
    /// quarters of the limit together, a quarter left to operators that cannot spill.
    fn spill_room(&self) -> usize {
        self.limit - self.limit / 4
    }

    /// One spilling operator's fair part of [`Self::spill_room`].
    fn spill_share(&self) -> usize {
        self.spill_room() / self.spillers.load(Ordering::Relaxed).max(1)
    }
}

/// The pool a task's runtime uses: its query's [`FairSpillPool`], charged to the node.
#[derive(Debug)]
pub(super) struct QueryPool(pub(super) Arc<QueryMemory>);

impl std::fmt::Display for QueryPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "query {} ({} of {})",
            self.0.query_id,
            data_size(self.0.reserved()),
            data_size(self.0.limit)
        )
    }
}

impl MemoryPool for QueryPool {
    fn name(&self) -> &str {
        "tributary-query"
    }

    fn register(&self, consumer: &MemoryConsumer) {
        if consumer.can_spill() {
            self.0.spillers.fetch_add(1, Ordering::Relaxed);
        }
        self.0.inner.register(consumer);
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        if consumer.can_spill() {
            self.0.spillers.fetch_sub(1, Ordering::Relaxed);
        }
        self.0.inner.unregister(consumer);
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.0.inner.grow(reservation, additional);
        self.0.node.force(additional);
        self.0.note_peak();
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.0.inner.shrink(reservation, shrink);
        self.0.node.release(shrink);
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> Result<()> {
        let query = &self.0;
        let consumer = reservation.consumer().name().to_owned();
        // Operators that can spill, once they hold something to spill, leave a quarter of the
        // query's memory to those that cannot (a sort's merge buffers, hash tables):
        // DataFusion's fair pool lets spillers fill it all, and then a sort's own merge fails
        // instead of the sort spilling. An operator within its fair part of the spillers'
        // room may still take half of that quarter: when a task of the same query got in
        // first with more than its part, that task is the one told to spill at its next
        // growth, while a refusal could fail this one (DataFusion's final aggregation cannot
        // spill again while it gives out its groups or just after it spilled).
        let total = query.inner.reserved() + additional;
        let own = reservation.size() + additional;
        if reservation.consumer().can_spill()
            && reservation.size() > 0
            && total > query.spill_room()
            && (own > query.spill_share() || total > query.limit - query.limit / 8)
        {
            return Err(DataFusionError::ResourcesExhausted(format!(
                "{consumer} must spill: its query holds {} of {} ({}), {} of it for this \
                 operator",
                data_size(query.inner.reserved()),
                data_size(query.limit),
                query.property,
                data_size(reservation.size()),
            )));
        }
        // Spilling operators take a refusal as "spill now"; the message is for the others.
        if query.inner.try_grow(reservation, additional).is_err() {
            return Err(DataFusionError::ResourcesExhausted(format!(
                "Query exceeded per-node memory limit of {} ({}) [Allocated: {}, Delta: {}, \
                 Operator: {consumer}]",
                data_size(query.limit),
                query.property,
                data_size(query.inner.reserved()),
                data_size(additional),
            )));
        }
        if !query.node.charge(additional) {
            query.inner.shrink(reservation, additional);
            return Err(DataFusionError::ResourcesExhausted(format!(
                "Query exceeded node memory: the queries on this executor would reserve more \
                 than {} (query.max-total-memory-per-node) [Query allocated: {}, Delta: {}, \
                 Operator: {consumer}]",
                data_size(query.node.total),
                data_size(query.inner.reserved()),
                data_size(additional),
            )));
        }
        query.note_peak();
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.0.inner.reserved()
    }

    fn memory_limit(&self) -> MemoryLimit {
        MemoryLimit::Finite(self.0.limit)
    }
}
