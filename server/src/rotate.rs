//! `respite-server rotate-key`: offline re-encryption of a data folder under a new key.
//!
//! Uses the engine's public API only: the folder is opened with the old key (or plain), every
//! live key of every database is copied with its value and expiry into a fresh folder
//! `DIR.rotating` opened with the new key (or plain), which is synced and closed; then the
//! folders are swapped (`DIR` -> `DIR.old-key`, `DIR.rotating` -> `DIR`, parent directory
//! fsynced after each rename) and the old one is removed. Until the first rename `DIR` is
//! untouched, so an interrupted rotation is simply run again. One interrupted between the two
//! renames (no `DIR`, both `DIR.rotating` and `DIR.old-key` present) is finished by the next
//! run.

use std::path::{Path, PathBuf};

use respite_storage::{Engine, Expiry, MasterKey, SetOptions, SyncMode};
use slog::Drain as _;

use crate::config::Config;

/// Why a rotation failed. Every message names the folder or file involved.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    /// A file-system step (rename, fsync, remove) failed.
    #[error("{what}: {source}")]
    Io {
        /// The step and its path.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The engine could not open, read, write or close a folder.
    #[error("{what}: {source}")]
    Engine {
        /// The step and its folder.
        what: String,
        /// The engine's error (names the file).
        source: respite_storage::Error,
    },
    /// The request cannot be carried out as given.
    #[error("{0}")]
    Usage(String),
}

/// What a rotation did.
#[derive(Debug, Clone, Default)]
pub struct RotateSummary {
    /// Keys in the rotated folder, per database (every database, zeros included).
    pub keys_per_db: Vec<u64>,
    /// Whether the folder was encrypted before.
    pub from_encrypted: bool,
    /// Whether it is encrypted now.
    pub to_encrypted: bool,
    /// The run only finished a swap an earlier, interrupted run had prepared.
    pub finished_interrupted: bool,
}

impl RotateSummary {
    /// The lines `rotate-key` prints.
    #[must_use]
    pub fn lines(&self, dir: &Path) -> Vec<String> {
        let state = |e: bool| if e { "encrypted" } else { "plain" };
        let mut out = Vec::new();
        if self.finished_interrupted {
            out.push(format!(
                "rotate-key: finished an interrupted rotation of {}",
                dir.display()
            ));
            return out;
        }
        let total: u64 = self.keys_per_db.iter().sum();
        out.push(format!(
            "rotate-key: {} rotated ({} -> {}), {} keys copied",
            dir.display(),
            state(self.from_encrypted),
            state(self.to_encrypted),
            total
        ));
        for (db, n) in self.keys_per_db.iter().enumerate() {
            if *n > 0 {
                out.push(format!("db{db}: {n} keys"));
            }
        }
        out
    }
}

/// Splits `rotate-key`'s arguments: `--new-encryption-key-file PATH` is taken out, the rest
/// are the server's own config file and flags.
///
/// # Errors
///
/// A flag given without its value.
pub fn split_args(args: &[String]) -> Result<(Vec<String>, Option<PathBuf>), String> {
    let mut rest = Vec::new();
    let mut new_key = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--new-encryption-key-file" {
            let v = it
                .next()
                .filter(|v| !v.starts_with("--"))
                .ok_or("--new-encryption-key-file needs a path")?;
            new_key = (!v.is_empty()).then(|| PathBuf::from(v));
        } else {
            rest.push(a.clone());
        }
    }
    Ok((rest, new_key))
}

/// `DIR` with `suffix` appended to its last component (`/srv/data` -> `/srv/data.rotating`).
fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir
        .file_name()
        .map(std::ffi::OsStr::to_os_string)
        .unwrap_or_default();
    name.push(suffix);
    dir.with_file_name(name)
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> RotateError {
    move |source| RotateError::Io { what, source }
}

fn eng(what: String) -> impl FnOnce(respite_storage::Error) -> RotateError {
    move |source| RotateError::Engine { what, source }
}

fn fsync_dir(dir: &Path) -> Result<(), RotateError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(format!("fsync {}", dir.display())))
}

