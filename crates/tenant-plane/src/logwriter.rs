//! Log lines leave the request path through a shared buffer that a background thread writes
//! out every few milliseconds: a request appends its line under a short lock and never waits
//! for a `write(2)` to the log sink, nor wakes another thread for every line.
//!
//! `tracing-appender`'s non-blocking writer, used before, hands each line through a channel
//! whose receiving thread wakes for every line when the load is light; at one request at a time
//! that was two thread wake-ups and two context switches per gateway request, about 0.03 ms of
//! its latency. Here the writer thread wakes on a timer (or when the buffer passes a high-water
//! mark) and writes everything gathered in one call; with nothing to write it sleeps until the
//! next line, so an idle process does not wake at all.
//!
//! Nothing is dropped: when the buffer holds [`LogBuffer::capacity`] bytes, because the sink is
//! slow or stalled, writers wait for room, as they would writing to the sink themselves.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How often gathered lines are written out.
const FLUSH_EVERY: Duration = Duration::from_millis(20);
/// Past this many buffered bytes the writer thread is woken at once (well above what the
/// busiest load we measured gathers between two timer flushes, so the timer does the work).
const HIGH_WATER: usize = 256 * 1024;
/// Buffered bytes at most; writers wait beyond this.
const CAPACITY: usize = 1024 * 1024;

struct State {
    buf: Vec<u8>,
    /// Set by the guard: write what is left and stop.
    closing: bool,
    /// The sink failed or the thread stopped: lines are discarded instead of waited on.
    dead: bool,
    /// The writer thread was woken early and has not taken the buffer yet: waking it again
    /// would only cost a system call per line.
    woken: bool,
    /// The writer thread found nothing to write and sleeps until a line arrives (an idle
    /// process does not wake every [`FLUSH_EVERY`]).
    parked: bool,
    /// Times the writer thread has taken the buffer (how often it woke up).
    rounds: u64,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the writer thread early (high water, closing).
    wake: Condvar,
    /// Wakes writers waiting for room.
    room: Condvar,
    capacity: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The writing end, for `tracing_subscriber::fmt().with_writer(...)`. Cheap to clone.
#[derive(Clone)]
pub struct LogBuffer {
    shared: Arc<Shared>,
}

/// Stops the writer thread when dropped, after it has written every buffered line. Hold it
/// until the end of `main`.
pub struct LogGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl LogBuffer {
    /// Starts the writer thread over `sink`.
    pub fn start<W: Write + Send + 'static>(sink: W) -> io::Result<(LogBuffer, LogGuard)> {
        Self::with_capacity(sink, CAPACITY)
    }

    fn with_capacity<W: Write + Send + 'static>(
        sink: W,
        capacity: usize,
    ) -> io::Result<(LogBuffer, LogGuard)> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                buf: Vec::with_capacity(HIGH_WATER),
                closing: false,
                dead: false,
                woken: false,
                parked: false,
                rounds: 0,
            }),
            wake: Condvar::new(),
            room: Condvar::new(),
            capacity,
        });
        let thread = std::thread::Builder::new()
            .name("atlasai-log".into())
            .spawn({
                let shared = shared.clone();
                move || write_out(&shared, sink)
            })?;
        Ok((
            LogBuffer {
                shared: shared.clone(),
            },
            LogGuard {
                shared,
                thread: Some(thread),
            },
        ))
    }

    /// Bytes this buffer holds before writers wait.
    pub fn capacity(&self) -> usize {
        self.shared.capacity
    }
}

