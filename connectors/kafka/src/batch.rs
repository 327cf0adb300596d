//! A partition's messages popped from librdkafka many at a time
//! (`rd_kafka_consume_batch_queue`), which rdkafka 0.39 does not wrap: its `poll` pops one
//! message per call, paying a queue lock, a clock read and an event allocation each time
//! (the largest costs of a Kafka scan after librdkafka's own fetching; see bench/README.md).
//!
//! The partition's queue is taken out of the consumer's (`rd_kafka_queue_forward(q, NULL)`,
//! as rdkafka's `split_partition_queue` does), so its messages arrive only here. Messages are
//! valid until [`PartitionBatches::release`], which the borrow checker enforces.

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::time::Duration;

use rdkafka::bindings as rd;
use rdkafka::consumer::{BaseConsumer, Consumer};

/// The messages of one partition, in batches.
pub(crate) struct PartitionBatches {
    queue: *mut rd::rd_kafka_queue_t,
    messages: Vec<*mut rd::rd_kafka_message_t>,
}

// SAFETY: librdkafka queue handles and messages may be used from any thread; this value is
// used by one thread at a time.
unsafe impl Send for PartitionBatches {}

impl PartitionBatches {
    /// The queue of `topic`/`partition` of `consumer`'s client, batches of up to `capacity`.
    /// Call before assigning the partition.
    pub(crate) fn new(
        consumer: &BaseConsumer,
        topic: &str,
        partition: i32,
        capacity: usize,
    ) -> Option<Self> {
        let topic = CString::new(topic).ok()?;
        // SAFETY: the client pointer is valid while `consumer` is; the handle returned holds
        // its own reference and is destroyed in `drop`.
        let queue = unsafe {
            rd::rd_kafka_queue_get_partition(
                consumer.client().native_ptr(),
                topic.as_ptr(),
                partition,
            )
        };
        if queue.is_null() {
            return None;
        }
        // SAFETY: `queue` is a valid handle; NULL stops forwarding to the consumer's queue.
        unsafe { rd::rd_kafka_queue_forward(queue, std::ptr::null_mut()) };
        Some(Self {
            queue,
            messages: Vec::with_capacity(capacity.max(1)),
        })
    }

    /// Waits up to `timeout` for messages and returns those that arrived (maybe none).
    pub(crate) fn next(&mut self, timeout: Duration) -> impl Iterator<Item = RawMessage<'_>> {
        self.release();
        let timeout_ms = c_int::try_from(timeout.as_millis()).unwrap_or(c_int::MAX);
        // SAFETY: the buffer has room for `capacity` pointers; librdkafka writes at most that
        // many and returns how many (or -1).
        let n = unsafe {
            rd::rd_kafka_consume_batch_queue(
                self.queue,
                timeout_ms,
                self.messages.as_mut_ptr(),
                self.messages.capacity(),
            )
        };
        let n = usize::try_from(n)
            .unwrap_or(0)
            .min(self.messages.capacity());
        // SAFETY: librdkafka initialised the first `n` pointers.
        unsafe { self.messages.set_len(n) };
        // SAFETY: each pointer is a live message until `release`, which needs `&mut self`.
        self.messages.iter().map(|m| RawMessage {
            message: unsafe { &**m },
        })
    }

    /// Gives the messages of the last batch back to librdkafka.
    pub(crate) fn release(&mut self) {
        for m in self.messages.drain(..) {
            // SAFETY: each message came from `rd_kafka_consume_batch_queue` and is destroyed once.
            unsafe { rd::rd_kafka_message_destroy(m) };
        }
    }
}

impl Drop for PartitionBatches {
    fn drop(&mut self) {
        self.release();
        // SAFETY: the handle from `rd_kafka_queue_get_partition`, destroyed once.
        unsafe { rd::rd_kafka_queue_destroy(self.queue) };
    }
}

/// One message of a batch, borrowed until the batch is released.
#[derive(Clone, Copy)]
pub(crate) struct RawMessage<'b> {
    message: &'b rd::rd_kafka_message_t,
}

impl<'b> RawMessage<'b> {
    /// Whether this is an error event rather than a message.
    pub(crate) fn is_error(&self) -> bool {
        self.message.err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
    }

    /// Whether this is the end-of-partition event.
    pub(crate) fn is_partition_eof(&self) -> bool {
        self.message.err == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__PARTITION_EOF
    }

    /// librdkafka's description of an error event.
    pub(crate) fn error_text(&self) -> String {
        // SAFETY: returns a static or message-owned NUL-terminated string.
        let text = unsafe { rd::rd_kafka_message_errstr(self.message) };
        if text.is_null() {
            return format!("{:?}", self.message.err);
        }
        // SAFETY: checked non-null above.
        unsafe { CStr::from_ptr(text) }
            .to_string_lossy()
            .into_owned()
    }

    pub(crate) fn partition(&self) -> i32 {
        self.message.partition
    }

    pub(crate) fn offset(&self) -> i64 {
        self.message.offset
    }

    pub(crate) fn payload(&self) -> Option<&'b [u8]> {
        bytes(self.message.payload, self.message.len)
    }

    pub(crate) fn key(&self) -> Option<&'b [u8]> {
        bytes(self.message.key, self.message.key_len)
    }

    /// Milliseconds since the epoch, when the message has a timestamp.
    pub(crate) fn timestamp(&self) -> Option<i64> {
        let mut kind = rd::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
        // SAFETY: a live message and a valid out-pointer.
        let millis = unsafe { rd::rd_kafka_message_timestamp(self.message, &mut kind) };
        (kind != rd::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE && millis >= 0)
            .then_some(millis)
    }

    /// The headers, in order.
    pub(crate) fn headers(&self) -> Vec<(&'b str, Option<&'b [u8]>)> {
        let mut headers: *mut rd::rd_kafka_headers_t = std::ptr::null_mut();
        // SAFETY: a live message and a valid out-pointer; the headers belong to the message.
        let err = unsafe { rd::rd_kafka_message_headers(self.message, &mut headers) };
        if err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || headers.is_null() {
            return vec![];
        }
        let mut out = Vec::new();
        for index in 0.. {
            let mut name: *const c_char = std::ptr::null();
            let mut value: *const c_void = std::ptr::null();
            let mut size = 0usize;
            // SAFETY: valid headers and out-pointers; NO_ERROR until past the last header.
            let err = unsafe {
                rd::rd_kafka_header_get_all(headers, index, &mut name, &mut value, &mut size)
            };
            if err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || name.is_null() {
                break;
            }
            // SAFETY: header names are NUL-terminated and live as long as the message.
            let name = unsafe { CStr::from_ptr(name) }.to_str().unwrap_or("");
            out.push((name, bytes(value.cast_mut(), size)));
        }
        out
    }
}

fn bytes<'b>(data: *mut c_void, len: usize) -> Option<&'b [u8]> {
    if data.is_null() {
        return None;
    }
    // SAFETY: librdkafka gives `len` readable bytes at `data`, alive as long as the message.
    Some(unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) })
}
