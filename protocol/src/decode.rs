//! The incremental request decoder.
//!
//! The rules are those of Redis 7's `processMultibulkBuffer` and `processInlineBuffer`
//! (networking.c) and `sdssplitargs` (sds.c). Where Redis is lenient we are too, so a client
//! that works against Redis works against us:
//!
//! - a request starting with `*` is multibulk, anything else is an inline line;
//! - a count or length line ends at the first `\r`, and the byte after it is skipped
//!   unchecked; the two bytes after a bulk's data are skipped unchecked too;
//! - numbers follow `string2ll`: optional `-`, no `+`, no leading zeros, no spaces;
//! - `*0` and any negative count are consumed and produce no command;
//! - an inline line ends at `\n`, with one `\r` before it dropped; lines that split into no
//!   arguments are consumed silently.
//!
//! One deliberate difference: Redis finds line ends with `strchr`, which stops at a NUL byte,
//! so a NUL in a count line or an inline line makes Redis wait for more input forever (until
//! the 64 KiB limit). We search the whole buffer, so such a count line is an invalid length.
//! Inside an inline line a NUL still ends the text that is split, as in `sdssplitargs`.

use bytes::{Buf, Bytes, BytesMut};

use crate::ProtocolError;

/// Redis's limits for a client that still has to authenticate (`authRequired`): at most this
/// many arguments...
const UNAUTH_MAX_MULTIBULK: usize = 10;
/// ...of at most this many bytes each.
const UNAUTH_MAX_BULK: usize = 16384;
/// Argument slots kept between commands; one huge command must not pin its slot vector.
const RANGES_KEEP: usize = 1024;

/// Request size limits, with Redis's defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// `proto-max-bulk-len`: the largest bulk string a client may send. Default 512 MiB.
    pub max_bulk_len: usize,
    /// The largest multibulk count. Default 1024 * 1024.
    pub max_multibulk_len: usize,
    /// `PROTO_INLINE_MAX_SIZE`: the longest inline line (and the longest `*`/`$` count line).
    /// Default 64 KiB.
    pub max_inline_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_len: 512 * 1024 * 1024,
            max_multibulk_len: 1024 * 1024,
            max_inline_len: 64 * 1024,
        }
    }
}

/// Incremental request decoder. Holds only small parse state, never a copy of the input.
///
/// The decoder remembers offsets into the caller's buffer for a command that has not fully
/// arrived, so between calls the caller must only append to `buf` (the usual read loop does
/// exactly that). A large command that trickles in is therefore parsed once, not once per read.
#[derive(Debug)]
pub struct Decoder {
    limits: Limits,
    auth_required: bool,
    /// Arguments still to read of the multibulk in progress; 0 when none is in progress.
    remaining: usize,
    /// Offset in `buf` where parsing of the multibulk in progress resumes.
    pos: usize,
    /// Declared length of the bulk whose `$` line was read but whose data has not all arrived.
    bulk_len: Option<usize>,
    /// How far the search for the end of the current line has already looked, so a long line
    /// arriving a few bytes at a time is scanned once.
    scanned: usize,
    /// `(start, end)` in `buf` of each argument parsed so far of the multibulk in progress.
    ranges: Vec<(usize, usize)>,
    /// The error returned, returned again on every later call: the stream cannot resync.
    failed: Option<ProtocolError>,
    /// Bytes looked at while searching for line ends, for the no-rescan tests.
    #[cfg(test)]
    examined: usize,
}

/// What one inline line turned into.
enum Inline {
    Command(Vec<Bytes>),
    /// A line that split into no arguments; it was consumed.
    Skipped,
    Incomplete,
}

impl Decoder {
    /// A decoder with the given limits.
    #[must_use]
    pub fn new(limits: Limits) -> Self {
        Decoder {
            limits,
            auth_required: false,
            remaining: 0,
            pos: 0,
            bulk_len: None,
            scanned: 0,
            ranges: Vec::new(),
            failed: None,
            #[cfg(test)]
            examined: 0,
        }
    }

