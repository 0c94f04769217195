//! Server commands: INFO, CONFIG, COMMAND, TIME, SAVE/BGSAVE/LASTSAVE, SHUTDOWN, MEMORY,
//! OBJECT, FUNCTION, WAITAOF, WAIT.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use respite_protocol::Reply;
use respite_storage::{SyncMode, glob_match};

use super::{
    After, COMMANDS, CommandSpec, Ctx, arg_i64, bulk_str, int, is, lookup, parse_i64, sub_arity,
    text, unknown_sub,
};
use crate::config::{Config, LogLevel};
use crate::reply::{CmdError, CmdResult};
use crate::shared::now_ms;

pub fn info(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let sections: Vec<String> = args[1..]
        .iter()
        .map(|a| text(a).to_ascii_lowercase())
        .collect();
    let body = crate::info::render(ctx.shared, &sections);
    Ok(Reply::Verbatim {
        format: *b"txt",
        text: Bytes::from(body),
    })
}

/// (name, value) of every setting CONFIG GET knows, in a stable order.
fn config_pairs(c: &Config, sync: SyncMode) -> Vec<(&'static str, String)> {
    let dir = std::fs::canonicalize(&c.dir).unwrap_or_else(|_| c.dir.clone());
    let limit = c.client_output_buffer_limit;
    let engine = respite_storage::Config::default();
    vec![
        ("port", c.port.to_string()),
        ("bind", c.bind.join(" ")),
        ("dir", dir.display().to_string()),
        ("appendfsync", sync.to_string()),
        ("appendonly", "yes".into()),
        ("save", String::new()),
        ("databases", c.databases.to_string()),
        ("maxclients", c.maxclients.to_string()),
        ("requirepass", c.requirepass.clone().unwrap_or_default()),
        ("timeout", c.timeout_secs.to_string()),
        ("proto-max-bulk-len", c.proto_max_bulk_len.to_string()),
        (
            "client-output-buffer-limit",
            format!(
                "normal {} {} {} slave 268435456 67108864 60 pubsub 33554432 8388608 60",
                limit.hard_bytes, limit.soft_bytes, limit.soft_seconds
            ),
        ),
        ("loglevel", c.loglevel.name().into()),
        ("logfile", c.logfile.clone()),
        ("cache-size", c.cache_size_bytes.to_string()),
        ("threads", c.threads.to_string()),
        ("maxmemory", "0".into()),
        ("maxmemory-policy", "noeviction".into()),
        ("daemonize", "no".into()),
        (
            "protected-mode",
            if c.protected_mode { "yes" } else { "no" }.into(),
        ),
        ("io-threads", "1".into()),
        (
            "log-file-size",
            c.log_file_bytes
                .unwrap_or(engine.max_file_bytes)
                .to_string(),
        ),
        (
            "inline-value-max",
            c.inline_value_max
                .unwrap_or(engine.inline_value_max)
                .to_string(),
        ),
        // The key file's path, never the key.
        (
            "encryption-key-file",
            c.encryption_key_file
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        ),
    ]
}

