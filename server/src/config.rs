//! Configuration: a redis.conf-style file plus `--name value` flags, with embedded defaults.
//!
//! The file and the flags share one grammar: a directive is a name followed by its values.
//! The file is applied first, then the flags, so a flag overrides the file (as in Redis).
//! A bad directive stops start-up with an error naming it.

use std::path::PathBuf;

use respite_storage::{BackendKind, SyncMode, TreeConfig};

/// A configuration error: names the directive (and the file line when there is one).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A directive with a bad value or the wrong number of arguments.
    #[error("{origin}: bad directive '{name}': {reason}")]
    Directive {
        /// Where the directive came from ("command line" or "file:line").
        origin: String,
        /// The directive's name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The config file could not be read.
    #[error("can't read config file {path}: {source}")]
    Io {
        /// The file named on the command line.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Redis's log levels, most verbose first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Everything.
    Debug,
    /// Much rarely useful information.
    Verbose,
    /// Moderately verbose: what you want in production (the default).
    Notice,
    /// Only important or critical messages.
    Warning,
}

impl LogLevel {
    /// Redis's name for the level.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Verbose => "verbose",
            LogLevel::Notice => "notice",
            LogLevel::Warning => "warning",
        }
    }

    /// Parses Redis's level names (ASCII case-insensitive).
    #[must_use]
    pub fn parse(s: &str) -> Option<LogLevel> {
        [
            LogLevel::Debug,
            LogLevel::Verbose,
            LogLevel::Notice,
            LogLevel::Warning,
        ]
        .into_iter()
        .find(|l| l.name().eq_ignore_ascii_case(s))
    }
}

/// `client-output-buffer-limit normal <hard> <soft> <soft-seconds>` (0 = no limit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct OutputLimit {
    /// A client whose pending output exceeds this is closed at once.
    pub hard_bytes: u64,
    /// A client whose pending output stays above this for `soft_seconds` is closed.
    pub soft_bytes: u64,
    /// See `soft_bytes`.
    pub soft_seconds: u64,
}

/// Every setting of the server. `Config::default()` is what `respite-server` with no
/// arguments runs with: 127.0.0.1:6379, data in ./data.
#[derive(Clone, Debug)]
pub struct Config {
    /// TCP port; 0 picks an ephemeral port (logged in the ready line).
    pub port: u16,
    /// Addresses to listen on.
    pub bind: Vec<String>,
    /// The data directory (created if missing).
    pub dir: PathBuf,
    /// `appendfsync always|everysec|no`.
    pub appendfsync: SyncMode,
    /// Number of databases (`SELECT 0..databases`).
    pub databases: usize,
    /// Connected clients above this are refused with Redis's error.
    pub maxclients: usize,
    /// `requirepass`: when set, clients must AUTH first.
    pub requirepass: Option<String>,
    /// `protected-mode`: with no password, only loopback clients are accepted.
    pub protected_mode: bool,
    /// Block cache size in bytes (`cache-size 256mb`, or `auto`: see `auto_cache_size`).
    pub cache_size_bytes: u64,
    /// Reactor threads; 0 means one per core.
    pub threads: usize,
    /// Log verbosity.
    pub loglevel: LogLevel,
    /// Log file; empty means standard output.
    pub logfile: String,
    /// Close a client idle for this many seconds (0 = never).
    pub timeout_secs: u64,
    /// The largest bulk string a client may send.
    pub proto_max_bulk_len: u64,
    /// Output buffer limits for normal clients.
    pub client_output_buffer_limit: OutputLimit,
    /// Per-database tree settings (`tree <db> var|const ...`).
    pub trees: Vec<(usize, TreeConfig)>,
    /// Engine shards per tree (`shards N`); `None` keeps the engine's default.
    pub shards: Option<usize>,
    /// Key room of a FixedStore slot (`fixed-max-key-size 64`); `None` keeps the engine's
    /// default.
    pub fixed_max_key_size: Option<usize>,
    /// A log file is sealed (and gets its hint file) once it reaches this size
    /// (`log-file-size 128mb`); `None` keeps the engine's default.
    pub log_file_bytes: Option<u64>,
    /// Values up to this many bytes are kept in memory beside their key and read without the
    /// block cache or the disk (`inline-value-max 64`); `None` keeps the engine's default.
    pub inline_value_max: Option<usize>,
    /// `encryption-key-file PATH`: the master key file (32 raw bytes or 64 hex digits) that
    /// encrypts every data file at rest (docs/encryption.md). Read once at start-up; `None`
    /// keeps the folder plain. Not changeable at run time.
    pub encryption_key_file: Option<PathBuf>,
    /// Warnings about ignored directives, logged once the logger exists.
    pub warnings: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            port: 6379,
            bind: vec!["127.0.0.1".to_owned()],
            dir: PathBuf::from("./data"),
            appendfsync: SyncMode::EverySec,
            databases: 16,
            maxclients: 10000,
            requirepass: None,
            protected_mode: true,
            cache_size_bytes: auto_cache_size(),
            threads: 0,
            loglevel: LogLevel::Notice,
            logfile: String::new(),
            timeout_secs: 0,
            proto_max_bulk_len: 512 * 1024 * 1024,
            client_output_buffer_limit: OutputLimit::default(),
            trees: Vec::new(),
            shards: None,
            fixed_max_key_size: None,
            inline_value_max: None,
            log_file_bytes: None,
            encryption_key_file: None,
            warnings: Vec::new(),
        }
    }
}