    /// The limits in force.
    #[must_use]
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Changes the limits (CONFIG SET); they apply to the lines parsed from the next call on.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Whether the client still has to authenticate. While it does, Redis refuses a multibulk
    /// of more than 10 arguments ("unauthenticated multibulk length") and a bulk longer than
    /// 16384 bytes ("unauthenticated bulk length"), so an anonymous client cannot make the
    /// server buffer large requests. Off by default; the server turns it on for connections
    /// that must `AUTH` and off once they have.
    pub fn set_auth_required(&mut self, required: bool) {
        self.auth_required = required;
    }

    /// True while part of a multibulk command has been parsed and the rest is awaited.
    #[must_use]
    pub fn in_progress(&self) -> bool {
        self.remaining > 0
    }

    /// Takes the next complete command off the front of `buf` (the connection's input buffer).
    ///
    /// - `Ok(Some(args))`: one command; its bytes were split off `buf` and every argument is a
    ///   zero-copy [`Bytes`] slice of them (inline arguments with quotes or escapes are the
    ///   only copies). `args` is never empty.
    /// - `Ok(None)`: not enough bytes yet; call again when more have been appended to `buf`.
    ///   Empty inline lines, `*0` and negative counts may have been consumed.
    ///
    /// Never allocates proportionally to a declared length: `$2147483647` followed by three
    /// bytes costs three bytes.
    ///
    /// # Errors
    ///
    /// A [`ProtocolError`] when the input is malformed or breaks a limit. The server replies
    /// `-{e}\r\n` and closes the connection; every later call returns the same error.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let result = self.decode_inner(buf);
        if let Err(e) = result {
            self.failed = Some(e);
        }
        result
    }

    fn decode_inner(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        if buf.len() < self.pos.max(self.scanned) {
            // The caller dropped input we had parsed; our offsets mean nothing any more.
            self.reset_frame();
            self.scanned = 0;
        }
        loop {
            if self.remaining == 0 {
                let Some(&first) = buf.first() else {
                    return Ok(None);
                };
                if first == b'*' {
                    if let Some(args) = self.fast_multibulk(buf) {
                        return Ok(Some(args));
                    }
                } else {
                    match self.inline(buf)? {
                        Inline::Command(args) => return Ok(Some(args)),
                        Inline::Skipped => continue,
                        Inline::Incomplete => return Ok(None),
                    }
                }
                let Some(cr) = self.find_line_end(buf, 0, ProtocolError::TooBigMultibulkRequest)?
                else {
                    return Ok(None);
                };
                let count = parse_ll(&buf[1..cr])
                    .filter(|&n| {
                        usize::try_from(n).is_ok_and(|n| n <= self.limits.max_multibulk_len)
                            || n < 0
                    })
                    .ok_or(ProtocolError::InvalidMultibulkLength)?;
                if self.auth_required
                    && usize::try_from(count).is_ok_and(|n| n > UNAUTH_MAX_MULTIBULK)
                {
                    return Err(ProtocolError::UnauthenticatedMultibulkLength);
                }
                let next = cr + 2;
                let Ok(count @ 1..) = usize::try_from(count) else {
                    // `*0` and `*-1` are no command at all.
                    buf.advance(next);
                    self.scanned = 0;
                    continue;
                };
                self.remaining = count;
                self.pos = next;
                self.scanned = next;
            }
            return self.multibulk_args(buf);
        }
    }

    /// Reads the arguments of the multibulk in progress; the command if all are here.
    fn multibulk_args(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        while self.remaining > 0 {
            let len = match self.bulk_len {
                Some(len) => len,
                None => {
                    let start = self.pos;
                    let Some(cr) =
                        self.find_line_end(buf, start, ProtocolError::TooBigBulkCountString)?
                    else {
                        return Ok(None);
                    };
                    // Redis checks the '$' only once the whole line is here.
                    let first = buf[start];
                    if first != b'$' {
                        return Err(ProtocolError::ExpectedDollar(first));
                    }
                    let len = parse_ll(&buf[start + 1..cr])
                        .and_then(|n| usize::try_from(n).ok())
                        .filter(|&n| n <= self.limits.max_bulk_len)
                        .ok_or(ProtocolError::InvalidBulkLength)?;
                    if len > UNAUTH_MAX_BULK && self.auth_required {
                        return Err(ProtocolError::UnauthenticatedBulkLength);
                    }
                    self.pos = cr + 2;
                    self.bulk_len = Some(len);
                    len
                }
            };
            // Nothing is reserved for the declared length: we only look at what has arrived.
            let end = self.pos.saturating_add(len);
            if buf.len() < end.saturating_add(2) {
                return Ok(None);
            }
            self.ranges.push((self.pos, end));
            self.pos = end + 2;
            self.scanned = self.pos;
            self.bulk_len = None;
            self.remaining -= 1;
        }
        let end = self.pos;
        Ok(Some(self.finish(buf, end)))
    }

    /// The fast path for the request every client sends: a whole `*<n>` multibulk of
    /// `$<len>` bulks with canonical numbers and CRLF line ends, already in `buf`. Parses it in
    /// one pass without saving resumable state. Anything else (a partial or large command, a
    /// number the limits or the auth rules refuse, an odd byte) returns `None` having changed
    /// nothing, and the general path decides, with Redis's exact rules and errors.
    #[inline]
    fn fast_multibulk(&mut self, buf: &mut BytesMut) -> Option<Vec<Bytes>> {
        /// Commands with more arguments take the general path, which keeps its place across
        /// reads: reparsing a partial one from the start here would cost O(n) per read.
        const FAST_MAX_ARGS: usize = 64;
        let (count, mut p) = fast_number(buf, 1)?;
        if count == 0
            || count > FAST_MAX_ARGS
            || count > self.limits.max_multibulk_len
            || (self.auth_required && count > UNAUTH_MAX_MULTIBULK)
        {
            return None;
        }
        self.ranges.clear();
        for _ in 0..count {
            if buf.get(p) != Some(&b'$') {
                return self.fast_fail();
            }
            let Some((len, start)) = fast_number(buf, p + 1) else {
                return self.fast_fail();
            };
            if len > self.limits.max_bulk_len
                || (self.auth_required && len > UNAUTH_MAX_BULK)
                || buf.len() < start.saturating_add(len).saturating_add(2)
            {
                return self.fast_fail();
            }
            self.ranges.push((start, start + len));
            p = start + len + 2;
        }
        Some(self.finish(buf, p))
    }

    #[cold]
    fn fast_fail(&mut self) -> Option<Vec<Bytes>> {
        self.ranges.clear();
        None
    }

    /// Splits the finished command (`buf[..end]`) off `buf` and slices its arguments out of it.
    fn finish(&mut self, buf: &mut BytesMut, end: usize) -> Vec<Bytes> {
        let mut frame = buf.split_to(end).freeze();
        let mut args = Vec::with_capacity(self.ranges.len());
        if let Some((&(last_start, last_end), rest)) = self.ranges.split_last() {
            args.extend(rest.iter().map(|&(s, e)| frame.slice(s..e)));
            // The frame itself becomes the last argument: one reference count less to take
            // and drop per command.
            frame.truncate(last_end);
            frame.advance(last_start);
            args.push(frame);
        }
        self.reset_frame();
        args
    }

    /// Finds the `\r` ending the line that starts at `start`, resuming where the last call
    /// stopped. `Ok(None)` while the line (or the byte after its `\r`) has not arrived; `too_big`
    /// when more than `max_inline_len` bytes are buffered without any `\r`.
    fn find_line_end(
        &mut self,
        buf: &[u8],
        start: usize,
        too_big: ProtocolError,
    ) -> Result<Option<usize>, ProtocolError> {
        let from = self.scanned.max(start);
        let found = find_cr(buf.get(from..).unwrap_or_default()).map(|i| from + i);
        #[cfg(test)]
        {
            self.examined += found.map_or(buf.len(), |cr| cr + 1).saturating_sub(from);
        }
        match found {
            Some(cr) if cr + 1 < buf.len() => {
                self.scanned = cr + 2;
                Ok(Some(cr))
            }
            Some(cr) => {
                // The `\r` is the last byte: look at it again when more arrives.
                self.scanned = cr;
                Ok(None)
            }
            None => {
                self.scanned = buf.len();
                if buf.len() - start > self.limits.max_inline_len {
                    Err(too_big)
                } else {
                    Ok(None)
                }
            }
        }
    }

    /// Parses one inline line at the front of `buf`.
    fn inline(&mut self, buf: &mut BytesMut) -> Result<Inline, ProtocolError> {
        let from = self.scanned.min(buf.len());
        let found = memchr::memchr(b'\n', &buf[from..]).map(|i| from + i);
        #[cfg(test)]
        {
            self.examined += found.map_or(buf.len(), |nl| nl + 1) - from;
        }
        let Some(nl) = found else {
            self.scanned = buf.len();
            return if buf.len() > self.limits.max_inline_len {
                Err(ProtocolError::TooBigInlineRequest)
            } else {
                Ok(Inline::Incomplete)
            };
        };
        let end = if nl > 0 && buf[nl - 1] == b'\r' {
            nl - 1
        } else {
            nl
        };
        let args = split_args(&buf[..end])?;
        let line = buf.split_to(nl + 1).freeze();
        self.scanned = 0;
        if args.is_empty() {
            return Ok(Inline::Skipped);
        }
        Ok(Inline::Command(
            args.into_iter()
                .map(|a| match a {
                    Arg::Range(s, e) => line.slice(s..e),
                    Arg::Owned(v) => Bytes::from(v),
                })
                .collect(),
        ))
    }

    /// Forgets the multibulk in progress (after it completed).
    fn reset_frame(&mut self) {
        self.remaining = 0;
        self.pos = 0;
        self.scanned = 0;
        self.bulk_len = None;
        self.ranges.clear();
        if self.ranges.capacity() > RANGES_KEEP {
            self.ranges.shrink_to(RANGES_KEEP);
        }
    }
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new(Limits::default())
    }
}