pub fn config(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let sub = &args[1];
    if is(sub, "GET") {
        sub_arity(args, args.len() >= 3)?;
        let pairs = config_pairs(&ctx.shared.config.read(), ctx.shared.engine.sync_mode());
        let mut out = Vec::new();
        for (name, value) in pairs {
            let lname = name.as_bytes();
            if args[2..]
                .iter()
                .any(|p| glob_match(&p.to_ascii_lowercase(), lname))
            {
                out.push((bulk_str(name), bulk_str(value)));
            }
        }
        return Ok(Reply::Map(out));
    }
    if is(sub, "SET") {
        sub_arity(args, args.len() >= 4 && args.len().is_multiple_of(2))?;
        let mut new = ctx.shared.config.read().clone();
        let mut sync = None;
        for pair in args[2..].chunks_exact(2) {
            let name = text(&pair[0]).to_ascii_lowercase();
            let value = text(&pair[1]);
            let fail = |why: String| {
                CmdError::Text(format!(
                    "ERR CONFIG SET failed (possibly related to argument '{name}') - {why}"
                ))
            };
            match name.as_str() {
                "appendfsync" => {
                    sync = Some(value.parse::<SyncMode>().map_err(|_| {
                        fail(
                            "argument(s) must be one of the following: everysec, always, no".into(),
                        )
                    })?);
                }
                "maxclients" | "requirepass" | "timeout" | "proto-max-bulk-len"
                | "protected-mode" => {
                    new.set(&name, &value).map_err(fail)?;
                }
                "loglevel" => {
                    let level = LogLevel::parse(&value).ok_or_else(|| {
                        fail("argument(s) must be one of the following: debug, verbose, notice, warning".into())
                    })?;
                    new.loglevel = level;
                }
                "client-output-buffer-limit" => {
                    let words: Vec<String> = value.split_whitespace().map(str::to_owned).collect();
                    new.apply("client-output-buffer-limit", &words)
                        .map_err(fail)?;
                }
                "save" | "appendonly" | "maxmemory" | "maxmemory-policy" => {}
                // Redis marks `dir` PROTECTED_CONFIG: a client must not be able to point the
                // server's files somewhere else. Here the engine's data lives there, so it
                // stays refused even where Redis's enable-protected-configs would allow it.
                "dir" => return Err(fail("can't set protected config".into())),
                "port"
                | "bind"
                | "databases"
                | "threads"
                | "cache-size"
                | "logfile"
                | "daemonize"
                | "log-file-size"
                | "inline-value-max"
                | "encryption-key-file" => {
                    return Err(fail("can't set immutable config".into()));
                }
                _ => {
                    return Err(CmdError::Text(format!(
                        "ERR Unknown option or number of arguments for CONFIG SET - '{name}'"
                    )));
                }
            }
        }
        if let Some(mode) = sync {
            new.appendfsync = mode;
            ctx.shared.engine.set_sync_mode(mode);
        }
        crate::logging::set_level(new.loglevel);
        *ctx.shared.config.write() = new;
        ctx.shared.config_epoch.fetch_add(1, Ordering::SeqCst);
        return Ok(Reply::ok());
    }
    if is(sub, "RESETSTAT") {
        sub_arity(args, args.len() == 2)?;
        for r in &ctx.shared.reactors {
            r.stats.reset();
        }
        ctx.shared.rejected_connections.store(0, Ordering::Relaxed);
        return Ok(Reply::ok());
    }
    if is(sub, "REWRITE") {
        sub_arity(args, args.len() == 2)?;
        return Err(CmdError::Static(
            "ERR The server is running without a config file",
        ));
    }
    if is(sub, "HELP") {
        return Ok(help(&[
            "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "GET <pattern>",
            "    Return parameters matching the glob-like <pattern> and their values.",
            "SET <directive> <value>",
            "    Set the configuration <directive> to <value>.",
            "RESETSTAT",
            "    Reset statistics reported by the INFO command.",
            "HELP",
            "    Print this help.",
        ]));
    }
    Err(unknown_sub(args))
}

fn help(lines: &[&'static str]) -> Reply {
    Reply::Array(
        lines
            .iter()
            .map(|l| Reply::Simple(Bytes::from_static(l.as_bytes())))
            .collect(),
    )
}

/// Redis's ACL categories of a command, in Redis's order (the order of its category bits):
/// mostly implied by the group and flags, with Redis's own exceptions listed by name.
fn acl_categories(spec: &CommandSpec) -> Vec<&'static str> {
    let name = spec.name;
    // Containers carry their categories on the subcommands.
    if matches!(name, "client" | "config" | "memory" | "object" | "function") {
        return vec!["@slow"];
    }
    let keyspace = spec.group == "generic" && !matches!(name, "wait" | "waitaof")
        || matches!(name, "dbsize" | "flushdb" | "flushall");
    let admin = spec.flags & super::ADMIN != 0 || name == "lastsave";
    let dangerous = admin || matches!(name, "keys" | "flushdb" | "flushall" | "info");
    let connection = spec.group == "connection" || matches!(name, "command" | "wait" | "waitaof");
    let fast = spec.flags & super::FAST != 0;
    [
        (keyspace, "@keyspace"),
        (spec.flags & super::READONLY != 0, "@read"),
        (spec.flags & super::WRITE != 0, "@write"),
        (spec.group == "string", "@string"),
        (admin, "@admin"),
        (fast, "@fast"),
        (!fast, "@slow"),
        (dangerous, "@dangerous"),
        (connection, "@connection"),
        (spec.group == "transactions", "@transaction"),
    ]
    .into_iter()
    .filter_map(|(on, c)| on.then_some(c))
    .collect()
}