/// Settings whose value is several words.
const MULTI_WORD: &[&str] = &["bind", "tree", "client-output-buffer-limit", "save"];

/// Redis directives that tools pass and that mean nothing here: accepted with a warning.
const IGNORED: &[&str] = &[
    "save",
    "appendonly",
    "daemonize",
    "appendfilename",
    "appenddirname",
    "dbfilename",
    "pidfile",
    "supervised",
    "tcp-keepalive",
    "tcp-backlog",
    "io-threads",
    "io-threads-do-reads",
    "maxmemory",
    "maxmemory-policy",
    "stop-writes-on-bgsave-error",
    "rdbcompression",
    "rdbchecksum",
    "always-show-logo",
    "set-proc-title",
    "lazyfree-lazy-eviction",
    "lazyfree-lazy-expire",
    "lazyfree-lazy-server-del",
    "lazyfree-lazy-user-del",
    "enable-debug-command",
];

impl Config {
    /// Parses the command line (without the program name): an optional config file path
    /// first, then `--name value...` flags. A lone `-` reads the file from stdin (as Redis).
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the bad directive or the unreadable file.
    pub fn from_args<I, S>(args: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let args: Vec<String> = args.into_iter().map(Into::into).collect();
        let mut config = Config::default();
        let mut rest = &args[..];
        if let Some(first) = rest.first()
            && !first.starts_with("--")
        {
            let path = PathBuf::from(first);
            let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Io {
                path: path.clone(),
                source,
            })?;
            config.apply_text(&text, &path.display().to_string())?;
            rest = &rest[1..];
        }
        // Flags: `--name v1 v2 --other v` -> directives; values run until the next `--`.
        let mut i = 0;
        while i < rest.len() {
            let Some(name) = rest[i].strip_prefix("--") else {
                return Err(ConfigError::Directive {
                    origin: "command line".into(),
                    name: rest[i].clone(),
                    reason: "expected --name value".into(),
                });
            };
            let mut values = Vec::new();
            i += 1;
            while i < rest.len() && !rest[i].starts_with("--") {
                values.push(rest[i].clone());
                i += 1;
            }
            // As redis-server: a multi-word setting may come as one quoted argument
            // (`--client-output-buffer-limit "normal 0 0 0"`, `--tree "1 const 8 fixed"`).
            if values.len() == 1 && MULTI_WORD.contains(&name) {
                values = values[0].split_whitespace().map(str::to_owned).collect();
            }
            config
                .apply(name, &values)
                .map_err(|reason| ConfigError::Directive {
                    origin: "command line".into(),
                    name: name.to_owned(),
                    reason,
                })?;
        }
        Ok(config)
    }

    /// Applies every directive of a redis.conf-style text.
    ///
    /// # Errors
    ///
    /// The first bad directive, with its line number.
    pub fn apply_text(&mut self, text: &str, origin: &str) -> Result<(), ConfigError> {
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |name: &str, reason: String| ConfigError::Directive {
                origin: format!("{origin}:{}", n + 1),
                name: name.to_owned(),
                reason,
            };
            let words = split_args(line).ok_or_else(|| err(line, "unbalanced quotes".into()))?;
            let Some((name, values)) = words.split_first() else {
                continue;
            };
            self.apply(name, values)
                .map_err(|reason| err(name, reason))?;
        }
        Ok(())
    }

    /// Applies one directive.
    ///
    /// # Errors
    ///
    /// Why the value is not accepted.
    pub fn apply(&mut self, name: &str, values: &[String]) -> Result<(), String> {
        let name = name.to_ascii_lowercase();
        if name == "tree" {
            return self.apply_tree(values);
        }
        if name == "client-output-buffer-limit" {
            return self.apply_output_limit(values);
        }
        if name == "bind" {
            if values.is_empty() {
                return Err("wrong number of arguments".into());
            }
            self.bind = values.to_vec();
            return Ok(());
        }
        if IGNORED.contains(&name.as_str()) {
            self.warnings.push(format!(
                "ignoring Redis directive '{name} {}': it has no meaning for respite",
                values.join(" ")
            ));
            return Ok(());
        }
        let [value] = values else {
            return Err("wrong number of arguments".into());
        };
        self.set(&name, value)
    }

    /// Protected mode as Redis does it: with no password set, a client from anywhere but
    /// the loopback interface is refused (the server may be bound to a public address).
    #[must_use]
    pub fn refuses_peer(&self, peer: std::net::IpAddr) -> bool {
        self.protected_mode && self.requirepass.is_none() && !peer.to_canonical().is_loopback()
    }

    /// Sets a single-valued setting by name (also used by CONFIG SET).
    ///
    /// # Errors
    ///
    /// Why the value is not accepted.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), String> {
        match name {
            "port" => self.port = parse_num(value, 0, 65535)? as u16,
            "dir" => self.dir = PathBuf::from(value),
            "appendfsync" => {
                self.appendfsync = value.parse().map_err(|_| {
                    "argument(s) must be one of the following: everysec, always, no".to_string()
                })?;
            }
            "databases" => self.databases = parse_num(value, 1, 1 << 20)? as usize,
            "maxclients" => self.maxclients = parse_num(value, 1, 1 << 30)? as usize,
            "requirepass" => {
                self.requirepass = (!value.is_empty()).then(|| value.to_owned());
            }
            "protected-mode" => self.protected_mode = parse_yes_no(value)?,
            "cache-size" if value.eq_ignore_ascii_case("auto") => {
                self.cache_size_bytes = auto_cache_size();
            }
            "cache-size" => self.cache_size_bytes = parse_size(value)?,
            "threads" => self.threads = parse_num(value, 0, 1024)? as usize,
            "shards" => self.shards = Some(parse_num(value, 1, 1 << 16)? as usize),
            "fixed-max-key-size" => {
                self.fixed_max_key_size = Some(parse_num(value, 1, 65535)? as usize);
            }
            "inline-value-max" => {
                let v = parse_size(value)?;
                if v > INLINE_VALUE_MAX_LIMIT {
                    return Err("argument must be at most 64kb".into());
                }
                self.inline_value_max = Some(v as usize);
            }
            "loglevel" => {
                self.loglevel = LogLevel::parse(value)
                    .ok_or("argument must be one of debug, verbose, notice, warning")?;
            }
            "logfile" => self.logfile = value.to_owned(),
            "log-file-size" => {
                let v = parse_size(value)?;
                if !(64 * 1024..=1 << 31).contains(&v) {
                    return Err("argument must be between 64kb and 2gb".into());
                }
                self.log_file_bytes = Some(v);
            }
            "encryption-key-file" => {
                self.encryption_key_file = (!value.is_empty()).then(|| PathBuf::from(value));
            }
            "timeout" => self.timeout_secs = parse_num(value, 0, i32::MAX as u64)?,
            "proto-max-bulk-len" => {
                let v = parse_size(value)?;
                if v < 1024 * 1024 {
                    return Err("argument must be at least 1mb".into());
                }
                self.proto_max_bulk_len = v;
            }
            _ => return Err("unknown directive".into()),
        }
        Ok(())
    }

    fn apply_tree(&mut self, values: &[String]) -> Result<(), String> {
        let usage = "usage: tree <db> var [bitcask] | tree <db> const <value-size> [bitcask|fixed]";
        let (db, rest) = values.split_first().ok_or(usage)?;
        let db = parse_num(db, 0, u32::MAX.into())? as usize;
        let tree = match rest {
            [kind] if kind.eq_ignore_ascii_case("var") => TreeConfig::Var,
            [kind, backend] if kind.eq_ignore_ascii_case("var") => {
                if !backend.eq_ignore_ascii_case("bitcask") {
                    return Err("a var tree only runs on the bitcask backend".into());
                }
                TreeConfig::Var
            }
            [kind, size, backend @ ..] if kind.eq_ignore_ascii_case("const") => {
                let value_size = parse_size(size)? as usize;
                if value_size == 0 {
                    return Err("value size must be at least 1".into());
                }
                let backend = match backend {
                    [] => BackendKind::Bitcask,
                    [b] if b.eq_ignore_ascii_case("bitcask") => BackendKind::Bitcask,
                    [b] if b.eq_ignore_ascii_case("fixed") => BackendKind::Fixed,
                    _ => return Err(usage.into()),
                };
                TreeConfig::Const {
                    value_size,
                    backend,
                }
            }
            _ => return Err(usage.into()),
        };
        self.trees.retain(|(d, _)| *d != db);
        self.trees.push((db, tree));
        Ok(())
    }

    fn apply_output_limit(&mut self, values: &[String]) -> Result<(), String> {
        if values.is_empty() || !values.len().is_multiple_of(4) {
            return Err("usage: client-output-buffer-limit <class> <hard> <soft> <seconds>".into());
        }
        for chunk in values.chunks(4) {
            let limit = OutputLimit {
                hard_bytes: parse_size(&chunk[1])?,
                soft_bytes: parse_size(&chunk[2])?,
                soft_seconds: parse_num(&chunk[3], 0, i64::MAX as u64)?,
            };
            match chunk[0].to_ascii_lowercase().as_str() {
                "normal" => self.client_output_buffer_limit = limit,
                // No replicas or pub/sub yet: accepted so redis.conf files load.
                "replica" | "slave" | "pubsub" => {}
                other => return Err(format!("invalid client class '{other}'")),
            }
        }
        Ok(())
    }

    /// The storage engine's configuration derived from these settings.
    #[must_use]
    pub fn engine_config(&self, logger: slog::Logger) -> respite_storage::Config {
        let mut c = respite_storage::Config {
            databases: self.databases,
            sync_mode: self.appendfsync,
            cache_capacity_bytes: self.cache_size_bytes,
            trees: self.trees.clone(),
            logger,
            ..respite_storage::Config::default()
        };
        if let Some(shards) = self.shards {
            c.shards = shards;
        }
        if let Some(n) = self.fixed_max_key_size {
            c.fixed_max_key_bytes = n;
        }
        if let Some(n) = self.log_file_bytes {
            c.max_file_bytes = n;
        }
        if let Some(n) = self.inline_value_max {
            c.inline_value_max = n;
        }
        c
    }

    /// Reads the master key named by `encryption-key-file` (`None` without one).
    ///
    /// # Errors
    ///
    /// The storage crate's error naming the key file when it cannot be read or does not hold
    /// 32 raw bytes or 64 hex digits.
    pub fn load_encryption_key(
        &self,
    ) -> Result<Option<respite_storage::MasterKey>, respite_storage::Error> {
        self.encryption_key_file
            .as_deref()
            .map(respite_storage::MasterKey::from_file)
            .transpose()
    }

    /// The protocol limits these settings imply.
    #[must_use]
    pub fn limits(&self) -> respite_protocol::Limits {
        respite_protocol::Limits {
            max_bulk_len: usize::try_from(self.proto_max_bulk_len).unwrap_or(usize::MAX),
            ..respite_protocol::Limits::default()
        }
    }
}

