//! [`BatchWriter`]: log lines are appended to a shared buffer and written by a background
//! thread in batches, so a request never waits for the terminal, the pipe or the disk.
//!
//! Why not `tracing_appender::non_blocking`: it sends each line through a channel and its worker
//! writes each line with its own syscall, waking the worker thread per line; on a 2-core machine
//! that delivery cost a tenth of the throughput of a whole request (measured in
//! `benches/http_stack.rs`). Here a line costs one short mutex-protected copy; the thread wakes
//! every [`FLUSH_INTERVAL`] (or sooner when [`FLUSH_AT`] bytes are waiting) and writes
//! everything in one call.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// The longest a written line waits before the background thread writes it out.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(20);
/// Waiting bytes that wake the background thread before the interval is over.
pub const FLUSH_AT: usize = 256 * 1024;
/// Waiting bytes above which new lines are dropped (and counted) instead of growing memory while
/// the output is stuck.
pub const MAX_BUFFERED: usize = 16 * 1024 * 1024;

struct Shared {
    buffer: Mutex<State>,
    wake: Condvar,
    dropped: AtomicU64,
}

#[derive(Default)]
struct State {
    bytes: Vec<u8>,
    closed: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves only bytes behind: keep using them.
        self.buffer.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A [`MakeWriter`] whose lines are written by a background thread; create it with
/// [`non_blocking`]. Cheap to clone.
#[derive(Clone)]
pub struct BatchWriter {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for BatchWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchWriter")
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl BatchWriter {
    /// Lines dropped because more than [`MAX_BUFFERED`] bytes were waiting.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

impl Write for BatchWriter {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let mut state = self.shared.lock();
        if state.bytes.len() + line.len() > MAX_BUFFERED {
            drop(state);
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return Ok(line.len());
        }
        state.bytes.extend_from_slice(line);
        let wake = state.bytes.len() >= FLUSH_AT;
        drop(state);
        if wake {
            self.shared.wake.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchWriter {
    type Writer = BatchWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Flushes what is still buffered and stops the background thread when dropped: keep it alive
/// for the life of the program.
#[must_use = "dropping the guard stops the log writer"]
pub struct WriterGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for WriterGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WriterGuard")
    }
}

impl Drop for WriterGuard {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Wraps `output` (stdout, a file, a socket …) in a [`BatchWriter`] and starts its background
/// thread. Write errors of `output` are reported once on stderr and otherwise ignored: logging
/// must never take the application down.
pub fn non_blocking<W: Write + Send + 'static>(output: W) -> (BatchWriter, WriterGuard) {
    let shared = Arc::new(Shared {
        buffer: Mutex::new(State::default()),
        wake: Condvar::new(),
        dropped: AtomicU64::new(0),
    });
    let worker = Arc::clone(&shared);
    let thread = std::thread::Builder::new()
        .name("rustforge-log".into())
        .spawn(move || run(&worker, output))
        .ok();
    let guard = WriterGuard {
        shared: Arc::clone(&shared),
        thread,
    };
    (BatchWriter { shared }, guard)
}

fn run<W: Write>(shared: &Shared, mut output: W) {
    let mut batch = Vec::new();
    let mut reported = false;
    loop {
        let closed = {
            let mut state = shared.lock();
            if !state.closed && state.bytes.len() < FLUSH_AT {
                state = shared
                    .wake
                    .wait_timeout(state, FLUSH_INTERVAL)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            std::mem::swap(&mut batch, &mut state.bytes);
            state.closed
        };
        if !batch.is_empty() {
            if let Err(err) = output.write_all(&batch).and_then(|()| output.flush())
                && !std::mem::replace(&mut reported, true)
            {
                eprintln!("rustforge-prod: cannot write logs: {err}");
            }
            batch.clear();
        }
        if closed {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_is_written_in_order_by_the_time_the_guard_is_dropped() {
        let sink = Sink::default();
        let (writer, guard) = non_blocking(sink.clone());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let mut w = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..1000 {
                        w.write_all(format!("{t} {i}\n").as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        drop(guard);
        let out = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert_eq!(out.lines().count(), 4000);
        for t in 0..4 {
            let mine: Vec<usize> = out
                .lines()
                .filter_map(|l| l.strip_prefix(&format!("{t} ")))
                .map(|i| i.parse().unwrap())
                .collect();
            assert_eq!(mine, (0..1000).collect::<Vec<_>>());
        }
        assert_eq!(writer.dropped(), 0);
    }

    #[test]
    fn a_stuck_output_drops_and_counts_lines_instead_of_blocking() {
        struct Stuck(std::sync::mpsc::Receiver<()>);
        impl Write for Stuck {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                let _ = self.0.recv(); // blocks until the test ends
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let (release, stuck) = std::sync::mpsc::channel();
        let (mut writer, guard) = non_blocking(Stuck(stuck));
        let line = vec![b'x'; 64 * 1024];
        // Far more than MAX_BUFFERED: every write returns at once.
        for _ in 0..(2 * MAX_BUFFERED / line.len()) {
            writer.write_all(&line).unwrap();
        }
        assert!(writer.dropped() > 0);
        drop(release);
        drop(guard);
    }
}