fn command_info(spec: &CommandSpec) -> Reply {
    let flags = spec
        .flag_names()
        .into_iter()
        .map(|f| Reply::Simple(Bytes::from_static(f.as_bytes())))
        .collect();
    let categories = acl_categories(spec);
    Reply::Array(vec![
        bulk_str(spec.name),
        Reply::Integer(i64::from(spec.arity)),
        Reply::Set(flags),
        Reply::Integer(i64::from(spec.first_key)),
        Reply::Integer(i64::from(spec.last_key)),
        Reply::Integer(i64::from(spec.step)),
        Reply::Set(
            categories
                .into_iter()
                .map(|c| Reply::Simple(Bytes::from_static(c.as_bytes())))
                .collect(),
        ),
        Reply::Set(Vec::new()),
        Reply::Array(Vec::new()),
        Reply::Array(Vec::new()),
    ])
}

fn command_docs(spec: &CommandSpec) -> Reply {
    let s = |t: &'static str| Reply::Bulk(Bytes::from_static(t.as_bytes()));
    Reply::Map(vec![
        (s("summary"), s(spec.summary)),
        (s("since"), s("1.0.0")),
        (s("group"), s(spec.group)),
    ])
}

pub fn command(_ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let Some(sub) = args.get(1) else {
        return Ok(Reply::Array(COMMANDS.iter().map(command_info).collect()));
    };
    if is(sub, "COUNT") {
        sub_arity(args, args.len() == 2)?;
        return Ok(int(COMMANDS.len()));
    }
    if is(sub, "LIST") {
        if args.len() > 2 {
            // FILTERBY PATTERN p is the one filter that makes sense here.
            if args.len() == 5 && is(&args[2], "FILTERBY") && is(&args[3], "PATTERN") {
                return Ok(Reply::Array(
                    COMMANDS
                        .iter()
                        .filter(|c| glob_match(&args[4].to_ascii_lowercase(), c.name.as_bytes()))
                        .map(|c| bulk_str(c.name))
                        .collect(),
                ));
            }
            return Err(CmdError::Syntax);
        }
        return Ok(Reply::Array(
            COMMANDS.iter().map(|c| bulk_str(c.name)).collect(),
        ));
    }
    if is(sub, "INFO") {
        if args.len() == 2 {
            return Ok(Reply::Array(COMMANDS.iter().map(command_info).collect()));
        }
        return Ok(Reply::Array(
            args[2..]
                .iter()
                .map(|n| lookup(n).map_or(Reply::Null, |(_, s)| command_info(s)))
                .collect(),
        ));
    }
    if is(sub, "DOCS") {
        let specs: Vec<&CommandSpec> = if args.len() == 2 {
            COMMANDS.iter().collect()
        } else {
            args[2..]
                .iter()
                .filter_map(|n| lookup(n).map(|(_, s)| s))
                .collect()
        };
        return Ok(Reply::Map(
            specs
                .into_iter()
                .map(|s| (bulk_str(s.name), command_docs(s)))
                .collect(),
        ));
    }
    if is(sub, "GETKEYS") {
        sub_arity(args, args.len() >= 4)?;
        let cmd_args = &args[2..];
        let Some((_, spec)) = lookup(&cmd_args[0]) else {
            return Err(CmdError::Static("ERR Invalid command specified"));
        };
        if !spec.arity_ok(cmd_args.len()) {
            return Err(CmdError::Static(
                "ERR Invalid number of arguments specified for command",
            ));
        }
        if spec.first_key == 0 {
            return Err(CmdError::Static("ERR The command has no key arguments"));
        }
        let keys = super::key_args(spec, cmd_args).cloned().map(Reply::Bulk);
        return Ok(Reply::Array(keys.collect()));
    }
    if is(sub, "HELP") {
        return Ok(help(&[
            "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "(no subcommand)",
            "    Return details about all commands.",
            "COUNT",
            "    Return the total number of commands in this server.",
            "LIST",
            "    Return a list of all commands in this server.",
            "INFO [<command-name> ...]",
            "    Return details about multiple commands.",
            "DOCS [<command-name> ...]",
            "    Return documentation details about multiple commands.",
            "GETKEYS <full-command>",
            "    Return the keys from a full command.",
            "HELP",
            "    Print this help.",
        ]));
    }
    Err(unknown_sub(args))
}

