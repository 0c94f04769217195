//! Connection commands: PING, ECHO, QUIT, HELLO, AUTH, SELECT, RESET, CLIENT.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use respite_protocol::{Reply, Version};

use super::{After, Ctx, arg_i64, is, sub_arity, text, unknown_sub};
use crate::reply::{CmdError, CmdResult};
use crate::shared::ClientMeta;

/// The Redis version we answer as.
pub const REDIS_VERSION: &str = "7.2.0";

pub fn ping(_ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    match args {
        [_] => Ok(Reply::simple("PONG")),
        [_, msg] => Ok(Reply::Bulk(msg.clone())),
        _ => Err(CmdError::Arity("ping".into())),
    }
}

pub fn echo(_ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    Ok(Reply::Bulk(args[1].clone()))
}

pub fn quit(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    ctx.after = After::Close;
    Ok(Reply::ok())
}

fn wrongpass() -> CmdError {
    CmdError::Static("WRONGPASS invalid username-password pair or user is disabled.")
}

/// Checks a username/password pair against `requirepass` (user "default" only).
fn authenticate(ctx: &mut Ctx<'_>, user: Option<&[u8]>, pass: &[u8]) -> Result<(), CmdError> {
    let required = ctx.shared.config.read().requirepass.clone();
    let user_ok = user.is_none_or(|u| u == b"default");
    let pass_ok = required.as_deref().is_none_or(|p| p.as_bytes() == pass);
    if user_ok && pass_ok {
        ctx.client.authed = true;
        Ok(())
    } else {
        Err(wrongpass())
    }
}

pub fn auth(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    match args {
        [_, pass] => {
            if ctx.shared.config.read().requirepass.is_none() {
                return Err(CmdError::Static(
                    "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
                ));
            }
            authenticate(ctx, None, pass)?;
        }
        [_, user, pass] => authenticate(ctx, Some(user), pass)?,
        _ => return Err(CmdError::Syntax),
    }
    Ok(Reply::ok())
}

fn valid_name(name: &[u8]) -> bool {
    name.iter().all(|&c| (b'!'..=b'~').contains(&c))
}

pub fn hello(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let mut version = ctx.client.version;
    let mut i = 1;
    if let Some(v) = args.get(1) {
        let v = super::parse_i64(v).ok_or(CmdError::Static(
            "ERR Protocol version is not an integer or out of range",
        ))?;
        version = match v {
            2 => Version::Resp2,
            3 => Version::Resp3,
            _ => return Err(CmdError::Static("NOPROTO unsupported protocol version")),
        };
        i = 2;
    }
    let mut creds = None;
    let mut name = None;
    while i < args.len() {
        let more = args.len() - 1 - i;
        if is(&args[i], "AUTH") && more >= 2 {
            creds = Some((args[i + 1].clone(), args[i + 2].clone()));
            i += 3;
        } else if is(&args[i], "SETNAME") && more >= 1 {
            if !valid_name(&args[i + 1]) {
                return Err(bad_name());
            }
            name = Some(args[i + 1].clone());
            i += 2;
        } else {
            return Err(CmdError::Text(format!(
                "ERR Syntax error in HELLO option '{}'",
                text(&args[i])
            )));
        }
    }
    if let Some((user, pass)) = creds {
        authenticate(ctx, Some(&user), &pass)?;
    }
    if !ctx.client.authed {
        return Err(CmdError::Static(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
        ));
    }
    if let Some(name) = name {
        *ctx.client.meta.name.lock() = name;
    }
    ctx.client.version = version;
    let proto = if version == Version::Resp3 { 3 } else { 2 };
    ctx.client.meta.resp.store(proto, Ordering::Relaxed);
    let s = |t: &'static str| Reply::Bulk(Bytes::from_static(t.as_bytes()));
    Ok(Reply::Map(vec![
        (s("server"), s("redis")),
        (s("version"), s(REDIS_VERSION)),
        (s("proto"), Reply::Integer(i64::from(proto))),
        (s("id"), super::int(ctx.client.meta.id)),
        (s("mode"), s("standalone")),
        (s("role"), s("master")),
        (s("modules"), Reply::Array(Vec::new())),
    ]))
}

pub fn select(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = super::db_index(ctx, &args[1])?;
    ctx.client.db = db;
    ctx.client.meta.db.store(db, Ordering::Relaxed);
    Ok(Reply::ok())
}

pub fn reset(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    super::multi::discard_state(ctx);
    ctx.client.db = 0;
    ctx.client.meta.db.store(0, Ordering::Relaxed);
    ctx.client.version = Version::Resp2;
    ctx.client.meta.resp.store(2, Ordering::Relaxed);
    *ctx.client.meta.name.lock() = Bytes::new();
    ctx.client.authed = ctx.shared.config.read().requirepass.is_none();
    Ok(Reply::simple("RESET"))
}