/// `<digits>\r\n` at `buf[i..]` as the fast path accepts it: a canonical non-negative number
/// of at most 9 digits (no overflow even in a 32-bit usize; proto-max-bulk-len has 9), ended
/// by CRLF; the number and the offset after it.
#[inline]
fn fast_number(buf: &[u8], i: usize) -> Option<(usize, usize)> {
    let mut value: usize = 0;
    let mut j = i;
    loop {
        let c = *buf.get(j)?;
        if c == b'\r' {
            break;
        }
        let digit = c.wrapping_sub(b'0');
        if digit > 9 || j - i >= 9 {
            return None;
        }
        value = value * 10 + usize::from(digit);
        j += 1;
    }
    let digits = j - i;
    if digits == 0 || (digits > 1 && buf[i] == b'0') || *buf.get(j + 1)? != b'\n' {
        return None;
    }
    Some((value, j + 2))
}

/// The first `\r` in `s`. Count lines are a few bytes long, where a plain loop beats memchr's
/// setup; longer lines go to memchr.
#[inline]
fn find_cr(s: &[u8]) -> Option<usize> {
    let head = s.len().min(16);
    match s[..head].iter().position(|&c| c == b'\r') {
        Some(i) => Some(i),
        None if s.len() > head => memchr::memchr(b'\r', &s[head..]).map(|i| head + i),
        None => None,
    }
}