fn parse_num(s: &str, min: u64, max: u64) -> Result<u64, String> {
    // Redis's wording, so CONFIG SET errors read the same.
    let v: i128 = s
        .parse()
        .map_err(|_| "argument couldn't be parsed into an integer".to_string())?;
    if v < i128::from(min) || v > i128::from(max) {
        return Err(format!(
            "argument must be between {min} and {max} inclusive"
        ));
    }
    u64::try_from(v).map_err(|_| "argument couldn't be parsed into an integer".to_string())
}

/// The largest `inline-value-max`: past it, values are better served by the block cache,
/// which holds only what is read.
const INLINE_VALUE_MAX_LIMIT: u64 = 64 * 1024;

/// The block cache's default size (`cache-size auto`): a quarter of the memory this process
/// may use, the machine's or its control group's limit if lower, and at least 64 MiB (256 MiB
/// if the machine's memory cannot be read). Only what is read fills the cache, so an idle or
/// write-only server stays small; a server that reads a working set of a few GiB on a
/// machine that has them serves it from memory, as Redis would, rather than from the OS page
/// cache, which is not ours to keep (it can be reclaimed from under a running server at any
/// time).
#[must_use]
pub fn auto_cache_size() -> u64 {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let limit = memory_limit(
        read("/proc/meminfo").as_deref(),
        &[
            read("/sys/fs/cgroup/memory.max"),
            read("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
        ],
    );
    limit.map_or(256 << 20, |bytes| (bytes / 4).max(64 << 20))
}

/// The memory a process may use: `MemTotal` of `meminfo`, lowered by any control group
/// limit that is a number (`max` and v1's huge "unlimited" are above `MemTotal`).
fn memory_limit(meminfo: Option<&str>, cgroup_limits: &[Option<String>]) -> Option<u64> {
    let total = meminfo?.lines().find_map(|l| {
        let kb = l.strip_prefix("MemTotal:")?.trim().strip_suffix("kB")?;
        kb.trim().parse::<u64>().ok()?.checked_mul(1024)
    })?;
    Some(
        cgroup_limits
            .iter()
            .filter_map(|l| l.as_deref()?.trim().parse::<u64>().ok())
            .fold(total, u64::min),
    )
}

/// Redis's memtoll: `1k` = 1000, `1kb` = 1024, `1m`, `1mb`, `1g`, `1gb` (case-insensitive).
///
/// # Errors
///
/// A message when the text is not a size.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let lower = s.to_ascii_lowercase();
    let (digits, mul) = [
        ("gb", 1u64 << 30),
        ("mb", 1 << 20),
        ("kb", 1 << 10),
        ("g", 1_000_000_000),
        ("m", 1_000_000),
        ("k", 1_000),
        ("b", 1),
    ]
    .iter()
    .find_map(|(suffix, mul)| lower.strip_suffix(suffix).map(|d| (d, *mul)))
    .unwrap_or((lower.as_str(), 1));
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mul))
        .ok_or_else(|| format!("'{s}' is not a size (use a number with k, kb, m, mb, g or gb)"))
}

