//! INFO: the sections clients and tools read, with Redis's field names.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use crate::cmd::REDIS_VERSION;
use crate::shared::{Shared, now_ms};

const DEFAULT: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "keyspace",
];

/// Resident set size in bytes, from /proc (0 where unavailable).
fn rss_bytes() -> u64 {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Redis's bytes-to-human (`1.50M`).
fn human(n: u64) -> String {
    let n = n as f64;
    let units = [
        (1u64 << 40, "T"),
        (1 << 30, "G"),
        (1 << 20, "M"),
        (1 << 10, "K"),
    ];
    for (size, unit) in units {
        if n >= size as f64 {
            return format!("{:.2}{unit}", n / size as f64);
        }
    }
    format!("{n}B")
}

/// Renders the requested sections (`[]` or "default": the default set; "all"/"everything").
#[must_use]
pub fn render(shared: &Shared, requested: &[String]) -> String {
    let mut want: Vec<&str> = Vec::new();
    if requested.is_empty() {
        want.extend(DEFAULT);
    }
    for r in requested {
        match r.as_str() {
            "default" | "all" | "everything" => want.extend(DEFAULT),
            other => want.push(other),
        }
    }
    let mut out = String::new();
    for section in [
        "server",
        "clients",
        "memory",
        "persistence",
        "stats",
        "keyspace",
    ] {
        if !want.contains(&section) {
            continue;
        }
        if !out.is_empty() {
            out.push_str("\r\n");
        }
        match section {
            "server" => server(shared, &mut out),
            "clients" => clients(shared, &mut out),
            "memory" => memory(shared, &mut out),
            "persistence" => persistence(shared, &mut out),
            "stats" => stats(shared, &mut out),
            _ => keyspace(shared, &mut out),
        }
    }
    out
}

macro_rules! field {
    ($out:expr, $name:expr, $value:expr) => {
        let _ = write!($out, "{}:{}\r\n", $name, $value);
    };
}

fn server(shared: &Shared, out: &mut String) {
    let uptime = shared.started.elapsed().as_secs();
    let config = shared.config.read();
    out.push_str("# Server\r\n");
    field!(out, "redis_version", REDIS_VERSION);
    field!(out, "respite_version", env!("CARGO_PKG_VERSION"));
    field!(out, "redis_git_sha1", "00000000");
    field!(out, "redis_git_dirty", 0);
    field!(out, "redis_build_id", "0");
    field!(out, "redis_mode", "standalone");
    field!(
        out,
        "os",
        format!("{} {}", std::env::consts::OS, std::env::consts::ARCH)
    );
    field!(out, "arch_bits", usize::BITS);
    field!(out, "multiplexing_api", "epoll");
    field!(out, "process_id", std::process::id());
    field!(out, "run_id", &shared.run_id);
    field!(out, "tcp_port", shared.port);
    field!(out, "server_time_usec", now_ms() * 1000);
    field!(out, "uptime_in_seconds", uptime);
    field!(out, "uptime_in_days", uptime / 86400);
    field!(out, "hz", 10);
    field!(out, "reactor_threads", shared.reactors.len());
    field!(
        out,
        "executable",
        std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    );
    field!(out, "data_dir", config.dir.display());
}

fn clients(shared: &Shared, out: &mut String) {
    out.push_str("# Clients\r\n");
    field!(
        out,
        "connected_clients",
        shared.clients.load(Ordering::Relaxed)
    );
    field!(out, "maxclients", shared.config.read().maxclients);
    field!(out, "blocked_clients", 0);
    field!(out, "tracking_clients", 0);
}

fn memory(shared: &Shared, out: &mut String) {
    let stats = shared.engine.stats();
    let rss = rss_bytes();
    let used = rss.max(stats.index_bytes_estimate + stats.cache_bytes);
    out.push_str("# Memory\r\n");
    field!(out, "used_memory", used);
    field!(out, "used_memory_human", human(used));
    field!(out, "used_memory_rss", rss);
    field!(out, "used_memory_rss_human", human(rss));
    field!(out, "used_memory_peak", used);
    field!(out, "used_memory_dataset", stats.index_bytes_estimate);
    field!(out, "cache_bytes", stats.cache_bytes);
    field!(out, "cache_capacity", shared.config.read().cache_size_bytes);
    field!(out, "maxmemory", 0);
    field!(out, "maxmemory_human", "0B");
    field!(out, "maxmemory_policy", "noeviction");
    field!(out, "mem_fragmentation_ratio", "1.00");
}

fn persistence(shared: &Shared, out: &mut String) {
    let stats = shared.engine.stats();
    let failure = shared.engine.sync_failure();
    let status = if failure.is_some() { "err" } else { "ok" };
    out.push_str("# Persistence\r\n");
    field!(out, "loading", 0);
    field!(out, "async_loading", 0);
    field!(
        out,
        "rdb_changes_since_last_save",
        stats.last_gsn.saturating_sub(stats.durable_gsn)
    );
    field!(out, "rdb_bgsave_in_progress", 0);
    field!(
        out,
        "rdb_last_save_time",
        shared.last_save_unix.load(Ordering::Relaxed)
    );
    field!(out, "rdb_last_bgsave_status", status);
    field!(out, "aof_enabled", 1);
    field!(out, "aof_rewrite_in_progress", 0);
    field!(out, "aof_rewrite_scheduled", 0);
    field!(out, "aof_last_bgrewrite_status", "ok");
    field!(out, "aof_last_write_status", status);
    field!(out, "appendfsync", shared.engine.sync_mode());
    field!(out, "last_gsn", stats.last_gsn);
    field!(out, "durable_gsn", stats.durable_gsn);
    field!(out, "last_sync_unix_ms", stats.last_sync_unix_ms);
    field!(out, "syncs", stats.syncs);
    field!(out, "disk_bytes", stats.disk_bytes);
    field!(out, "dead_bytes", stats.dead_bytes);
    field!(out, "files", stats.files);
    field!(out, "compactions", stats.compactions);
    let encrypted = shared.config.read().encryption_key_file.is_some();
    field!(out, "respite_encryption", u8::from(encrypted));
    if let Some(why) = failure {
        field!(out, "sync_failure", why.replace(['\r', '\n'], " "));
    }
}

fn stats(shared: &Shared, out: &mut String) {
    let engine = shared.engine.stats();
    out.push_str("# Stats\r\n");
    field!(
        out,
        "total_connections_received",
        shared.sum(|s| &s.connections)
    );
    field!(out, "total_commands_processed", shared.sum(|s| &s.commands));
    field!(
        out,
        "instantaneous_ops_per_sec",
        shared.sum(|s| &s.ops_per_sec)
    );
    field!(
        out,
        "total_net_input_bytes",
        shared.sum(|s| &s.net_input_bytes)
    );
    field!(
        out,
        "total_net_output_bytes",
        shared.sum(|s| &s.net_output_bytes)
    );
    field!(
        out,
        "rejected_connections",
        shared.rejected_connections.load(Ordering::Relaxed)
    );
    field!(out, "expired_keys", engine.expired_keys);
    field!(out, "evicted_keys", 0);
    field!(out, "keyspace_hits", shared.sum(|s| &s.keyspace_hits));
    field!(out, "keyspace_misses", shared.sum(|s| &s.keyspace_misses));
    field!(out, "cache_hits", engine.cache_hits);
    field!(out, "cache_misses", engine.cache_misses);
    field!(out, "total_error_replies", shared.sum(|s| &s.error_replies));
}

fn keyspace(shared: &Shared, out: &mut String) {
    let stats = shared.engine.stats();
    out.push_str("# Keyspace\r\n");
    for (i, db) in stats.dbs.iter().enumerate() {
        if db.keys > 0 {
            let _ = write!(
                out,
                "db{i}:keys={},expires={},avg_ttl=0\r\n",
                db.keys, db.expires
            );
        }
    }
}