fn bad_name() -> CmdError {
    CmdError::Static("ERR Client names cannot contain spaces, newlines or special characters.")
}

/// One CLIENT LIST line (without the trailing newline), in Redis's field order.
pub fn client_line(ctx: &Ctx<'_>, c: &ClientMeta) -> String {
    let now = ctx.shared.uptime_ms();
    let age = c.created.elapsed().as_secs();
    let idle = now.saturating_sub(c.last_active_ms.load(Ordering::Relaxed)) / 1000;
    let cmd = super::last_command_name(c.last_cmd.load(Ordering::Relaxed));
    let (lib_name, lib_ver) = {
        let l = c.lib.lock();
        (text(&l.0), text(&l.1))
    };
    let qbuf = c.qbuf.load(Ordering::Relaxed);
    let omem = c.omem.load(Ordering::Relaxed);
    let multi = c.multi.load(Ordering::Relaxed);
    // Redis's letters in its order: x in MULTI, d when a watched key changed, N for none.
    let mut flags = String::new();
    if multi >= 0 {
        flags.push('x');
    }
    if c.dirty_cas.load(Ordering::Relaxed) {
        flags.push('d');
    }
    if flags.is_empty() {
        flags.push('N');
    }
    let mut s = String::with_capacity(256);
    let _ = write!(
        s,
        "id={} addr={} laddr={} fd={} name={} age={age} idle={idle} flags={flags} db={} sub=0 \
         psub=0 ssub=0 multi={multi} qbuf={qbuf} qbuf-free=0 argv-mem=0 multi-mem=0 rbs=16384 rbp=0 obl=0 \
         oll=0 omem={omem} tot-mem={} events=r cmd={cmd} user=default redir=-1 resp={} \
         lib-name={lib_name} lib-ver={lib_ver}",
        c.id,
        c.addr,
        c.laddr,
        c.fd,
        text(&c.name.lock()),
        c.db.load(Ordering::Relaxed),
        qbuf + omem + 16384,
        c.resp.load(Ordering::Relaxed),
    );
    s
}

pub fn client(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let sub = &args[1];
    if is(sub, "ID") {
        sub_arity(args, args.len() == 2)?;
        return Ok(super::int(ctx.client.meta.id));
    }
    if is(sub, "SETNAME") {
        sub_arity(args, args.len() == 3)?;
        if !valid_name(&args[2]) {
            return Err(bad_name());
        }
        *ctx.client.meta.name.lock() = args[2].clone();
        return Ok(Reply::ok());
    }
    if is(sub, "GETNAME") {
        sub_arity(args, args.len() == 2)?;
        let name = ctx.client.meta.name.lock().clone();
        return Ok(if name.is_empty() {
            Reply::Null
        } else {
            Reply::Bulk(name)
        });
    }
    if is(sub, "INFO") {
        sub_arity(args, args.len() == 2)?;
        let meta = ctx.client.meta.clone();
        let mut line = client_line(ctx, &meta);
        line.push('\n');
        return Ok(Reply::Verbatim {
            format: *b"txt",
            text: Bytes::from(line),
        });
    }
    if is(sub, "LIST") {
        return client_list(ctx, args);
    }
    if is(sub, "KILL") {
        sub_arity(args, args.len() >= 3)?;
        return client_kill(ctx, args);
    }
    if is(sub, "SETINFO") {
        sub_arity(args, args.len() == 4)?;
        let value = args[3].clone();
        if !value.iter().all(|&c| (b'!'..=b'~').contains(&c)) {
            return Err(CmdError::Text(format!(
                "ERR {} cannot contain spaces, newlines or special characters.",
                text(&args[2]).to_ascii_lowercase()
            )));
        }
        let mut lib = ctx.client.meta.lib.lock();
        if is(&args[2], "LIB-NAME") {
            lib.0 = value;
        } else if is(&args[2], "LIB-VER") {
            lib.1 = value;
        } else {
            return Err(CmdError::Text(format!(
                "ERR Unrecognized option '{}'",
                text(&args[2])
            )));
        }
        return Ok(Reply::ok());
    }
    if is(sub, "NO-EVICT") || is(sub, "NO-TOUCH") {
        sub_arity(args, args.len() == 3)?;
        if !(is(&args[2], "ON") || is(&args[2], "OFF")) {
            return Err(CmdError::Syntax);
        }
        return Ok(Reply::ok());
    }
    if is(sub, "HELP") {
        let lines = [
            "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "GETNAME",
            "    Return the name of the current connection.",
            "ID",
            "    Return the ID of the current connection.",
            "INFO",
            "    Return information about the current client connection.",
            "KILL <ip:port>",
            "    Kill connection made from <ip:port>.",
            "KILL <option> <value> [<option> <value> [...]]",
            "    Kill connections. Options are: ID, ADDR, LADDR, SKIPME.",
            "LIST [TYPE normal] [ID <id> [<id> ...]]",
            "    Return information about client connections.",
            "SETINFO <option> <value>",
            "    Set client meta attr. Options are: LIB-NAME, LIB-VER.",
            "SETNAME <name>",
            "    Assign the name <name> to the current connection.",
            "HELP",
            "    Print this help.",
        ];
        return Ok(Reply::Array(
            lines
                .iter()
                .map(|l| Reply::Simple(Bytes::from_static(l.as_bytes())))
                .collect(),
        ));
    }
    Err(unknown_sub(args))
}