/// Redis's `string2ll`: an optional `-`, then digits without leading zeros (a lone `0` is
/// fine, `-0` is not), fitting an i64. Anything else, including the empty string, is `None`.
fn parse_ll(s: &[u8]) -> Option<i64> {
    let (negative, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    match digits {
        [] => return None,
        [b'0'] if !negative => return Some(0),
        [b'0', ..] => return None,
        _ => {}
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    if negative {
        0i64.checked_sub_unsigned(v)
            .or((v == 1u64 << 63).then_some(i64::MIN))
    } else {
        i64::try_from(v).ok()
    }
}

/// One argument of an inline line: a range of the line, or bytes built from quotes/escapes.
#[derive(Debug, PartialEq)]
enum Arg {
    Range(usize, usize),
    Owned(Vec<u8>),
}

/// C's `isspace` in the "C" locale.
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Redis's `sdssplitargs`, byte for byte: blanks separate arguments; `"..."` understands
/// `\n \r \t \b \a \xHH` and `\<any>`; `'...'` understands only `\'`; a closing quote must be
/// followed by a blank or the end; quotes may start in the middle of an argument (`a"b c"` is
/// `ab c`). The line is a C string there, so it ends at the first NUL.
fn split_args(line: &[u8]) -> Result<Vec<Arg>, ProtocolError> {
    let line = match memchr::memchr(0, line) {
        Some(nul) => &line[..nul],
        None => line,
    };
    // Reading past the end yields the C string's terminating NUL.
    let at = |i: usize| line.get(i).copied().unwrap_or(0);
    let mut args = Vec::new();
    let mut p = 0;
    loop {
        while p < line.len() && is_space(line[p]) {
            p += 1;
        }
        if p >= line.len() {
            return Ok(args);
        }
        let start = p;
        // Stays None while the argument is a plain run of the line that can be sliced.
        let mut owned: Option<Vec<u8>> = None;
        let (mut in_double, mut in_single) = (false, false);
        let end = loop {
            let c = at(p);
            if in_double {
                let buf = owned.get_or_insert_with(Vec::new);
                if c == b'\\'
                    && at(p + 1) == b'x'
                    && let (Some(hi), Some(lo)) = (hex_value(at(p + 2)), hex_value(at(p + 3)))
                {
                    buf.push(hi * 16 + lo);
                    p += 4;
                    continue;
                }
                if c == b'\\' && at(p + 1) != 0 {
                    buf.push(match at(p + 1) {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                    p += 2;
                } else if c == b'"' {
                    if at(p + 1) != 0 && !is_space(at(p + 1)) {
                        return Err(ProtocolError::UnbalancedQuotes);
                    }
                    p += 1;
                    break p;
                } else if c == 0 {
                    return Err(ProtocolError::UnbalancedQuotes);
                } else {
                    buf.push(c);
                    p += 1;
                }
            } else if in_single {
                let buf = owned.get_or_insert_with(Vec::new);
                if c == b'\\' && at(p + 1) == b'\'' {
                    buf.push(b'\'');
                    p += 2;
                } else if c == b'\'' {
                    if at(p + 1) != 0 && !is_space(at(p + 1)) {
                        return Err(ProtocolError::UnbalancedQuotes);
                    }
                    p += 1;
                    break p;
                } else if c == 0 {
                    return Err(ProtocolError::UnbalancedQuotes);
                } else {
                    buf.push(c);
                    p += 1;
                }
            } else {
                match c {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => break p,
                    b'"' | b'\'' => {
                        // From here on the argument is built, not sliced.
                        owned.get_or_insert_with(|| line[start..p].to_vec());
                        if c == b'"' {
                            in_double = true;
                        } else {
                            in_single = true;
                        }
                    }
                    _ => {
                        if let Some(buf) = owned.as_mut() {
                            buf.push(c);
                        }
                    }
                }
                p += 1;
            }
        };
        args.push(match owned {
            Some(v) => Arg::Owned(v),
            None => Arg::Range(start, end),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(line: &str) -> Result<Vec<Vec<u8>>, ProtocolError> {
        let line = line.as_bytes();
        Ok(split_args(line)?
            .into_iter()
            .map(|a| match a {
                Arg::Range(s, e) => line[s..e].to_vec(),
                Arg::Owned(v) => v,
            })
            .collect())
    }

    fn ok(line: &str, want: &[&[u8]]) {
        let got = split(line).unwrap();
        let want: Vec<Vec<u8>> = want.iter().map(|w| w.to_vec()).collect();
        assert_eq!(got, want, "{line:?}");
    }

    #[test]
    fn sdssplitargs_rules() {
        ok("", &[]);
        ok("   \t ", &[]);
        ok("PING", &[b"PING"]);
        ok("  SET  k   v ", &[b"SET", b"k", b"v"]);
        ok(r#"SET k "a b""#, &[b"SET", b"k", b"a b"]);
        ok(r#"SET k """#, &[b"SET", b"k", b""]);
        ok(r#""\n\r\t\b\a\\\"\q""#, &[b"\n\r\t\x08\x07\\\"q"]);
        ok(r#""\x41\x4a\xff\x4""#, &[b"AJ\xffx4"]);
        ok(r#"'a\'b\n'"#, &[b"a'b\\n"]);
        ok(r#"'x"y'"#, &[b"x\"y"]);
        ok(r#"a"b c""#, &[b"ab c"]);
        ok("a'b c'", &[b"ab c"]);
        ok("\"a\"\tb", &[b"a", b"b"]);
        // \v and \f separate arguments only between them, not inside an unquoted one.
        ok("a\x0bb", &[b"a\x0bb"]);
        ok("\x0ba", &[b"a"]);
        ok("a\0b c", &[b"a"]);
        ok("\"a\x0b\"\x0bb", &[b"a\x0b", b"b"]);
    }

    #[test]
    fn sdssplitargs_unbalanced() {
        for line in [
            r#"SET k "a"#,
            r#"SET k "a"b"#,
            r#"'a'b"#,
            r#"'abc"#,
            r#""abc\"#,
            r#""a\x4"#,
            "\"a\0\"",
        ] {
            assert_eq!(
                split(line),
                Err(ProtocolError::UnbalancedQuotes),
                "{line:?}"
            );
        }
    }

    /// Feeds `input` in `chunk`-byte reads; the commands decoded and the bytes examined.
    fn trickle(input: &[u8], chunk: usize) -> (usize, usize) {
        let mut d = Decoder::default();
        let mut buf = BytesMut::new();
        let mut commands = 0;
        for piece in input.chunks(chunk) {
            buf.extend_from_slice(piece);
            while d.decode(&mut buf).unwrap().is_some() {
                commands += 1;
            }
        }
        (commands, d.examined)
    }

    #[test]
    fn no_rescans_of_a_trickling_command() {
        // 20000 arguments arriving 3 bytes at a time: each line is searched once.
        let mut wire = BytesMut::new();
        let args: Vec<String> = (0..20_000).map(|i| format!("arg{i}")).collect();
        crate::encode_command(&args, &mut wire);
        let (commands, examined) = trickle(&wire, 3);
        assert_eq!(commands, 1);
        assert!(
            examined <= wire.len(),
            "examined {examined} of {} bytes",
            wire.len()
        );

        // A 60 KB inline line and a long count line, one byte at a time.
        let mut line = vec![b'a'; 60_000];
        line.extend_from_slice(b"\r\n");
        assert_eq!(trickle(&line, 1), (1, line.len()));
        let mut line = b"*".to_vec();
        line.extend(std::iter::repeat_n(b'0', 60_000));
        line.extend_from_slice(b"1\r\n$1\r\nx\r\n");
        let mut d = Decoder::default();
        let mut buf = BytesMut::new();
        for &b in &line {
            buf.extend_from_slice(&[b]);
            if d.decode(&mut buf).is_err() {
                break;
            }
        }
        assert!(d.examined <= line.len());
    }

    #[test]
    fn string2ll_rules() {
        assert_eq!(parse_ll(b"0"), Some(0));
        assert_eq!(parse_ll(b"12"), Some(12));
        assert_eq!(parse_ll(b"-1"), Some(-1));
        assert_eq!(parse_ll(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_ll(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"-",
            b"-0",
            b"01",
            b"+1",
            b" 1",
            b"1 ",
            b"1a",
            b"9223372036854775808",
            b"-9223372036854775809",
            b"99999999999999999999999",
        ] {
            assert_eq!(parse_ll(bad), None, "{bad:?}");
        }
    }
}