pub fn time(_ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Ok(Reply::Array(vec![
        bulk_str(now.as_secs().to_string()),
        bulk_str(now.subsec_micros().to_string()),
    ]))
}

pub fn save(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    ctx.shared.engine.sync_all()?;
    ctx.shared
        .last_save_unix
        .store(now_ms() / 1000, Ordering::Relaxed);
    Ok(Reply::ok())
}

pub fn bgsave(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if args.len() > 2 || (args.len() == 2 && !is(&args[1], "SCHEDULE")) {
        return Err(CmdError::Syntax);
    }
    // Data is already on disk; "saving" means making every write so far durable. The sync
    // thread does it without blocking this reactor.
    ctx.shared.engine.request_sync(ctx.shared.engine.last_gsn());
    ctx.shared
        .last_save_unix
        .store(now_ms() / 1000, Ordering::Relaxed);
    Ok(Reply::simple("Background saving started"))
}

pub fn bgrewriteaof(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    ctx.shared.engine.request_sync(ctx.shared.engine.last_gsn());
    Ok(Reply::simple(
        "Background append only file rewriting started",
    ))
}

pub fn lastsave(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    Ok(int(ctx.shared.last_save_unix.load(Ordering::Relaxed)))
}

pub fn shutdown(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    for a in &args[1..] {
        if is(a, "ABORT") {
            return Err(CmdError::Static("ERR No shutdown in progress."));
        }
        if !(is(a, "NOSAVE") || is(a, "SAVE") || is(a, "NOW") || is(a, "FORCE")) {
            return Err(CmdError::Syntax);
        }
    }
    // NOSAVE and SAVE both end in a graceful close: every write is in the log already, and
    // close() flushes and syncs it.
    slog::warn!(ctx.shared.log, "User requested shutdown...");
    ctx.after = After::Shutdown;
    Ok(Reply::ok())
}

/// Redis's answer for OBJECT ENCODING of a string value.
fn encoding(v: &[u8]) -> &'static str {
    if v.len() <= 20 && parse_i64(v).is_some() {
        "int"
    } else if v.len() <= 44 {
        "embstr"
    } else {
        "raw"
    }
}

pub fn object(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let sub = &args[1];
    if is(sub, "HELP") {
        return Ok(help(&[
            "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "ENCODING <key>",
            "    Return the kind of internal representation used in order to store the value",
            "    associated with a <key>.",
            "FREQ <key>",
            "    Return the access frequency index of the <key>. The returned integer is",
            "    proportional to the logarithm of the recent access frequency of the key.",
            "IDLETIME <key>",
            "    Return the idle time of the <key>, that is the approximated number of",
            "    seconds elapsed since the last access to the key.",
            "REFCOUNT <key>",
            "    Return the number of references of the value associated with the specified",
            "    <key>.",
            "HELP",
            "    Print this help.",
        ]));
    }
    let known =
        is(sub, "ENCODING") || is(sub, "REFCOUNT") || is(sub, "IDLETIME") || is(sub, "FREQ");
    if !known {
        return Err(unknown_sub(args));
    }
    sub_arity(args, args.len() == 3)?;
    let Some(v) = ctx.shared.engine.get(ctx.db(), &args[2])? else {
        return Ok(Reply::Null);
    };
    if is(sub, "ENCODING") {
        Ok(bulk_str(encoding(&v)))
    } else if is(sub, "REFCOUNT") {
        Ok(Reply::Integer(1))
    } else if is(sub, "IDLETIME") {
        Ok(Reply::Integer(0))
    } else {
        Err(CmdError::Static(
            "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.",
        ))
    }
}

