//! LCS: the longest common subsequence of two string values (Redis 7's `LCS key1 key2 [LEN]
//! [IDX] [MINMATCHLEN len] [WITHMATCHLEN]`), with Redis's table, walk and tie-breaks, so the
//! string and the match ranges are the ones Redis gives for the same values.

use bytes::Bytes;
use respite_protocol::Reply;

use super::{Ctx, arg_i64, int, is};
use crate::reply::{CmdError, CmdResult};

/// A run of the LCS that is contiguous in both strings: inclusive byte ranges in `a` and `b`.
#[derive(Debug, PartialEq, Eq)]
pub struct Match {
    pub a: (usize, usize),
    pub b: (usize, usize),
}

impl Match {
    fn len(&self) -> usize {
        self.a.1 - self.a.0 + 1
    }
}

/// What the table walk found: the length, and the string and runs when asked for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Lcs {
    pub len: usize,
    pub string: Vec<u8>,
    /// Last run first, as Redis emits them.
    pub matches: Vec<Match>,
}

/// Why no table was built.
#[derive(Debug, PartialEq, Eq)]
pub enum TableError {
    /// It would take more than the allowed bytes.
    TooLarge,
    /// The allocation failed.
    NoMemory,
}

/// The LCS of `a` and `b`. `walk` fills `string` and `matches` (only `len` otherwise). The
/// table takes `(a.len() + 1) * (b.len() + 1)` 32-bit cells, refused above `max_bytes`.
///
/// # Errors
/// `TooLarge` above `max_bytes`, `NoMemory` if the allocation fails.
pub fn lcs(a: &[u8], b: &[u8], walk: bool, max_bytes: u64) -> Result<Lcs, TableError> {
    let (alen, blen) = (a.len(), b.len());
    let cells = (alen as u64 + 1)
        .checked_mul(blen as u64 + 1)
        .ok_or(TableError::TooLarge)?;
    if cells.saturating_mul(4) > max_bytes {
        return Err(TableError::TooLarge);
    }
    let cells = usize::try_from(cells).map_err(|_| TableError::NoMemory)?;
    let mut t: Vec<u32> = Vec::new();
    t.try_reserve_exact(cells)
        .map_err(|_| TableError::NoMemory)?;
    t.resize(cells, 0);
    let w = blen + 1;
    // t[i * w + j] is the LCS length of a[..i] and b[..j].
    for i in 1..=alen {
        for j in 1..=blen {
            t[i * w + j] = if a[i - 1] == b[j - 1] {
                t[(i - 1) * w + j - 1] + 1
            } else {
                t[(i - 1) * w + j].max(t[i * w + j - 1])
            };
        }
    }
    let len = t[alen * w + blen] as usize;
    let mut out = Lcs {
        len,
        ..Lcs::default()
    };
    if !walk {
        return Ok(out);
    }
    // Walk back from the end, as Redis does: a match extends the current run backwards; a
    // step away from the diagonal (up on a strict win, else left) closes it.
    let mut string = vec![0u8; len];
    let mut left = len;
    let (mut i, mut j) = (alen, blen);
    let mut run: Option<Match> = None;
    while i > 0 && j > 0 {
        let close = if a[i - 1] == b[j - 1] {
            left -= 1;
            string[left] = a[i - 1];
            match &mut run {
                None => {
                    run = Some(Match {
                        a: (i - 1, i - 1),
                        b: (j - 1, j - 1),
                    });
                }
                // Consecutive diagonal steps are always contiguous in both strings.
                Some(r) => {
                    r.a.0 -= 1;
                    r.b.0 -= 1;
                }
            }
            i -= 1;
            j -= 1;
            // A run that reached the front of either string is complete.
            run.as_ref().is_some_and(|r| r.a.0 == 0 || r.b.0 == 0)
        } else {
            if t[(i - 1) * w + j] > t[i * w + j - 1] {
                i -= 1;
            } else {
                j -= 1;
            }
            run.is_some()
        };
        if close && let Some(r) = run.take() {
            out.matches.push(r);
        }
    }
    out.string = string;
    Ok(out)
}

