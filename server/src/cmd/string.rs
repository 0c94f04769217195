//! String commands: GET, SET and family, counters, ranges.

use bytes::{Bytes, BytesMut};
use respite_protocol::Reply;
use respite_storage::{Expiry, SetCondition, SetOptions, Update};

use super::{Ctx, arg_i64, bulk_opt, int, ldouble, parse_i64};
use crate::reply::{CmdError, CmdResult};
use crate::shared::now_ms;

/// Turns a relative or absolute expire argument into absolute ms, with Redis's checks
/// (`ERR invalid expire time in '<cmd>' command` for <= 0 or overflow).
fn expire_at(
    value: &[u8],
    unit_ms: i64,
    absolute: bool,
    cmd: &'static str,
) -> Result<u64, CmdError> {
    let v = arg_i64(value)?;
    if v <= 0 {
        return Err(CmdError::InvalidExpire(cmd));
    }
    let ms = v.checked_mul(unit_ms).ok_or(CmdError::InvalidExpire(cmd))?;
    let at = if absolute {
        ms
    } else {
        ms.checked_add(i64::try_from(now_ms()).unwrap_or(i64::MAX))
            .ok_or(CmdError::InvalidExpire(cmd))?
    };
    u64::try_from(at).map_err(|_| CmdError::InvalidExpire(cmd))
}

pub fn get(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let v = ctx.shared.engine.get(ctx.db(), &args[1])?;
    ctx.hit(v.is_some());
    Ok(bulk_opt(v))
}

/// An expire option's value and kind, checked only when Redis checks it.
#[derive(Clone, Copy)]
struct ExpireArg<'a> {
    value: &'a Bytes,
    /// EX or EXAT (else PX, PXAT).
    seconds: bool,
    /// EXAT or PXAT.
    absolute: bool,
}

impl ExpireArg<'_> {
    fn at_ms(self, cmd: &'static str) -> Result<u64, CmdError> {
        expire_at(
            self.value,
            if self.seconds { 1000 } else { 1 },
            self.absolute,
            cmd,
        )
    }
}

/// SET's and GETEX's options, parsed by Redis's rules (parseExtendedStringArgumentsOrReply):
/// an option is refused (syntax error) only when it conflicts with one already given, so
/// `NX NX` or `EX 1 EX 2` (the last wins) are fine; values are checked later.
#[derive(Default)]
struct ExtOptions<'a> {
    nx: bool,
    xx: bool,
    get: bool,
    keepttl: bool,
    persist: bool,
    expire: Option<ExpireArg<'a>>,
}