/// The writer thread: every [`FLUSH_EVERY`], or sooner when woken, swaps the buffer for an
/// empty one and writes what it held. When there was nothing to write it sleeps until a line
/// arrives.
fn write_out<W: Write>(shared: &Shared, mut sink: W) {
    let mut spare = Vec::with_capacity(HIGH_WATER);
    loop {
        let closing = {
            let mut state = shared.lock();
            if state.buf.is_empty() && !state.closing {
                // Nothing to write: sleep until the first line of the next burst, then gather
                // for one interval as usual.
                state.parked = true;
                state = shared
                    .wake
                    .wait_while(state, |s| s.buf.is_empty() && !s.closing)
                    .unwrap_or_else(PoisonError::into_inner);
                state.parked = false;
            }
            if state.buf.len() < HIGH_WATER && !state.closing {
                state = shared
                    .wake
                    .wait_timeout(state, FLUSH_EVERY)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            std::mem::swap(&mut state.buf, &mut spare);
            state.woken = false;
            state.rounds += 1;
            state.closing
        };
        shared.room.notify_all();
        let ok = spare.is_empty() || (sink.write_all(&spare).is_ok() && sink.flush().is_ok());
        // Keep a modest allocation for the next round, not the largest burst's.
        spare.clear();
        spare.shrink_to(HIGH_WATER);
        if !ok {
            // Nowhere to write (stderr closed): stop buffering so that nobody waits forever.
            let mut state = shared.lock();
            state.dead = true;
            state.buf = Vec::new();
            drop(state);
            shared.room.notify_all();
            return;
        }
        if closing && shared.lock().buf.is_empty() {
            let mut state = shared.lock();
            state.dead = true;
            drop(state);
            shared.room.notify_all();
            return;
        }
    }
}

impl Write for LogBuffer {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let shared = &*self.shared;
        let mut state = shared.lock();
        // A line larger than the whole buffer still goes in, once the buffer is empty.
        while !state.dead && !state.buf.is_empty() && state.buf.len() + line.len() > shared.capacity
        {
            wake(shared, &mut state);
            state = shared
                .room
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if state.dead {
            return Ok(line.len());
        }
        state.buf.extend_from_slice(line);
        if state.buf.len() >= HIGH_WATER {
            wake(shared, &mut state);
        } else if std::mem::replace(&mut state.parked, false) {
            // The first line after a quiet spell: at most one wake-up per interval.
            shared.wake.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Wakes the writer thread early, once per buffer it has to take.
fn wake(shared: &Shared, state: &mut State) {
    if !std::mem::replace(&mut state.woken, true) {
        shared.wake.notify_one();
    }
}

impl<'a> MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;

    fn make_writer(&'a self) -> LogBuffer {
        self.clone()
    }
}

impl std::fmt::Debug for LogBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogBuffer")
            .field("capacity", &self.shared.capacity)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for LogGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogGuard").finish_non_exhaustive()
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A sink that records what reached it and can be held shut.
    #[derive(Clone, Default)]
    struct Sink {
        out: Arc<Mutex<Vec<u8>>>,
        stalled: Arc<AtomicBool>,
        writes: Arc<Mutex<usize>>,
    }

    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            while self.stalled.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
            *self.writes.lock().unwrap() += 1;
            self.out.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn lines(sink: &Sink) -> Vec<String> {
        String::from_utf8(sink.out.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn every_line_is_written_whole_and_in_order_from_many_threads() {
        let sink = Sink::default();
        let (writer, guard) = LogBuffer::start(sink.clone()).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let mut w = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..5_000 {
                        w.write_all(format!("thread {t} line {i}\n").as_bytes())
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(guard);
        let got = lines(&sink);
        assert_eq!(got.len(), 20_000);
        for t in 0..4 {
            let mine: Vec<&String> = got
                .iter()
                .filter(|l| l.starts_with(&format!("thread {t} ")))
                .collect();
            assert_eq!(mine.len(), 5_000);
            for (i, l) in mine.iter().enumerate() {
                assert_eq!(**l, format!("thread {t} line {i}"));
            }
        }
        // Gathered, not one write per line.
        assert!(*sink.writes.lock().unwrap() < 20_000);
    }

    /// Waits up to 5 s for `done`.
    fn wait_for(what: &str, done: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !done() {
            assert!(std::time::Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    #[test]
    fn lines_appear_within_the_flush_interval_without_a_high_water_mark() {
        let sink = Sink::default();
        let (mut writer, _guard) = LogBuffer::start(sink.clone()).unwrap();
        writer.write_all(b"one quiet line\n").unwrap();
        wait_for("never written", || !lines(&sink).is_empty());
        assert_eq!(lines(&sink), ["one quiet line"]);
    }

    #[test]
    fn an_idle_writer_sleeps_until_the_next_line() {
        let sink = Sink::default();
        let (mut writer, guard) = LogBuffer::start(sink.clone()).unwrap();
        writer.write_all(b"first\n").unwrap();
        wait_for("never went idle", || {
            writer.shared.lock().parked && lines(&sink).len() == 1
        });
        // Ten flush intervals of silence: no round at all (it used to wake every interval).
        let rounds = writer.shared.lock().rounds;
        std::thread::sleep(FLUSH_EVERY * 10);
        assert_eq!(writer.shared.lock().rounds, rounds);
        // The next line still goes out promptly, and so does the last one at shutdown.
        writer.write_all(b"second\n").unwrap();
        wait_for("second line never written", || lines(&sink).len() == 2);
        writer.write_all(b"third\n").unwrap();
        drop(guard);
        assert_eq!(lines(&sink), ["first", "second", "third"]);
    }

    #[test]
    fn a_stalled_sink_makes_writers_wait_at_capacity_and_loses_nothing() {
        let sink = Sink::default();
        sink.stalled.store(true, Ordering::SeqCst);
        let (writer, guard) = LogBuffer::with_capacity(sink.clone(), 1024).unwrap();
        assert_eq!(writer.capacity(), 1024);
        let done = Arc::new(AtomicBool::new(false));
        let producer = std::thread::spawn({
            let mut w = writer.clone();
            let done = done.clone();
            move || {
                for i in 0..200 {
                    w.write_all(format!("line {i:04} of the stalled sink\n").as_bytes())
                        .unwrap();
                }
                done.store(true, Ordering::SeqCst);
            }
        });
        // 200 lines of 30 bytes do not fit in 1 KiB plus what the thread holds: the producer
        // must be waiting, not finished, and the buffer must not have grown past capacity.
        std::thread::sleep(Duration::from_millis(100));
        assert!(!done.load(Ordering::SeqCst), "the writer did not wait");
        assert!(writer.shared.lock().buf.len() <= 1024);
        sink.stalled.store(false, Ordering::SeqCst);
        producer.join().unwrap();
        drop(guard);
        let got = lines(&sink);
        assert_eq!(got.len(), 200);
        assert_eq!(got[199], "line 0199 of the stalled sink");
    }

    #[test]
    fn a_failing_sink_never_blocks_writers() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::from(io::ErrorKind::BrokenPipe))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let (mut writer, guard) = LogBuffer::with_capacity(Broken, 64).unwrap();
        for _ in 0..1_000 {
            writer.write_all(b"a line nobody will read\n").unwrap();
        }
        drop(guard);
    }
}
