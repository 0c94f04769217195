//! The logger: slog-term lines through slog-async, filtered by Redis's log levels.
//!
//! Levels map as notice -> INFO, verbose -> DEBUG, debug -> TRACE, warning -> WARN; the
//! level can change at run time (CONFIG SET loglevel).

use std::fs::OpenOptions;
use std::sync::atomic::{AtomicUsize, Ordering};

use slog::{Drain, Level, Logger, o};

use crate::config::LogLevel;

static LEVEL: AtomicUsize = AtomicUsize::new(4);

fn slog_level(level: LogLevel) -> Level {
    match level {
        LogLevel::Debug => Level::Trace,
        LogLevel::Verbose => Level::Debug,
        LogLevel::Notice => Level::Info,
        LogLevel::Warning => Level::Warning,
    }
}

/// Changes the level every logger built here filters at.
pub fn set_level(level: LogLevel) {
    LEVEL.store(slog_level(level).as_usize(), Ordering::Relaxed);
}

struct RuntimeLevel<D>(D);

impl<D: Drain> Drain for RuntimeLevel<D> {
    type Ok = Option<D::Ok>;
    type Err = D::Err;

    fn log(
        &self,
        record: &slog::Record<'_>,
        values: &slog::OwnedKVList,
    ) -> Result<Self::Ok, Self::Err> {
        // Records tagged "always" (the ready line tools wait for) pass at any level.
        if record.level().as_usize() <= LEVEL.load(Ordering::Relaxed) || record.tag() == "always" {
            self.0.log(record, values).map(Some)
        } else {
            Ok(None)
        }
    }
}

/// A logger writing to `logfile` (standard output when empty). Keep the guard alive until
/// exit: dropping it flushes the queue.
///
/// # Errors
///
/// When the log file cannot be opened.
pub fn build(level: LogLevel, logfile: &str) -> std::io::Result<(Logger, slog_async::AsyncGuard)> {
    set_level(level);
    // The level filter sits in front of the async queue, so a filtered-out record costs an
    // atomic load on the caller's thread and never reaches the logging thread.
    let (drain, guard) = if logfile.is_empty() {
        let decorator = slog_term::TermDecorator::new().stdout().build();
        let drain = slog_term::FullFormat::new(decorator).build().ignore_res();
        slog_async::Async::new(drain)
            .chan_size(4096)
            .build_with_guard()
    } else {
        let file = OpenOptions::new().create(true).append(true).open(logfile)?;
        let decorator = slog_term::PlainSyncDecorator::new(file);
        let drain = slog_term::FullFormat::new(decorator).build().ignore_res();
        slog_async::Async::new(drain)
            .chan_size(4096)
            .build_with_guard()
    };
    // A log line that cannot be written (stdout closed, disk full) is dropped: logging must
    // never take a reactor down.
    let drain = RuntimeLevel(drain.ignore_res()).ignore_res();
    Ok((Logger::root(drain, o!()), guard))
}