fn parse_ext(args: &[Bytes], from: usize, for_set: bool) -> Result<ExtOptions<'_>, CmdError> {
    let mut o = ExtOptions::default();
    let mut j = from;
    while j < args.len() {
        // Redis compares option names as C strings, so `NX\0junk` is NX.
        let opt = crate::reply::cbytes(&args[j], usize::MAX);
        let next = args.get(j + 1);
        let kind = |name: &str| opt.eq_ignore_ascii_case(name.as_bytes());
        // EX, PX, EXAT and PXAT exclude each other and KEEPTTL/PERSIST; the same one again
        // replaces the value.
        let timed = |seconds: bool, absolute: bool| {
            !(o.keepttl || o.persist)
                && o.expire
                    .is_none_or(|e| e.seconds == seconds && e.absolute == absolute)
        };
        if kind("NX") && !o.xx && for_set {
            o.nx = true;
        } else if kind("XX") && !o.nx && for_set {
            o.xx = true;
        } else if kind("GET") && for_set {
            o.get = true;
        } else if kind("KEEPTTL") && !o.persist && o.expire.is_none() && for_set {
            o.keepttl = true;
        } else if kind("PERSIST") && !for_set && o.expire.is_none() && !o.keepttl {
            o.persist = true;
        } else if let Some(value) = next
            && ((kind("EX") && timed(true, false))
                || (kind("PX") && timed(false, false))
                || (kind("EXAT") && timed(true, true))
                || (kind("PXAT") && timed(false, true)))
        {
            o.expire = Some(ExpireArg {
                value,
                seconds: kind("EX") || kind("EXAT"),
                absolute: kind("EXAT") || kind("PXAT"),
            });
            j += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    Ok(o)
}

pub fn set(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let o = parse_ext(args, 3, true)?;
    let mut opts = SetOptions {
        return_old: o.get,
        ..SetOptions::default()
    };
    if o.nx {
        opts.condition = SetCondition::IfAbsent;
    } else if o.xx {
        opts.condition = SetCondition::IfPresent;
    }
    if o.keepttl {
        opts.expiry = Expiry::KeepTtl;
    }
    // Redis checks the expire value after the syntax, before touching the key.
    if let Some(e) = o.expire {
        opts.expiry = Expiry::At(e.at_ms("set")?);
    }
    let out = ctx.shared.engine.set(ctx.db(), &args[1], &args[2], opts)?;
    ctx.wrote(out.gsn);
    if opts.return_old {
        return Ok(bulk_opt(out.old));
    }
    Ok(if out.written {
        Reply::ok()
    } else {
        Reply::Null
    })
}

fn set_simple(
    ctx: &mut Ctx<'_>,
    key: &[u8],
    value: &[u8],
    opts: SetOptions,
) -> Result<bool, CmdError> {
    let out = ctx.shared.engine.set(ctx.db(), key, value, opts)?;
    ctx.wrote(out.gsn);
    Ok(out.written)
}

pub fn setnx(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let opts = SetOptions {
        condition: SetCondition::IfAbsent,
        ..SetOptions::default()
    };
    Ok(int(i64::from(set_simple(ctx, &args[1], &args[2], opts)?)))
}

fn setex_generic(ctx: &mut Ctx<'_>, args: &[Bytes], unit: i64, cmd: &'static str) -> CmdResult {
    let at = expire_at(&args[2], unit, false, cmd)?;
    let opts = SetOptions {
        expiry: Expiry::At(at),
        ..SetOptions::default()
    };
    set_simple(ctx, &args[1], &args[3], opts)?;
    Ok(Reply::ok())
}

pub fn setex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    setex_generic(ctx, args, 1000, "setex")
}

pub fn psetex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    setex_generic(ctx, args, 1, "psetex")
}

pub fn getset(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let opts = SetOptions {
        return_old: true,
        ..SetOptions::default()
    };
    let out = ctx.shared.engine.set(ctx.db(), &args[1], &args[2], opts)?;
    ctx.wrote(out.gsn);
    Ok(bulk_opt(out.old))
}

pub fn getdel(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let (old, gsn) = ctx
        .shared
        .engine
        .update(ctx.db(), &args[1], |cur| match cur {
            Some(c) => (Update::Delete, Some(c.value)),
            None => (Update::Keep, None),
        })?;
    ctx.wrote(gsn);
    ctx.hit(old.is_some());
    Ok(bulk_opt(old))
}

pub fn getex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let o = parse_ext(args, 2, false)?;
    let now = now_ms();
    // A missing key answers nil before the expire value is checked, as in Redis.
    let (value, gsn) = ctx.shared.engine.update(ctx.db(), &args[1], |cur| {
        let Some(c) = cur else {
            return (Update::Keep, Ok(None));
        };
        let at = match o.expire.map(|e| e.at_ms("getex")).transpose() {
            Ok(at) => at,
            Err(e) => return (Update::Keep, Err(e)),
        };
        let update = match at {
            Some(at) if at <= now => Update::Delete,
            Some(at) => Update::SetExpiry(Some(at)),
            None if o.persist && c.expire_at_ms.is_some() => Update::SetExpiry(None),
            None => Update::Keep,
        };
        (update, Ok(Some(c.value)))
    })?;
    let value = value?;
    ctx.wrote(gsn);
    ctx.hit(value.is_some());
    Ok(bulk_opt(value))
}