fn client_list(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let mut ids: Option<Vec<u64>> = None;
    let mut i = 2;
    while i < args.len() {
        if is(&args[i], "TYPE") && i + 1 < args.len() {
            let t = &args[i + 1];
            if !(is(t, "normal") || is(t, "master") || is(t, "replica") || is(t, "pubsub")) {
                return Err(CmdError::Text(format!(
                    "ERR Unknown client type '{}'",
                    text(t)
                )));
            }
            if !is(t, "normal") {
                ids = Some(Vec::new());
            }
            i += 2;
        } else if is(&args[i], "ID") && i + 1 < args.len() {
            let mut v = ids.take().unwrap_or_default();
            for a in &args[i + 1..] {
                let n = arg_i64(a)
                    .ok()
                    .and_then(|n| u64::try_from(n).ok())
                    .filter(|&n| n > 0)
                    .ok_or(CmdError::Static("ERR Invalid client ID"))?;
                v.push(n);
            }
            ids = Some(v);
            i = args.len();
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let mut out = String::new();
    for c in ctx.shared.all_clients() {
        if ids.as_ref().is_some_and(|ids| !ids.contains(&c.id)) {
            continue;
        }
        out.push_str(&client_line(ctx, &c));
        out.push('\n');
    }
    Ok(Reply::Verbatim {
        format: *b"txt",
        text: Bytes::from(out),
    })
}

fn client_kill(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if args.len() == 3 {
        // Old form: CLIENT KILL addr:port.
        let addr = text(&args[2]);
        let victim = ctx
            .shared
            .all_clients()
            .into_iter()
            .find(|c| c.addr == addr);
        return match victim {
            Some(c) => {
                kill(ctx, &c);
                Ok(Reply::ok())
            }
            None => Err(CmdError::Static("ERR No such client")),
        };
    }
    let (mut id, mut addr, mut laddr, mut skipme) = (None, None, None, true);
    let mut i = 2;
    while i + 1 < args.len() {
        let v = &args[i + 1];
        if is(&args[i], "ID") {
            let n = arg_i64(v)
                .ok()
                .and_then(|n| u64::try_from(n).ok())
                .filter(|&n| n > 0)
                .ok_or(CmdError::Static("ERR client-id should be greater than 0"))?;
            id = Some(n);
        } else if is(&args[i], "ADDR") {
            addr = Some(text(v));
        } else if is(&args[i], "LADDR") {
            laddr = Some(text(v));
        } else if is(&args[i], "SKIPME") {
            skipme = if is(v, "yes") {
                true
            } else if is(v, "no") {
                false
            } else {
                return Err(CmdError::Syntax);
            };
        } else if is(&args[i], "TYPE") || is(&args[i], "USER") || is(&args[i], "MAXAGE") {
            // Everyone is a normal client of user default.
        } else {
            return Err(CmdError::Syntax);
        }
        i += 2;
    }
    if i != args.len() {
        return Err(CmdError::Syntax);
    }
    let me = ctx.client.meta.id;
    let mut n = 0;
    for c in ctx.shared.all_clients() {
        if id.is_some_and(|id| id != c.id)
            || addr.as_ref().is_some_and(|a| *a != c.addr)
            || laddr.as_ref().is_some_and(|a| *a != c.laddr)
            || (skipme && c.id == me)
        {
            continue;
        }
        kill(ctx, &c);
        n += 1;
    }
    Ok(Reply::Integer(n))
}

fn kill(ctx: &mut Ctx<'_>, c: &ClientMeta) {
    if c.id == ctx.client.meta.id {
        // Killing yourself: the reply is still written, then the connection closes.
        ctx.after = After::Close;
    } else {
        ctx.shared.kill(c);
    }
}