pub fn memory(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let sub = &args[1];
    if is(sub, "USAGE") {
        sub_arity(args, args.len() == 3 || args.len() == 5)?;
        if args.len() == 5 {
            if !is(&args[3], "SAMPLES") {
                return Err(CmdError::Syntax);
            }
            arg_i64(&args[4])?;
        }
        let Some(len) = ctx.shared.engine.value_len(ctx.db(), &args[2])? else {
            return Ok(Reply::Null);
        };
        // Redis's accounting for a string: dict entry, key sds and value object, rounded
        // to what jemalloc would hand out.
        let raw = 16 + 24 + args[2].len() + 3 + len + 3;
        return Ok(int(raw.next_multiple_of(8)));
    }
    if is(sub, "DOCTOR") {
        return Ok(bulk_str(
            "Hi Sam, I can't find any memory issue in your instance. I can only account for what occurs on this base.",
        ));
    }
    if is(sub, "HELP") {
        return Ok(help(&[
            "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "DOCTOR",
            "    Return memory problems reports.",
            "USAGE <key> [SAMPLES <count>]",
            "    Return memory in bytes used by <key> and its value.",
            "HELP",
            "    Print this help.",
        ]));
    }
    Err(unknown_sub(args))
}

pub fn function(_ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let sub = &args[1];
    if is(sub, "LIST") {
        let mut i = 2;
        while i < args.len() {
            if is(&args[i], "WITHCODE") {
                i += 1;
            } else if is(&args[i], "LIBRARYNAME") && i + 1 < args.len() {
                i += 2;
            } else {
                return Err(CmdError::Static("ERR Unknown argument"));
            }
        }
        return Ok(Reply::Array(Vec::new()));
    }
    if is(sub, "FLUSH") {
        sub_arity(args, args.len() <= 3)?;
        if let Some(mode) = args.get(2)
            && !(is(mode, "ASYNC") || is(mode, "SYNC"))
        {
            return Err(CmdError::Static(
                "ERR FUNCTION FLUSH only supports SYNC|ASYNC option",
            ));
        }
        return Ok(Reply::ok());
    }
    Err(unknown_sub(args))
}

/// WAITAOF numlocal numreplicas timeout: blocks this client until its writes are durable.
pub fn waitaof(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let numlocal = arg_i64(&args[1])?;
    if !(0..=1).contains(&numlocal) {
        return Err(CmdError::Static(
            "ERR value is out of range, value must between 0 and 1",
        ));
    }
    let numreplicas = arg_i64(&args[2])?;
    if numreplicas < 0 {
        return Err(CmdError::Static(
            "ERR value is out of range, must be positive",
        ));
    }
    let timeout = parse_i64(&args[3]).ok_or(CmdError::Static(
        "ERR timeout is not an integer or out of range",
    ))?;
    if timeout < 0 {
        return Err(CmdError::Static("ERR timeout is negative"));
    }
    if numreplicas > 0 {
        return Err(CmdError::Static(
            "ERR WAITAOF numreplicas must be 0: this server has no replicas",
        ));
    }
    let gsn = ctx.client.last_write_gsn;
    let durable = ctx.shared.engine.durable_gsn() >= gsn;
    if durable || numlocal == 0 {
        return Ok(Reply::Array(vec![
            Reply::Integer(i64::from(durable)),
            Reply::Integer(0),
        ]));
    }
    ctx.shared.engine.request_sync(gsn);
    ctx.after = After::WaitAof {
        gsn,
        timeout_ms: u64::try_from(timeout).unwrap_or(0),
    };
    // The connection replaces this with the real answer once the wait is over.
    Ok(Reply::Null)
}

pub fn wait(_ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    arg_i64(&args[1])?;
    let timeout = parse_i64(&args[2]).ok_or(CmdError::Static(
        "ERR timeout is not an integer or out of range",
    ))?;
    if timeout < 0 {
        return Err(CmdError::Static("ERR timeout is negative"));
    }
    // No replicas: nothing can acknowledge.
    Ok(Reply::Integer(0))
}