pub fn mget(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let mut out = Vec::with_capacity(args.len() - 1);
    let keys = &args[1..];
    for (i, k) in keys.iter().enumerate() {
        super::prefetch_chunk(ctx, keys, i);
        let v = ctx.shared.engine.get(ctx.db(), k)?;
        ctx.hit(v.is_some());
        out.push(bulk_opt(v));
    }
    Ok(Reply::Array(out))
}

fn mset_generic(ctx: &mut Ctx<'_>, args: &[Bytes], nx: bool) -> Result<bool, CmdError> {
    if args.len().is_multiple_of(2) {
        return Err(CmdError::Arity(super::text(&args[0]).to_ascii_lowercase()));
    }
    let pairs: Vec<(&[u8], &[u8])> = args[1..]
        .chunks_exact(2)
        .map(|p| (&p[0][..], &p[1][..]))
        .collect();
    let (written, gsn) = ctx.shared.engine.mset(ctx.db(), &pairs, nx)?;
    ctx.wrote(gsn);
    Ok(written)
}

pub fn mset(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    mset_generic(ctx, args, false)?;
    Ok(Reply::ok())
}

pub fn msetnx(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    Ok(int(i64::from(mset_generic(ctx, args, true)?)))
}

fn too_big() -> CmdError {
    CmdError::Static("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
}

pub fn append(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let max = ctx.max_bulk_len();
    let tail = &args[2];
    let (len, gsn) = ctx
        .shared
        .engine
        .update(ctx.db(), &args[1], |cur| match cur {
            None => (
                Update::Set {
                    value: tail.clone(),
                    expiry: Expiry::Persist,
                },
                Ok(tail.len()),
            ),
            Some(c) => {
                let total = c.value.len() + tail.len();
                if total as u64 > max {
                    return (Update::Keep, Err(too_big()));
                }
                if tail.is_empty() {
                    return (Update::Keep, Ok(total));
                }
                let mut v = BytesMut::with_capacity(total);
                v.extend_from_slice(&c.value);
                v.extend_from_slice(tail);
                (
                    Update::Set {
                        value: v.freeze(),
                        expiry: Expiry::KeepTtl,
                    },
                    Ok(total),
                )
            }
        })?;
    let len = len?;
    ctx.wrote(gsn);
    // Appending nothing to an existing key writes no record, but Redis still counts it as
    // a change of the key (its WATCHers abort).
    if tail.is_empty() && gsn == 0 {
        ctx.changed(ctx.db(), &args[1]);
    }
    Ok(int(len))
}

pub fn strlen(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let n = ctx.shared.engine.value_len(ctx.db(), &args[1])?;
    Ok(int(n.unwrap_or(0)))
}

fn incr_generic(ctx: &mut Ctx<'_>, key: &[u8], by: i64) -> CmdResult {
    let (res, gsn) = ctx.shared.engine.update(ctx.db(), key, |cur| {
        let (old, keep_ttl) = match &cur {
            None => (0, false),
            Some(c) => match parse_i64(&c.value) {
                Some(v) => (v, true),
                None => return (Update::Keep, Err(CmdError::NotInteger)),
            },
        };
        let Some(new) = old.checked_add(by) else {
            return (Update::Keep, Err(CmdError::Overflow));
        };
        let mut buf = itoa::Buffer::new();
        let value = Bytes::copy_from_slice(buf.format(new).as_bytes());
        let expiry = if keep_ttl {
            Expiry::KeepTtl
        } else {
            Expiry::Persist
        };
        (Update::Set { value, expiry }, Ok(new))
    })?;
    let n = res?;
    ctx.wrote(gsn);
    Ok(Reply::Integer(n))
}

pub fn incr(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    incr_generic(ctx, &args[1], 1)
}

pub fn decr(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    incr_generic(ctx, &args[1], -1)
}

pub fn incrby(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let by = arg_i64(&args[2])?;
    incr_generic(ctx, &args[1], by)
}

pub fn decrby(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let by = arg_i64(&args[2])?;
    // Redis refuses to negate LLONG_MIN.
    let by = by
        .checked_neg()
        .ok_or(CmdError::Static("ERR decrement would overflow"))?;
    incr_generic(ctx, &args[1], by)
}

pub fn incrbyfloat(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let by = ldouble::parse(&args[2]).ok_or(CmdError::NotFloat)?;
    let (res, gsn) = ctx.shared.engine.update(ctx.db(), &args[1], |cur| {
        let (old, keep_ttl) = match &cur {
            None => (ldouble::Ld::ZERO, false),
            Some(c) => match ldouble::parse(&c.value) {
                Some(v) => (v, true),
                None => return (Update::Keep, Err(CmdError::NotFloat)),
            },
        };
        let Some(new) = ldouble::add(old, by) else {
            return (
                Update::Keep,
                Err(CmdError::Static(
                    "ERR increment would produce NaN or Infinity",
                )),
            );
        };
        let text = Bytes::from(ldouble::format(new));
        let expiry = if keep_ttl {
            Expiry::KeepTtl
        } else {
            Expiry::Persist
        };
        (
            Update::Set {
                value: text.clone(),
                expiry,
            },
            Ok(text),
        )
    })?;
    let text = res?;
    ctx.wrote(gsn);
    Ok(Reply::Bulk(text))
}

pub fn getrange(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let start = arg_i64(&args[2])?;
    let end = arg_i64(&args[3])?;
    let Some(v) = ctx.shared.engine.get(ctx.db(), &args[1])? else {
        return Ok(Reply::Bulk(Bytes::new()));
    };
    let len = i64::try_from(v.len()).unwrap_or(i64::MAX);
    // Redis: negative start and end both past the front give "".
    if start < 0 && end < 0 && start > end {
        return Ok(Reply::Bulk(Bytes::new()));
    }
    let mut start = if start < 0 { len + start } else { start };
    let mut end = if end < 0 { len + end } else { end };
    start = start.max(0);
    end = end.max(0);
    if end >= len {
        end = len - 1;
    }
    if start > end || len == 0 {
        return Ok(Reply::Bulk(Bytes::new()));
    }
    let (s, e) = (
        usize::try_from(start).unwrap_or(0),
        usize::try_from(end).unwrap_or(0),
    );
    Ok(Reply::Bulk(v.slice(s..=e)))
}

pub fn setrange(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let offset = arg_i64(&args[2])?;
    if offset < 0 {
        return Err(CmdError::Static("ERR offset is out of range"));
    }
    let offset = usize::try_from(offset).map_err(|_| too_big())?;
    let patch = &args[3];
    let max = ctx.max_bulk_len();
    if patch.is_empty() {
        // Nothing to write: the reply is the current length (0 when missing).
        let n = ctx.shared.engine.value_len(ctx.db(), &args[1])?;
        return Ok(int(n.unwrap_or(0)));
    }
    if (offset as u64).saturating_add(patch.len() as u64) > max {
        return Err(too_big());
    }
    let (len, gsn) = ctx.shared.engine.update(ctx.db(), &args[1], |cur| {
        let (old, expiry) = match &cur {
            None => (&[][..], Expiry::Persist),
            Some(c) => (&c.value[..], Expiry::KeepTtl),
        };
        let total = old.len().max(offset + patch.len());
        let mut v = BytesMut::zeroed(total);
        v[..old.len()].copy_from_slice(old);
        v[offset..offset + patch.len()].copy_from_slice(patch);
        (
            Update::Set {
                value: v.freeze(),
                expiry,
            },
            total,
        )
    })?;
    ctx.wrote(gsn);
    Ok(int(len))
}
