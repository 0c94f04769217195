//! A slog drain that keeps every line, for tests that check what recovery reported.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use slog::{Drain, KV, OwnedKVList, Record, Serializer};

/// Every logged line as `LEVEL message key=value ...`.
#[derive(Clone, Default)]
pub struct Capture(Arc<Mutex<Vec<String>>>);

struct Line<'a>(&'a mut String);

impl Serializer for Line<'_> {
    fn emit_arguments(&mut self, key: slog::Key, val: &std::fmt::Arguments) -> slog::Result {
        let _ = write!(self.0, " {key}={val}");
        Ok(())
    }
}

impl Drain for Capture {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record, values: &OwnedKVList) -> Result<(), slog::Never> {
        let mut s = format!("{} {}", record.level(), record.msg());
        let _ = record.kv().serialize(record, &mut Line(&mut s));
        let _ = values.serialize(record, &mut Line(&mut s));
        self.0.lock().unwrap().push(s);
        Ok(())
    }
}

impl Capture {
    /// A logger writing into this capture.
    pub fn logger(&self) -> slog::Logger {
        slog::Logger::root(self.clone().fuse(), slog::o!())
    }

    /// Every line logged so far.
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// Warnings and errors logged so far.
    pub fn loud(&self) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|l| {
                ["WARN", "ERRO", "CRIT"]
                    .iter()
                    .any(|lvl| l.starts_with(lvl))
            })
            .collect()
    }
}
