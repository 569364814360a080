//! The log writer: formatted lines are appended to a shared buffer under a
//! lock and written by one background thread, so a connection's worker
//! never waits for the disk, and a burst of lines costs one `write`.
//!
//! The thread sleeps on a condition variable only when there is nothing to
//! write, so a logging worker makes a wake-up syscall only then; after each
//! write it pauses a moment ([`GATHER`]) to let the next lines gather
//! instead of waking for every one. (The channel-based writer this replaced
//! spun and yielded the CPU a few times per line.) When the buffer holds
//! [`MAX_QUEUED`] bytes, new lines are dropped and counted rather than stall
//! a worker on a slow disk or pipe.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// Most bytes queued before lines are dropped.
const MAX_QUEUED: usize = 16 * 1024 * 1024;
/// How long the writer lets lines gather after a write: the most a line
/// waits behind another.
const GATHER: Duration = Duration::from_millis(10);

#[derive(Debug, Default)]
struct Queue {
    bytes: Vec<u8>,
    /// The writer thread sleeps on the condition variable.
    waiting: bool,
    closed: bool,
}

#[derive(Debug, Default)]
struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    dropped: AtomicUsize,
}

/// Hands lines to the writer thread; `tracing`'s `MakeWriter`.
#[derive(Debug, Clone)]
pub struct QueuedWriter {
    shared: Arc<Shared>,
}

/// Stops the writer thread, once it wrote everything queued.
#[derive(Debug)]
pub struct WriterThread {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// Starts the writer thread over `out`.
pub fn start<W: Write + Send + 'static>(out: W) -> std::io::Result<(QueuedWriter, WriterThread)> {
    let shared = Arc::new(Shared::default());
    let thread = {
        let shared = shared.clone();
        std::thread::Builder::new().name("serve2-log".into()).spawn(move || write_queued(&shared, out))?
    };
    Ok((QueuedWriter { shared: shared.clone() }, WriterThread { shared, thread: Some(thread) }))
}

fn write_queued<W: Write>(shared: &Shared, mut out: W) {
    let mut batch = Vec::new();
    loop {
        let closed = {
            let mut queue = shared.queue.lock().unwrap_or_else(PoisonError::into_inner);
            while queue.bytes.is_empty() && !queue.closed {
                queue.waiting = true;
                queue = shared.wake.wait(queue).unwrap_or_else(PoisonError::into_inner);
                queue.waiting = false;
            }
            std::mem::swap(&mut batch, &mut queue.bytes);
            queue.closed
        };
        // A log that cannot be written has nowhere to report to; the lines
        // are lost either way, and the daemon must go on.
        let _ = out.write_all(&batch).and_then(|()| out.flush());
        batch.clear();
        if closed {
            let queue = shared.queue.lock().unwrap_or_else(PoisonError::into_inner);
            if queue.bytes.is_empty() {
                return;
            }
            continue;
        }
        std::thread::sleep(GATHER);
    }
}

impl QueuedWriter {
    /// Lines dropped because the queue was full.
    pub fn dropped_lines(&self) -> usize {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

impl Write for QueuedWriter {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let mut queue = self.shared.queue.lock().unwrap_or_else(PoisonError::into_inner);
        if queue.bytes.len() + line.len() > MAX_QUEUED {
            drop(queue);
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return Ok(line.len());
        }
        queue.bytes.extend_from_slice(line);
        if queue.waiting {
            queue.waiting = false;
            drop(queue);
            self.shared.wake.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for QueuedWriter {
    type Writer = QueuedWriter;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Drop for WriterThread {
    fn drop(&mut self) {
        self.shared.queue.lock().unwrap_or_else(PoisonError::into_inner).closed = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer the test can read back.
    #[derive(Clone, Default)]
    struct Collected(Arc<Mutex<Vec<u8>>>);

    impl Write for Collected {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_is_written_in_order_by_the_time_the_thread_stops() {
        let out = Collected::default();
        let (writer, thread) = start(out.clone()).expect("thread");
        let producers: Vec<_> = (0..4)
            .map(|p| {
                let mut writer = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..1000 {
                        writer.write_all(format!("{p} {i}\n").as_bytes()).expect("queued");
                    }
                })
            })
            .collect();
        for producer in producers {
            producer.join().expect("producer");
        }
        drop(thread);
        let text = String::from_utf8(out.0.lock().expect("lock").clone()).expect("utf8");
        for p in 0..4 {
            let mine: Vec<usize> = text
                .lines()
                .filter_map(|l| l.strip_prefix(&format!("{p} ")))
                .map(|i| i.parse().expect("number"))
                .collect();
            assert_eq!(mine, (0..1000).collect::<Vec<_>>(), "producer {p}'s lines, all, in order");
        }
        assert_eq!(writer.dropped_lines(), 0);
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_blocking() {
        // A writer that never returns until released: the queue fills.
        let gate = Arc::new(Mutex::new(()));
        struct Stuck(Arc<Mutex<()>>);
        impl Write for Stuck {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                let _held = self.0.lock().expect("lock");
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let held = gate.lock().expect("lock");
        let (mut writer, thread) = start(Stuck(gate.clone())).expect("thread");
        let line = vec![b'x'; 1024 * 1024];
        for _ in 0..40 {
            writer.write_all(&line).expect("never blocks");
        }
        let dropped = writer.dropped_lines();
        drop(held);
        drop(thread);
        // The thread holds at most one queue's worth, the queue another.
        assert!(dropped >= 40 - 2 * (MAX_QUEUED / line.len()), "{dropped} dropped");
    }
}