/// `LCS key1 key2 [LEN] [IDX] [MINMATCHLEN len] [WITHMATCHLEN]`.
pub fn lcs_command(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let (mut len_only, mut idx, mut with_len, mut min_len) = (false, false, false, 0usize);
    let mut i = 3;
    while i < args.len() {
        let opt = &args[i];
        if is(opt, "idx") {
            idx = true;
        } else if is(opt, "len") {
            len_only = true;
        } else if is(opt, "withmatchlen") {
            with_len = true;
        } else if is(opt, "minmatchlen") && i + 1 < args.len() {
            min_len = usize::try_from(arg_i64(&args[i + 1])?.max(0)).unwrap_or(usize::MAX);
            i += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    if idx && len_only {
        return Err(CmdError::Static(
            "ERR If you want both the length and indexes, please just use IDX.",
        ));
    }
    let db = ctx.db();
    let a = ctx.shared.engine.get(db, &args[1])?;
    ctx.hit(a.is_some());
    let b = ctx.shared.engine.get(db, &args[2])?;
    ctx.hit(b.is_some());
    let (a, b) = (a.unwrap_or_default(), b.unwrap_or_default());
    if a.len() as u64 >= u64::from(u32::MAX - 1) || b.len() as u64 >= u64::from(u32::MAX - 1) {
        return Err(CmdError::Static("ERR String too long for LCS"));
    }
    let found = lcs(&a, &b, !len_only, ctx.max_bulk_len()).map_err(|e| match e {
        TableError::TooLarge => CmdError::Static(
            "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len",
        ),
        TableError::NoMemory => {
            CmdError::Static("ERR Insufficient memory, failed allocating transient memory for LCS")
        }
    })?;
    if len_only {
        return Ok(int(found.len));
    }
    if !idx {
        return Ok(Reply::Bulk(Bytes::from(found.string)));
    }
    let pair = |(s, e): (usize, usize)| Reply::Array(vec![int(s), int(e)]);
    let matches = found
        .matches
        .into_iter()
        .filter(|m| m.len() >= min_len)
        .map(|m| {
            let n = m.len();
            let mut r = vec![pair(m.a), pair(m.b)];
            if with_len {
                r.push(int(n));
            }
            Reply::Array(r)
        })
        .collect();
    Ok(Reply::Map(vec![
        (
            Reply::Bulk(Bytes::from_static(b"matches")),
            Reply::Array(matches),
        ),
        (Reply::Bulk(Bytes::from_static(b"len")), int(found.len)),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BIG: u64 = 1 << 30;

    #[test]
    fn finds_redis_documented_lcs_and_runs() {
        let r = lcs(b"ohmytext", b"mynewtext", true, BIG).unwrap();
        assert_eq!(r.len, 6);
        assert_eq!(r.string, b"mytext");
        assert_eq!(
            r.matches,
            vec![
                Match {
                    a: (4, 7),
                    b: (5, 8)
                },
                Match {
                    a: (2, 3),
                    b: (0, 1)
                },
            ]
        );
        let only_len = lcs(b"ohmytext", b"mynewtext", false, BIG).unwrap();
        assert_eq!(only_len.len, 6);
        assert!(only_len.string.is_empty() && only_len.matches.is_empty());
    }

    #[test]
    fn empty_and_disjoint_strings_have_an_empty_lcs() {
        for (a, b) in [(&b""[..], &b"abc"[..]), (b"abc", b""), (b"abc", b"xyz")] {
            let r = lcs(a, b, true, BIG).unwrap();
            assert_eq!((r.len, r.string.len(), r.matches.len()), (0, 0, 0));
        }
    }

    #[test]
    fn ties_break_as_redis_does() {
        // Redis steps left (j) unless up (i) is strictly longer: "ab" / "ba" gives "b"
        // (redis-server 7.0: `LCS x y` is "b", IDX gives [[1,1],[0,0]]).
        let r = lcs(b"ab", b"ba", true, BIG).unwrap();
        assert_eq!(r.string, b"b");
        assert_eq!(
            r.matches,
            vec![Match {
                a: (1, 1),
                b: (0, 0)
            }]
        );
    }

    #[test]
    fn a_table_above_the_limit_is_refused() {
        // (3 + 1) * (3 + 1) cells of 4 bytes = 64 bytes.
        assert!(lcs(b"abc", b"abc", true, 64).is_ok());
        assert_eq!(lcs(b"abc", b"abc", true, 63), Err(TableError::TooLarge));
    }
}