/// Splits a config line the way Redis's sdssplitargs does: spaces separate words, and
/// "double quotes" (with \n \r \t \b \a \\ \" \xHH escapes) or 'single quotes' group them.
/// `None` on unbalanced quotes or a closing quote not followed by a space.
#[must_use]
pub fn split_args(line: &str) -> Option<Vec<String>> {
    let b = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() {
            return Some(out);
        }
        let mut word = Vec::new();
        let (mut in_dq, mut in_sq) = (false, false);
        loop {
            if in_dq {
                let c = *b.get(i)?;
                if c == b'\\' && i + 3 < b.len() && b[i + 1] == b'x' {
                    let hex = std::str::from_utf8(&b[i + 2..i + 4]).ok();
                    if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                        word.push(v);
                        i += 4;
                        continue;
                    }
                }
                if c == b'\\' && i + 1 < b.len() {
                    word.push(match b[i + 1] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        other => other,
                    });
                    i += 2;
                } else if c == b'"' {
                    if i + 1 < b.len() && !b[i + 1].is_ascii_whitespace() {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    word.push(c);
                    i += 1;
                }
            } else if in_sq {
                let c = *b.get(i)?;
                if c == b'\\' && i + 1 < b.len() && b[i + 1] == b'\'' {
                    word.push(b'\'');
                    i += 2;
                } else if c == b'\'' {
                    if i + 1 < b.len() && !b[i + 1].is_ascii_whitespace() {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    word.push(c);
                    i += 1;
                }
            } else {
                match b.get(i) {
                    None => break,
                    Some(c) if c.is_ascii_whitespace() => break,
                    Some(b'"') if word.is_empty() => in_dq = true,
                    Some(b'\'') if word.is_empty() => in_sq = true,
                    Some(&c) => word.push(c),
                }
                i += 1;
            }
        }
        out.push(String::from_utf8_lossy(&word).into_owned());
    }
}

