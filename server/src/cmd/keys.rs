//! Generic key commands: DEL, EXISTS, TTLs, KEYS/SCAN, RENAME, COPY, MOVE, FLUSH*.

use std::collections::HashSet;

use bytes::Bytes;
use respite_protocol::Reply;
use respite_storage::{Expired, RenameOutcome, Update};

use super::{Changed, Ctx, arg_i64, int, is, text};
use crate::reply::{CmdError, CmdResult};
use crate::shared::now_ms;

pub fn del(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let mut n = 0;
    ctx.exact_changes();
    let keys = &args[1..];
    for (i, k) in keys.iter().enumerate() {
        super::prefetch_chunk(ctx, keys, i);
        let (deleted, gsn) = ctx.shared.engine.delete(ctx.db(), k)?;
        ctx.wrote(gsn);
        if deleted {
            ctx.changed(ctx.db(), k);
        }
        n += i64::from(deleted);
    }
    Ok(Reply::Integer(n))
}

pub fn exists(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let mut n = 0;
    let keys = &args[1..];
    for (i, k) in keys.iter().enumerate() {
        super::prefetch_chunk(ctx, keys, i);
        n += i64::from(ctx.shared.engine.exists(ctx.db(), k)?);
    }
    Ok(Reply::Integer(n))
}

pub fn type_(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let t = if ctx.shared.engine.exists(ctx.db(), &args[1])? {
        "string"
    } else {
        "none"
    };
    Ok(Reply::simple(t))
}

/// EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT with NX | XX | GT | LT.
pub fn expire(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let name = text(&args[0]).to_ascii_lowercase();
    let (unit, absolute, cmd): (i64, bool, &'static str) = match name.as_str() {
        "expire" => (1000, false, "expire"),
        "pexpire" => (1, false, "pexpire"),
        "expireat" => (1000, true, "expireat"),
        _ => (1, true, "pexpireat"),
    };
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for a in &args[3..] {
        if is(a, "NX") {
            nx = true;
        } else if is(a, "XX") {
            xx = true;
        } else if is(a, "GT") {
            gt = true;
        } else if is(a, "LT") {
            lt = true;
        } else {
            let mut line = b"ERR Unsupported option ".to_vec();
            line.extend_from_slice(crate::reply::cbytes(a, usize::MAX));
            return Err(CmdError::Raw(line));
        }
    }
    if nx && (xx || gt || lt) {
        return Err(CmdError::Static(
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if gt && lt {
        return Err(CmdError::Static(
            "ERR GT and LT options at the same time are not compatible",
        ));
    }
    let when = arg_i64(&args[2])?;
    let mut at = when.checked_mul(unit).ok_or(CmdError::InvalidExpire(cmd))?;
    if !absolute {
        at = at
            .checked_add(i64::try_from(now_ms()).unwrap_or(i64::MAX))
            .ok_or(CmdError::InvalidExpire(cmd))?;
    }
    let now = i64::try_from(now_ms()).unwrap_or(i64::MAX);
    let (set, gsn) = ctx.shared.engine.update(ctx.db(), &args[1], |cur| {
        let Some(c) = cur else {
            return (Update::Keep, false);
        };
        let current = c
            .expire_at_ms
            .map(|ms| i64::try_from(ms).unwrap_or(i64::MAX));
        let allowed = match current {
            None => !(xx || gt),
            Some(cur) => !nx && (!gt || at > cur) && (!lt || at < cur),
        };
        if !allowed {
            return (Update::Keep, false);
        }
        if at <= now {
            return (Update::Delete, true);
        }
        (
            Update::SetExpiry(Some(u64::try_from(at).unwrap_or(u64::MAX))),
            true,
        )
    })?;
    ctx.wrote(gsn);
    Ok(int(i64::from(set)))
}

/// TTL, PTTL, EXPIRETIME, PEXPIRETIME.
pub fn ttl(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let name = text(&args[0]).to_ascii_lowercase();
    let Some(expiry) = ctx.shared.engine.expiry(ctx.db(), &args[1])? else {
        return Ok(Reply::Integer(-2));
    };
    let Some(at) = expiry else {
        return Ok(Reply::Integer(-1));
    };
    let at = i64::try_from(at).unwrap_or(i64::MAX);
    let now = i64::try_from(now_ms()).unwrap_or(i64::MAX);
    let left = (at - now).max(0);
    Ok(Reply::Integer(match name.as_str() {
        "ttl" => (left + 500) / 1000,
        "pttl" => left,
        "expiretime" => at / 1000,
        _ => at,
    }))
}

pub fn persist(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let (done, gsn) = ctx
        .shared
        .engine
        .update(ctx.db(), &args[1], |cur| match cur {
            Some(c) if c.expire_at_ms.is_some() => (Update::SetExpiry(None), true),
            _ => (Update::Keep, false),
        })?;
    ctx.wrote(gsn);
    Ok(int(i64::from(done)))
}

pub fn keys(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let pattern = &args[1][..];
    let pattern = (pattern != b"*").then_some(pattern);
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let mut cursor = 0;
    loop {
        // Redis 7.0's KEYS leaves out the expired keys it passes without deleting them.
        let (next, batch) =
            ctx.shared
                .engine
                .scan_with(ctx.db(), cursor, pattern, 1024, Expired::Skip)?;
        for k in batch {
            if seen.insert(k.clone()) {
                out.push(Reply::Bulk(k));
            }
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    Ok(Reply::Array(out))
}

/// A SCAN cursor as Redis reads it (`strtoul`, base 10): no leading space; an optional sign,
/// a minus negating modulo 2^64; digits up to the end or a NUL; an empty cursor is 0; a
/// value past 2^64 - 1 is refused.
fn parse_cursor(b: &[u8]) -> Option<u64> {
    let b = crate::reply::cbytes(b, usize::MAX);
    if b.first().is_some_and(u8::is_ascii_whitespace) {
        return None;
    }
    let (neg, digits) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        Some(b'+') => (false, &b[1..]),
        _ => (false, b),
    };
    if digits.is_empty() {
        // strtoul read nothing: the cursor is 0 only if there was nothing to read at all.
        return b.is_empty().then_some(0);
    }
    let mut v: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(if neg { v.wrapping_neg() } else { v })
}

pub fn scan(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let cursor = parse_cursor(&args[1]).ok_or(CmdError::Static("ERR invalid cursor"))?;
    let mut pattern: Option<&[u8]> = None;
    let mut count = 10usize;
    let mut type_ok = true;
    let mut i = 2;
    while i < args.len() {
        let Some(v) = args.get(i + 1) else {
            return Err(CmdError::Syntax);
        };
        if is(&args[i], "MATCH") {
            pattern = (&v[..] != b"*").then_some(&v[..]);
        } else if is(&args[i], "COUNT") {
            let n = arg_i64(v)?;
            if n < 1 {
                return Err(CmdError::Syntax);
            }
            count = usize::try_from(n).unwrap_or(usize::MAX).min(1 << 20);
        } else if is(&args[i], "TYPE") {
            // Only strings exist for now: any other type matches nothing.
            type_ok = is(v, "string");
        } else {
            return Err(CmdError::Syntax);
        }
        i += 2;
    }
    let (next, keys) = ctx.shared.engine.scan(ctx.db(), cursor, pattern, count)?;
    let keys = if type_ok {
        keys.into_iter().map(Reply::Bulk).collect()
    } else {
        Vec::new()
    };
    let mut buf = itoa::Buffer::new();
    Ok(Reply::Array(vec![
        Reply::Bulk(Bytes::copy_from_slice(buf.format(next).as_bytes())),
        Reply::Array(keys),
    ]))
}

pub fn randomkey(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    Ok(super::bulk_opt(ctx.shared.engine.random_key(ctx.db())?))
}

pub fn rename(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let nx = is(&args[0], "renamenx");
    let (outcome, gsn) = ctx.shared.engine.rename(ctx.db(), &args[1], &args[2], nx)?;
    ctx.wrote(gsn);
    match outcome {
        RenameOutcome::NoSuchKey => Err(CmdError::NoSuchKey),
        RenameOutcome::TargetExists => Ok(Reply::Integer(0)),
        RenameOutcome::Renamed if nx => Ok(Reply::Integer(1)),
        RenameOutcome::Renamed => Ok(Reply::ok()),
    }
}

pub fn copy(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let mut dst_db = ctx.db();
    let mut replace = false;
    let mut i = 3;
    while i < args.len() {
        if is(&args[i], "REPLACE") {
            replace = true;
        } else if is(&args[i], "DB") && i + 1 < args.len() {
            dst_db = super::db_index(ctx, &args[i + 1])?;
            i += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    if dst_db == ctx.db() && args[1] == args[2] {
        return Err(CmdError::Static(
            "ERR source and destination objects are the same",
        ));
    }
    let (copied, gsn) = ctx
        .shared
        .engine
        .copy(ctx.db(), &args[1], dst_db, &args[2], replace)?;
    ctx.wrote(gsn);
    ctx.exact_changes();
    if copied {
        ctx.changed(dst_db, &args[2]);
    }
    Ok(int(i64::from(copied)))
}

pub fn move_(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let dst = super::db_index(ctx, &args[2])?;
    if dst == ctx.db() {
        return Err(CmdError::Static(
            "ERR source and destination objects are the same",
        ));
    }
    let (moved, gsn) = ctx.shared.engine.move_key(ctx.db(), &args[1], dst)?;
    ctx.wrote(gsn);
    ctx.exact_changes();
    if moved {
        ctx.changed(ctx.db(), &args[1]);
        ctx.changed(dst, &args[1]);
    }
    Ok(int(i64::from(moved)))
}

pub fn dbsize(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    Ok(int(ctx.shared.engine.len(ctx.db())))
}

fn flush_mode(args: &[Bytes]) -> Result<(), CmdError> {
    match args {
        [_] => Ok(()),
        [_, m] if is(m, "ASYNC") || is(m, "SYNC") => Ok(()),
        _ => Err(CmdError::Syntax),
    }
}

/// FLUSHDB (`db` Some) or FLUSHALL.
fn flush(ctx: &mut Ctx<'_>, args: &[Bytes], db: Option<usize>) -> CmdResult {
    flush_mode(args)?;
    // The watched keys that exist now are the ones the flush changes.
    let doomed = ctx.shared.watches.existing(&ctx.shared.engine, db);
    let gsn = ctx.shared.engine.flush(db)?;
    ctx.wrote(gsn);
    ctx.changed = Changed::These(doomed);
    Ok(Reply::ok())
}

pub fn flushdb(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    flush(ctx, args, Some(ctx.db()))
}

pub fn flushall(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    flush(ctx, args, None)
}

#[cfg(test)]
mod tests {
    use super::parse_cursor;

    #[test]
    fn cursors_parse_as_strtoul_does() {
        assert_eq!(parse_cursor(b"0"), Some(0));
        assert_eq!(parse_cursor(b""), Some(0));
        assert_eq!(parse_cursor(b"+7"), Some(7));
        assert_eq!(parse_cursor(b"-1"), Some(u64::MAX));
        assert_eq!(parse_cursor(b"12\0junk"), Some(12));
        assert_eq!(parse_cursor(b"18446744073709551615"), Some(u64::MAX));
        for bad in [
            &b" 1"[..],
            b"1 ",
            b"x",
            b"-",
            b"+",
            b"18446744073709551616",
            b"1.5",
        ] {
            assert_eq!(parse_cursor(bad), None, "{bad:?}");
        }
    }
}
