#![allow(clippy::unwrap_used)]
//! The maintenance thread (compaction, hint files, expiry sweep) runs at the lowest CPU
//! priority, so on a busy machine it takes what the request threads leave.
#![cfg(target_os = "linux")]

use std::time::{Duration, Instant};

use respite_storage::*;

/// The nice value in a thread's `stat`: field 19, counted after the parenthesised name.
fn nice_in(stat: &str) -> Option<i64> {
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(16)?.parse().ok()
}

/// The nice value of this process's thread named `name`, if there is one.
fn nice_of(name: &str) -> Option<i64> {
    for t in std::fs::read_dir("/proc/self/task").unwrap() {
        let t = t.unwrap().path();
        let Ok(comm) = std::fs::read_to_string(t.join("comm")) else {
            continue; // the thread ended meanwhile
        };
        if comm.trim_end() != name {
            continue;
        }
        // A thread can end between the listing and the read (the sync round's short-lived
        // fdatasync threads inherit its name): look at the next one of that name.
        let Ok(stat) = std::fs::read_to_string(t.join("stat")) else {
            continue;
        };
        return nice_in(&stat);
    }
    None
}

#[test]
fn the_maintenance_thread_runs_at_nice_19() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path(), Config::default()).unwrap();
    // The thread lowers its own priority as it starts: wait for that (bounded).
    let deadline = Instant::now() + Duration::from_secs(30);
    // A thread takes its name as it starts running (until then it has its creator's): wait
    // for the sync thread's too.
    let mut nice = nice_of("respite-maint");
    let mut sync = nice_of("respite-sync");
    while (nice != Some(19) || sync.is_none()) && Instant::now() < deadline {
        std::thread::yield_now();
        nice = nice_of("respite-maint");
        sync = nice_of("respite-sync");
    }
    assert_eq!(nice, Some(19));
    // The sync thread (durability waits on it) keeps the priority of the process.
    let own = nice_in(&std::fs::read_to_string("/proc/thread-self/stat").unwrap());
    assert_eq!(sync, own);
    e.close().unwrap();
}