/// Redis's booleans: `yes` or `no`, any case.
fn parse_yes_no(value: &str) -> Result<bool, String> {
    if value.eq_ignore_ascii_case("yes") {
        Ok(true)
    } else if value.eq_ignore_ascii_case("no") {
        Ok(false)
    } else {
        Err("argument must be 'yes' or 'no'".into())
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn multi_word_flags_may_come_quoted_as_one_argument() {
        let split = Config::from_args([
            "--tree",
            "1",
            "const",
            "8",
            "fixed",
            "--client-output-buffer-limit",
            "normal",
            "64mb",
            "16mb",
            "10",
        ])
        .unwrap();
        let quoted = Config::from_args([
            "--tree",
            "1 const 8 fixed",
            "--client-output-buffer-limit",
            "normal 64mb 16mb 10",
            "--bind",
            "127.0.0.1 ::1",
            "--requirepass",
            "a b",
        ])
        .unwrap();
        assert_eq!(quoted.trees, split.trees);
        assert_eq!(quoted.trees.len(), 1);
        assert_eq!(
            quoted.client_output_buffer_limit,
            split.client_output_buffer_limit
        );
        assert_eq!(quoted.bind, vec!["127.0.0.1".to_owned(), "::1".to_owned()]);
        assert_eq!(
            quoted.requirepass.as_deref(),
            Some("a b"),
            "one-word settings keep spaces"
        );
    }

    #[test]
    fn the_shipped_example_config_parses() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/respite.conf");
        let c = Config::from_args([path]).unwrap();
        assert_eq!(c.bind, vec!["127.0.0.1".to_owned()]);
        assert!(c.protected_mode);
        // It shows that Redis's save/appendonly are accepted (with a warning); nothing else
        // in it may warn.
        assert!(
            c.warnings
                .iter()
                .all(|w| w.starts_with("ignoring Redis directive 'save")
                    || w.starts_with("ignoring Redis directive 'appendonly")),
            "{:?}",
            c.warnings
        );
    }

    #[test]
    fn protected_mode_refuses_only_remote_peers_without_a_password() {
        let local4: std::net::IpAddr = "127.0.0.1".parse().unwrap();
        let local6: std::net::IpAddr = "::1".parse().unwrap();
        let mapped: std::net::IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        let remote: std::net::IpAddr = "192.0.2.7".parse().unwrap();
        let mut c = Config::default();
        assert!(
            c.protected_mode,
            "protected mode is on by default, as in Redis"
        );
        assert!(c.refuses_peer(remote));
        for local in [local4, local6, mapped] {
            assert!(!c.refuses_peer(local), "{local}");
        }
        c.set("requirepass", "secret").unwrap();
        assert!(!c.refuses_peer(remote), "a password lifts protected mode");
        c.set("requirepass", "").unwrap();
        c.set("protected-mode", "no").unwrap();
        assert!(!c.refuses_peer(remote));
        c.set("protected-mode", "YES").unwrap();
        assert!(c.refuses_peer(remote));
        assert!(c.set("protected-mode", "maybe").is_err());
    }
    use super::*;

    #[test]
    fn defaults_serve_loopback_6379_in_data() {
        let c = Config::from_args(Vec::<String>::new()).unwrap();
        assert_eq!(c.port, 6379);
        assert_eq!(c.bind, vec!["127.0.0.1"]);
        assert_eq!(c.dir, PathBuf::from("./data"));
        assert_eq!(c.appendfsync, SyncMode::EverySec);
    }

    #[test]
    fn sizes_use_redis_units() {
        assert_eq!(parse_size("1k").unwrap(), 1000);
        assert_eq!(parse_size("1kb").unwrap(), 1024);
        assert_eq!(parse_size("256MB").unwrap(), 256 << 20);
        assert_eq!(parse_size("2g").unwrap(), 2_000_000_000);
        assert_eq!(parse_size("1gb").unwrap(), 1 << 30);
        assert_eq!(parse_size("77").unwrap(), 77);
        assert!(parse_size("x").is_err());
        assert!(parse_size("-1").is_err());
    }

    #[test]
    fn memory_limit_is_memtotal_lowered_by_a_numeric_cgroup_limit() {
        let meminfo = "MemTotal:       24684060 kB\nMemFree:        22391000 kB\n";
        let total = 24_684_060 * 1024;
        assert_eq!(memory_limit(Some(meminfo), &[]), Some(total));
        // cgroup v2 "max" and v1's "unlimited" (a huge number) leave MemTotal.
        let unlimited = [
            Some("max\n".to_owned()),
            Some("9223372036854771712\n".to_owned()),
            None,
        ];
        assert_eq!(memory_limit(Some(meminfo), &unlimited), Some(total));
        let limited = [Some("max\n".to_owned()), Some("4294967296\n".to_owned())];
        assert_eq!(memory_limit(Some(meminfo), &limited), Some(4 << 30));
        assert_eq!(memory_limit(None, &limited), None);
        assert_eq!(memory_limit(Some("MemFree: 1 kB\n"), &[]), None);
    }

    #[test]
    fn cache_size_auto_is_a_quarter_of_memory_and_the_default() {
        let auto = auto_cache_size();
        assert_eq!(Config::default().cache_size_bytes, auto);
        let c = Config::from_args(["--cache-size", "16mb"]).unwrap();
        assert_eq!(c.cache_size_bytes, 16 << 20);
        let c = Config::from_args(["--cache-size", "16mb", "--cache-size", "AUTO"]).unwrap();
        assert_eq!(c.cache_size_bytes, auto);
        assert!(auto >= 64 << 20);
        let meminfo = std::fs::read_to_string("/proc/meminfo").ok();
        if let Some(total) = memory_limit(meminfo.as_deref(), &[]) {
            assert!(auto <= (total / 4).max(64 << 20), "{auto} of {total}");
        }
    }

    #[test]
    fn flags_override_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.conf");
        std::fs::write(
            &path,
            "# comment\nport 7000\nappendfsync always\nrequirepass \"a b\"\nsave \"\"\n\
             tree 1 const 8 fixed\ntree 2 var bitcask\nclient-output-buffer-limit normal 1mb 512kb 10\n",
        )
        .unwrap();
        let c = Config::from_args([
            path.to_str().unwrap(),
            "--port",
            "7001",
            "--save",
            "",
            "--appendonly",
            "yes",
        ])
        .unwrap();
        assert_eq!(c.port, 7001);
        assert_eq!(c.appendfsync, SyncMode::Always);
        assert_eq!(c.requirepass.as_deref(), Some("a b"));
        assert_eq!(c.warnings.len(), 3);
        assert_eq!(
            c.trees,
            vec![
                (
                    1,
                    TreeConfig::Const {
                        value_size: 8,
                        backend: BackendKind::Fixed
                    }
                ),
                (2, TreeConfig::Var)
            ]
        );
        assert_eq!(c.client_output_buffer_limit.hard_bytes, 1 << 20);
        assert_eq!(c.client_output_buffer_limit.soft_seconds, 10);
    }

    #[test]
    fn the_example_file_is_valid_and_matches_the_defaults() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/respite.conf");
        let c = Config::from_args([path]).unwrap();
        let d = Config::default();
        assert_eq!(c.port, d.port);
        assert_eq!(c.bind, d.bind);
        assert_eq!(c.dir, d.dir);
        assert_eq!(c.appendfsync, d.appendfsync);
        assert_eq!(c.cache_size_bytes, d.cache_size_bytes);
        assert_eq!(c.proto_max_bulk_len, d.proto_max_bulk_len);
        assert_eq!(c.client_output_buffer_limit, d.client_output_buffer_limit);
        assert_eq!(c.warnings.len(), 2);
    }

    #[test]
    fn bad_directive_is_named() {
        let e = Config::from_args(["--port", "notaport"]).unwrap_err();
        assert!(e.to_string().contains("'port'"), "{e}");
        let e = Config::from_args(["--frobnicate", "1"]).unwrap_err();
        assert!(e.to_string().contains("'frobnicate'"), "{e}");
        let e = Config::from_args(["--appendfsync", "sometimes"]).unwrap_err();
        assert!(e.to_string().contains("appendfsync"), "{e}");
    }

    #[test]
    fn encryption_key_file_and_log_file_size() {
        let c = Config::from_args(["--encryption-key-file", "/k/respite.key"]).unwrap();
        assert_eq!(
            c.encryption_key_file.as_deref(),
            Some(std::path::Path::new("/k/respite.key"))
        );
        let c = Config::from_args(["--encryption-key-file", ""]).unwrap();
        assert!(c.encryption_key_file.is_none(), "empty means no encryption");
        assert!(Config::default().encryption_key_file.is_none());
        assert!(Config::default().load_encryption_key().unwrap().is_none());
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k");
        std::fs::write(&key, [7u8; 32]).unwrap();
        let c = Config::from_args(["--encryption-key-file", key.to_str().unwrap()]).unwrap();
        let loaded = c.load_encryption_key().unwrap().unwrap();
        assert_eq!(format!("{loaded:?}"), "MasterKey(<redacted>)");
        std::fs::write(&key, "short").unwrap();
        let e = c.load_encryption_key().unwrap_err().to_string();
        assert!(e.contains(key.to_str().unwrap()), "{e}");

        let c = Config::from_args(["--log-file-size", "1mb"]).unwrap();
        assert_eq!(c.log_file_bytes, Some(1 << 20));
        let engine = c.engine_config(slog::Logger::root(slog::Discard, slog::o!()));
        assert_eq!(engine.max_file_bytes, 1 << 20);
        assert!(Config::from_args(["--log-file-size", "1k"]).is_err());
        assert!(Config::from_args(["--log-file-size", "3gb"]).is_err());

        let default = respite_storage::Config::default().inline_value_max;
        let logger = || slog::Logger::root(slog::Discard, slog::o!());
        let engine = Config::default().engine_config(logger());
        assert_eq!(engine.inline_value_max, default);
        let c = Config::from_args(["--inline-value-max", "128"]).unwrap();
        assert_eq!(c.engine_config(logger()).inline_value_max, 128);
        let c = Config::from_args(["--inline-value-max", "0"]).unwrap();
        assert_eq!(c.engine_config(logger()).inline_value_max, 0);
        let c = Config::from_args(["--inline-value-max", "64kb"]).unwrap();
        assert_eq!(c.engine_config(logger()).inline_value_max, 64 * 1024);
        let e = Config::from_args(["--inline-value-max", "65537"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("inline-value-max"), "{e}");
        assert!(Config::from_args(["--inline-value-max", "big"]).is_err());
    }

    #[test]
    fn split_args_quotes() {
        assert_eq!(
            split_args(r#"set "a b" 'c d' e\x"#).unwrap(),
            vec!["set", "a b", "c d", "e\\x"]
        );
        assert_eq!(split_args(r#"x "\x41\n""#).unwrap(), vec!["x", "A\n"]);
        assert!(split_args(r#"x "unclosed"#).is_none());
        assert_eq!(split_args(r#"save """#).unwrap(), vec!["save", ""]);
    }
}