/// Whether a top-level name in a data folder is one of the engine's own files (logs, hints,
/// slot files, tag files, the marker, the lock). Anything else (a log file of the server's
/// own, say) is carried over to the rotated folder as it is.
fn engine_file(name: &str) -> bool {
    name == "LOCK"
        || name.starts_with("ENCRYPTION")
        || name.starts_with("fixed-")
        || name.starts_with(|c: char| c.is_ascii_digit())
}

/// Watches the source engine's log during its recovery for the one warning that means data
/// would be left behind: records of a database beyond the configured count, which recovery
/// skips (they stay on disk, invisible until `databases` is raised; a rotation would drop
/// them for good).
///
/// It also notes the shard count the folder was created with when the config names another
/// (recovery warns and uses the stored one), so the new folder gets the same count.
#[derive(Clone, Default)]
struct Watch {
    skipped: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// The stored shard count, 0 when recovery did not report one.
    stored_shards: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Watch {
    fn skipped_databases(&self) -> bool {
        self.skipped.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn stored_shards(&self) -> Option<usize> {
        let n = self.stored_shards.load(std::sync::atomic::Ordering::SeqCst);
        (n > 0).then_some(n)
    }
}

/// Picks the `stored` value out of a record's key-values.
struct Stored(Option<usize>);

impl slog::Serializer for Stored {
    fn emit_arguments(&mut self, key: slog::Key, val: &std::fmt::Arguments<'_>) -> slog::Result {
        if key == "stored" {
            self.0 = val.to_string().parse().ok();
        }
        Ok(())
    }
}

impl slog::Drain for Watch {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &slog::Record<'_>, _: &slog::OwnedKVList) -> Result<(), slog::Never> {
        if !record.level().is_at_least(slog::Level::Warning) {
            return Ok(());
        }
        let msg = record.msg().to_string();
        if msg.contains("database beyond the configured count") {
            self.skipped
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
        if msg.contains("shard count stored in the data directory") {
            let mut stored = Stored(None);
            let _ = slog::KV::serialize(&record.kv(), record, &mut stored);
            if let Some(n) = stored.0 {
                self.stored_shards
                    .store(n, std::sync::atomic::Ordering::SeqCst);
            }
        }
        Ok(())
    }
}

/// The engine opens a FixedStore database's slot files only when the config says that
/// database is `tree <db> const <size> fixed`; opened under another setting, its keys would
/// not be seen, and a rotation would drop them. So slot files of a database the config does
/// not make a FixedStore ConstTree stop the rotation (the format names them
/// `fixed-<db>-<shard>.slots`, docs/format-fixed.md).
fn check_fixed_trees(dir: &Path, config: &Config) -> Result<(), RotateError> {
    let entries = std::fs::read_dir(dir).map_err(io(format!("list {}", dir.display())))?;
    let mut missing = std::collections::BTreeSet::new();
    for entry in entries {
        let entry = entry.map_err(io(format!("list {}", dir.display())))?;
        let name = entry.file_name();
        let Some(db) = name
            .to_str()
            .and_then(|n| n.strip_prefix("fixed-"))
            .filter(|n| n.ends_with(".slots"))
            .and_then(|n| n.split('-').next())
            .and_then(|d| d.parse::<usize>().ok())
        else {
            continue;
        };
        let fixed = config.trees.iter().any(|(d, t)| {
            *d == db
                && matches!(
                    t,
                    respite_storage::TreeConfig::Const {
                        backend: respite_storage::BackendKind::Fixed,
                        ..
                    }
                )
        });
        if !fixed {
            missing.insert(db);
        }
    }
    match missing.first() {
        None => Ok(()),
        Some(db) => Err(RotateError::Usage(format!(
            "{} holds FixedStore slot files of database {db}, but the config does not make it \
             `tree {db} const <size> fixed`: give rotate-key the server's config file or tree \
             settings (nothing was changed)",
            dir.display()
        ))),
    }
}

/// Rotates the key of `config.dir`: from `config.encryption_key_file` (plain when `None`) to
/// `new_key_file` (plain when `None`). At least one of them must be given. The server must be
/// stopped (the engine's folder lock refuses a folder in use).
///
/// # Errors
///
/// A missing folder, an unreadable key file, a wrong old key, a page that fails
/// authentication, or a failed file-system step; `DIR` is untouched by every error before the
/// swap.
pub fn rotate_key(
    config: &Config,
    new_key_file: Option<&Path>,
    logger: slog::Logger,
) -> Result<RotateSummary, RotateError> {
    // Absolute, so `.` or a trailing slash still has a name to put suffixes on.
    let dir = if config.dir.exists() {
        std::fs::canonicalize(&config.dir)
    } else {
        std::path::absolute(&config.dir)
    }
    .map_err(io(format!("resolve {}", config.dir.display())))?;
    let rotating = sibling(&dir, ".rotating");
    let old = sibling(&dir, ".old-key");
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if config.encryption_key_file.is_none() && new_key_file.is_none() {
        return Err(RotateError::Usage(
            "rotate-key needs --encryption-key-file OLD (the folder's key; omit for a plain \
             folder) and/or --new-encryption-key-file NEW (omit to decrypt)"
                .into(),
        ));
    }
    // An earlier run stopped between its two renames: DIR.rotating is complete and synced.
    if !dir.exists() && rotating.is_dir() && old.is_dir() {
        finish_swap(&rotating, &dir, &old, &parent)?;
        return Ok(RotateSummary {
            finished_interrupted: true,
            ..RotateSummary::default()
        });
    }
    if !dir.is_dir() {
        return Err(RotateError::Usage(format!(
            "data folder {} does not exist",
            dir.display()
        )));
    }
    if old.exists() {
        return Err(RotateError::Usage(format!(
            "{} exists (left by an interrupted rotation?); check it and remove it first",
            old.display()
        )));
    }
    check_fixed_trees(&dir, config)?;
    let old_key = config
        .load_encryption_key()
        .map_err(eng("can't load encryption-key-file".into()))?;
    let new_key = new_key_file
        .map(MasterKey::from_file)
        .transpose()
        .map_err(eng("can't load new-encryption-key-file".into()))?;
    let summary = RotateSummary {
        from_encrypted: old_key.is_some(),
        to_encrypted: new_key.is_some(),
        ..RotateSummary::default()
    };

    let watch = Watch::default();
    let src_logger = slog::Logger::root(
        slog::Duplicate::new(watch.clone(), logger.clone()).fuse(),
        slog::o!(),
    );
    let mut src_config = config.engine_config(src_logger);
    src_config.encryption_key = old_key;
    let src = Engine::open(&dir, src_config).map_err(eng(format!("open {}", dir.display())))?;
    if watch.skipped_databases() {
        let _ = src.close();
        return Err(RotateError::Usage(format!(
            "{} holds records of a database beyond `databases {}` (see the warning above); \
             they would not be copied: give rotate-key the server's databases setting \
             (nothing was changed)",
            dir.display(),
            config.databases
        )));
    }

    if rotating.exists() {
        std::fs::remove_dir_all(&rotating)
            .map_err(io(format!("remove the leftover {}", rotating.display())))?;
    }
    let copied = copy_into(
        &src,
        config,
        watch.stored_shards(),
        &rotating,
        new_key,
        logger,
        summary,
    );
    let summary = match copied {
        Ok(s) => s,
        Err(e) => {
            // DIR is untouched; the partial copy goes (best effort: the next run removes it).
            let _ = src.close();
            let _ = std::fs::remove_dir_all(&rotating);
            return Err(e);
        }
    };
    src.close()
        .map_err(eng(format!("close {}", dir.display())))?;

    // Files of the folder that are not the engine's go with it, as they are.
    let entries = std::fs::read_dir(&dir).map_err(io(format!("list {}", dir.display())))?;
    for entry in entries {
        let entry = entry.map_err(io(format!("list {}", dir.display())))?;
        let name = entry.file_name();
        let Some(text) = name.to_str() else { continue };
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if is_file && !engine_file(text) && !rotating.join(&name).exists() {
            std::fs::copy(entry.path(), rotating.join(&name)).map_err(io(format!(
                "copy {} into {}",
                entry.path().display(),
                rotating.display()
            )))?;
        }
    }
    fsync_dir(&rotating)?;

    std::fs::rename(&dir, &old).map_err(io(format!(
        "rename {} -> {}",
        dir.display(),
        old.display()
    )))?;
    fsync_dir(&parent)?;
    finish_swap(&rotating, &dir, &old, &parent)?;
    Ok(summary)
}

/// The second half of the swap: `rotating` (complete and synced) becomes `dir`, then the old
/// folder (already moved to `old`) goes; the parent directory is fsynced after each step.
fn finish_swap(rotating: &Path, dir: &Path, old: &Path, parent: &Path) -> Result<(), RotateError> {
    std::fs::rename(rotating, dir).map_err(io(format!(
        "rename {} -> {}",
        rotating.display(),
        dir.display()
    )))?;
    fsync_dir(parent)?;
    std::fs::remove_dir_all(old).map_err(io(format!("remove {}", old.display())))?;
    fsync_dir(parent)
}

/// Opens `rotating` with `new_key`, the same tree settings and the source's shard count
/// (`shards`, when it differs from the config's), copies every live key of
/// every database of `src` into it with its expiry, syncs and closes it.
fn copy_into(
    src: &Engine,
    config: &Config,
    shards: Option<usize>,
    rotating: &Path,
    new_key: Option<MasterKey>,
    logger: slog::Logger,
    mut summary: RotateSummary,
) -> Result<RotateSummary, RotateError> {
    let mut dst_config = config.engine_config(logger);
    dst_config.encryption_key = new_key;
    if let Some(n) = shards {
        dst_config.shards = n;
    }
    // One sync at the end covers everything.
    dst_config.sync_mode = SyncMode::No;
    let dst = Engine::open(rotating, dst_config)
        .map_err(eng(format!("create {}", rotating.display())))?;
    let result = (|| {
        for db in 0..src.databases() {
            let mut cursor = 0;
            loop {
                let (next, keys) = src
                    .scan(db, cursor, None, 1024)
                    .map_err(eng(format!("scan db{db}")))?;
                for key in keys {
                    // A key that expired since the scan saw it is gone: nothing to copy.
                    let Some((value, expire_at)) = src
                        .get_with_expiry(db, &key)
                        .map_err(eng(format!("read a key of db{db}")))?
                    else {
                        continue;
                    };
                    let opts = SetOptions {
                        expiry: expire_at.map_or(Expiry::Persist, Expiry::At),
                        ..SetOptions::default()
                    };
                    dst.set(db, &key, &value, opts)
                        .map_err(eng(format!("write db{db} into {}", rotating.display())))?;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        dst.sync_all()
            .map_err(eng(format!("sync {}", rotating.display())))?;
        Ok(())
    })();
    // A key seen twice by the scan is one key: count what the new folder holds.
    summary.keys_per_db = (0..dst.databases()).map(|db| dst.len(db)).collect();
    let closed = dst
        .close()
        .map_err(eng(format!("close {}", rotating.display())));
    result.and(closed).map(|()| summary)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn new_key_flag_is_taken_out_and_the_rest_kept() {
        let args: Vec<String> = [
            "r.conf",
            "--dir",
            "d",
            "--new-encryption-key-file",
            "new.key",
            "--encryption-key-file",
            "old.key",
        ]
        .map(String::from)
        .to_vec();
        let (rest, new) = split_args(&args).unwrap();
        assert_eq!(new, Some(PathBuf::from("new.key")));
        assert_eq!(
            rest,
            ["r.conf", "--dir", "d", "--encryption-key-file", "old.key"]
        );
        let bad: Vec<String> = ["--new-encryption-key-file"].map(String::from).to_vec();
        assert!(split_args(&bad).is_err());
    }

    #[test]
    fn siblings_and_engine_files() {
        assert_eq!(
            sibling(Path::new("/srv/data"), ".rotating"),
            PathBuf::from("/srv/data.rotating")
        );
        assert!(engine_file("0000000007.log"));
        assert!(engine_file("0000000007.log.tag"));
        assert!(engine_file("fixed-00-0003.slots"));
        assert!(engine_file("ENCRYPTION"));
        assert!(engine_file("LOCK"));
        assert!(!engine_file("server.log"));
    }
}
