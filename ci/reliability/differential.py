#!/usr/bin/env python3
"""Differential test: the same random command sequences to the server under test and to
redis-server (the reference), every raw reply compared byte for byte.

Two servers are started fresh (the one under test from --server-bin, the reference from
--reference-bin, default `redis-server` on PATH, started as a redis kind: --appendonly yes
--save ''), both get FLUSHALL, then sequences of 10..80 random commands over two client
connections each (A and B, the same bytes to both servers; B is used now and then, and for
WATCH conflicts). The key space is six keys (one empty, one with spaces, one binary, one full
of glob characters) so commands collide; values and arguments aim at edge cases (integers
near the i64 limits, "-0", " 1", "1e3", floats, nan/inf, empty and long strings, negative and
huge offsets, wrong arity, conflicting options, overflowing expire times).

Replies are compared as raw bytes except: TTL/PTTL/EXPIRETIME/PEXPIRETIME within 1 s /
1500 ms (negative codes exact), KEYS as sorted sets, SCAN iterated to the end on each server
and the key sets compared (cursors masked), TIME and RANDOMKEY by shape only. Relative
expire times are unique per sequence and at least 5 s apart, absolute ones far in the past
or far in the future, so no reply depends on timing; a key made to expire is waited for
with a bounded poll on both servers. Time-dependent introspection (INFO, CLIENT, OBJECT,
MEMORY, COMMAND, CONFIG, DEBUG) is not sent.

On a mismatch the failing command and every command since the last FLUSHALL (both
connections) are kept, shrunk by replaying subsets against both fresh-flushed servers
(bounded), counted as one failure; both servers are flushed and the run goes on. At the end
each distinct mismatch (command name + first lines of the two replies) is printed with its
repro, then the tally. `--plant flip-reply` corrupts one reference reply to show the
comparison bites.
"""

import os
import random
import re
import shutil
import socket
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import common  # noqa: E402

# ---------------------------------------------------------------- raw replies


class Closed(Exception):
    """The server closed the connection or did not answer in time."""


class RawConn(common.Conn):
    """A RESP2 connection that returns each reply as (raw bytes, tree). It reads lines and
    bulks as common.Conn does, but never compacts its buffer in the middle of a reply (the
    raw bytes are sliced out of it) and reports every failure as Closed.

    Trees: ('+', line) ('-', line) (':', line) ('$', bytes|None) ('*', [trees]|None), and
    ('?', line) for anything else; lines are the bytes after the type byte, verbatim, so two
    trees are equal exactly when the raw replies are."""

    def __init__(self, port, timeout):
        try:
            super().__init__(port, timeout)
        except OSError as e:
            raise Closed(f"connect: {e}") from e

    def send(self, data):
        try:
            self.sock.sendall(data)
        except OSError as e:
            raise Closed(f"send: {e}") from e

    def _fill(self):
        try:
            d = self.sock.recv(1 << 20)
        except socket.timeout as e:
            raise Closed("no reply within the timeout") from e
        except OSError as e:
            raise Closed(f"recv: {e}") from e
        if not d:
            raise Closed("connection closed by the server")
        if len(self.buf) - self.pos > (1 << 28):
            raise Closed("reply over 256 MiB")
        self.buf += d

    def _parse(self, depth):
        if depth > 32:
            raise Closed("reply nested deeper than 32")
        line = self._line()
        t, rest = line[:1], line[1:]
        if t in (b"+", b"-", b":"):
            return (t.decode(), rest)
        if t in (b"$", b"*"):
            try:
                n = int(rest)
            except ValueError:
                return ("?", line)
            if n < 0:
                return (t.decode(), None)
            if t == b"*":
                if n > 1_000_000:
                    raise Closed(f"array of {n} elements")
                return ("*", [self._parse(depth + 1) for _ in range(n)])
            try:
                return ("$", self._exact(n))
            except common.ProtocolError as e:
                raise Closed(str(e)) from e
        return ("?", line)

    def read_reply(self):
        if self.pos:
            del self.buf[:self.pos]
            self.pos = 0
        tree = self._parse(0)
        return bytes(self.buf[:self.pos]), tree

    def call(self, *args):
        self.send(common.encode(*args))
        return self.read_reply()[1]


def escape_bytes(b, quote=False):
    """Bytes as printable ASCII that redis-cli's double-quoted strings read back: backslash
    (and with `quote` the double quote) escaped, CR and LF as \\r and \\n, other bytes
    outside printable ASCII as \\xNN."""
    named = {0x5C: "\\\\", 0x0D: "\\r", 0x0A: "\\n"}
    if quote:
        named[0x22] = '\\"'
    return "".join(named.get(c) or (chr(c) if 0x20 <= c < 0x7F else "\\x%02x" % c) for c in b)


def esc(b, limit=300):
    """Bytes as a readable one-line string."""
    s = escape_bytes(b[:limit])
    return s + (f"...(+{len(b) - limit} bytes)" if len(b) > limit else "")


def quote_arg(a):
    """An argument as redis-cli's interactive prompt reads it."""
    if len(a) > 64:
        return f'<{len(a)} bytes: "{esc(a[:16])}...">'
    if a and all(0x21 <= c < 0x7F and c not in b"\"'\\" for c in a):
        return a.decode()
    return '"' + escape_bytes(a, quote=True) + '"'


def fmt_cmd(args):
    return " ".join(quote_arg(a) for a in args)


def first_line(tree):
    t, v = tree
    if t in ("+", "-", ":", "?"):
        return t + esc(v, 200)
    if t == "$":
        return "$-1 (nil)" if v is None else f'${len(v)} "{esc(v, 60)}"'
    if v is None:
        return "*-1 (nil array)"
    return f"*{len(v)}"


def encode_tree(tree):
    t, v = tree
    if t in ("+", "-", ":"):
        return t.encode() + v + b"\r\n"
    if t == "?":
        return v + b"\r\n"
    if v is None:
        return t.encode() + b"-1\r\n"
    if t == "$":
        return b"$%d\r\n%s\r\n" % (len(v), v)
    return b"*%d\r\n" % len(v) + b"".join(encode_tree(x) for x in v)


# ---------------------------------------------------------------- comparison

TIME_TOLERANCE = {b"TTL": 1, b"PTTL": 1500, b"EXPIRETIME": 1, b"PEXPIRETIME": 1500}


def as_int(v):
    try:
        return int(v)
    except ValueError:
        return None


def same(args, rt, tt):
    """True when the two reply trees count as the same answer to args."""
    if rt == tt:
        return True
    name = args[0].upper() if args else b""
    if name in TIME_TOLERANCE and rt[0] == ":" and tt[0] == ":":
        a, b = as_int(rt[1]), as_int(tt[1])
        if a is None or b is None or a < 0 or b < 0:
            return False
        return abs(a - b) <= TIME_TOLERANCE[name]
    if name == b"KEYS" and rt[0] == "*" and tt[0] == "*" and rt[1] is not None and tt[1] is not None:
        return sorted(rt[1]) == sorted(tt[1])
    if name == b"TIME":
        return shape_time(rt) and shape_time(tt)
    if name == b"RANDOMKEY":
        return rt[0] == "$" and tt[0] == "$" and (rt[1] is None) == (tt[1] is None)
    if name == b"SCAN":
        # inside EXEC only; the SCAN step iterates itself
        return (rt[0] == "*" and tt[0] == "*" and rt[1] is not None and tt[1] is not None
                and len(rt[1]) == len(tt[1]) == 2)
    return False


def shape_time(t):
    return (t[0] == "*" and t[1] is not None and len(t[1]) == 2
            and all(x[0] == "$" and x[1] is not None and x[1].isdigit() for x in t[1]))


KNOWN = {b"GET", b"SET", b"SETNX", b"SETEX", b"PSETEX", b"GETSET", b"GETDEL", b"GETEX", b"MGET",
         b"MSET", b"MSETNX", b"APPEND", b"STRLEN", b"INCR", b"DECR", b"INCRBY", b"DECRBY",
         b"INCRBYFLOAT", b"GETRANGE", b"SUBSTR", b"SETRANGE", b"LCS", b"DEL", b"UNLINK", b"EXISTS",
         b"TOUCH", b"TYPE", b"EXPIRE", b"PEXPIRE", b"EXPIREAT", b"PEXPIREAT", b"TTL", b"PTTL",
         b"EXPIRETIME", b"PEXPIRETIME", b"PERSIST", b"KEYS", b"RENAME", b"RENAMENX", b"COPY", b"MOVE",
         b"DBSIZE", b"FLUSHDB", b"FLUSHALL", b"SELECT", b"ECHO", b"PING", b"MULTI", b"EXEC",
         b"DISCARD", b"WATCH", b"UNWATCH", b"SCAN", b"TIME", b"RANDOMKEY"}


def cmd_name(args):
    name = args[0].upper() if args else b""
    return name if name in KNOWN else b"(unknown command)"


def first_diff(args, rt, tt, queued):
    """Where two replies differ: (command name, ref tree, test tree) of the first differing
    leaf; an EXEC reply is compared element by element against the queued commands."""
    name = cmd_name(args)
    if (name == b"EXEC" and queued is not None and rt[0] == "*" and tt[0] == "*"
            and rt[1] is not None and tt[1] is not None and len(rt[1]) == len(tt[1]) == len(queued)):
        for q, a, b in zip(queued, rt[1], tt[1]):
            if not same(q, a, b):
                n, x, y = first_diff(q, a, b, None)
                return b"EXEC>" + n, x, y
        return None
    if same(args, rt, tt):
        return None
    if (rt[0] == "*" and tt[0] == "*" and rt[1] is not None and tt[1] is not None
            and len(rt[1]) == len(tt[1]) and name not in (b"KEYS",)):
        for a, b in zip(rt[1], tt[1]):
            if a != b:
                return first_diff([name], a, b, None)[0:1] + (a, b)
    return name, rt, tt


# ---------------------------------------------------------------- the generator

KEYSPACE = [b"k1", b"k2", b"key with space", b"bin\x00\r\n\xff", b"a*b[c]\\d", b""]

INTS = [b"0", b"1", b"-1", b"2", b"7", b"10", b"100", b"-100", b"123456789",
        b"9223372036854775807", b"-9223372036854775808", b"9223372036854775806",
        b"-9223372036854775807", b"9223372036854775808", b"-9223372036854775809",
        b"18446744073709551616", b"99999999999999999999", b"-0", b"+1", b" 1", b"1 ", b"01",
        b"00", b"1e3", b"1.5", b"0x1", b"", b"abc", b"3.0", b"1\x00", b"-", b"4611686018427387904"]

FLOATS = [b"0", b"1", b"-1", b"1.5", b"-1.5", b"0.1", b"0.2", b"1e3", b"1E3", b"1e-3", b"3.0e2",
          b"1.7976931348623157e308", b"-1.7976931348623157e308", b"1e308", b"5e-324", b"1e-320",
          b"nan", b"NaN", b"-nan", b"inf", b"-inf", b"+inf", b"Infinity", b" 1", b"1 ", b"",
          b"abc", b"1.0", b"0x10", b"10.50", b"1e400", b"-0", b"-0.0", b"+1.5", b".5", b"5.",
          b"1_000", b"0.30000000000000004", b"123456789012345678", b"9223372036854775807",
          b"1.1", b"3.14159265358979323846", b"2.5e-5", b"1e21", b"1e20", b"12345678.9"]

WORDS = [b"hello", b"hello world", b"ohmytext", b"mynewtext", b"abcdefg", b"xbdxfgx",
         b"\x00\xff\r\n", b"\xc3\xa9t\xc3\xa9", b"OK", b"-ERR not an error", b"+x", b"*1",
         b"a\r\nb", b"  ", b"\t", b"nil", b"true", b"0.0", b"1e3 ", b"string"]

KEY_PATTERNS = [b"*", b"k*", b"k?", b"k[12]", b"k[^1]", b"k[!1]", b"k[1-2]", b"k[2-1]",
                b"*space*", b"a\\*b*", b"a\\*b\\[c\\]\\\\d", b"a*b[[]c*", b"[a-z]*", b"[z-a]*",
                b"", b"\\", b"*\\", b"[", b"k[", b"[]]*", b"*[*", b"bin*", b"?", b"??", b"*\x00*",
                b"h[a-]*", b"key*with*", b"K*", b"*[a]*", b"[^a-z]*", b"**", b"*?*", b"a\\",
                b"\\k1", b"k\\?", b"\\*", b"[\\]]*", b"[a-]*", b"[-a]*", b"*d", b"*\\d",
                b"bin?\r\n*", b"*\xff"]

# No NUL in a name that is a command's name up to the NUL: Redis 7.0 hashes the whole name
# (seeded at random per process) but compares it as a C string, so whether "set\0" runs SET
# differs from one redis-server process to the next.
UNKNOWN = [b"FOO", b"GETT", b"", b"foo\x00bar", b"SETT", b"MSETT", b"hello world", b"INCRBYFLOATX",
           b"GET\r\n", b"\xff\xfe", b"x" * 200]


class TtlPicker:
    """Expire arguments that make no reply depend on timing: relative times unique and at
    least 5 s apart within a sequence (so GT/LT never compare equal times set a millisecond
    apart), absolute times far in the past or far in the future."""

    REL_S = [100, 1000, 3600, 86400, 1_000_000, 50_000_000, 9_223_372_036_854]
    ABS_FUTURE_S = [4_102_444_800, 4_200_000_000, 10_000_000_000, 32_503_680_000,
                    9_223_372_036_854]
    ABS_PAST_S = [1, 2, 1000, 1_000_000_000, 1_500_000_000]

    def __init__(self, rng):
        self.rng = rng
        self.used_ms = []

    def reset(self):
        self.used_ms = []

    def _unique_ms(self, ms, step_ms):
        for _ in range(10_000):
            if all(abs(ms - u) >= 5000 for u in self.used_ms):
                break
            ms += step_ms
        self.used_ms.append(ms)
        return ms

    def rel(self, unit_ms, allow_bad=True):
        r = self.rng.random()
        if r < 0.75 or not allow_bad:
            s = self.rng.choice(self.REL_S) + self.rng.randrange(0, 1000)
            if unit_ms:
                ms = self._unique_ms(s * 1000 + self.rng.randrange(0, 1000), 7000)
                return str(ms).encode()
            ms = self._unique_ms(s * 1000, 7000)
            return str(ms // 1000).encode()
        if r < 0.8:
            return b"0"
        if r < 0.85:
            return self.rng.choice([b"-1", b"-100", b"-9223372036854775808"])
        if r < 0.92:
            return self.rng.choice([b"9223372036854775807", b"9223372036854775", b"9223372036854776",
                                    b"9223372036854775000", b"4611686018427387904"])
        return self.rng.choice([b"abc", b"1.5", b"", b" 100", b"100 ", b"1e3", b"+100", b"0100",
                                b"9223372036854775808"])

    def absolute(self, unit_ms):
        r = self.rng.random()
        if r < 0.6:
            s = self.rng.choice(self.ABS_FUTURE_S) + self.rng.randrange(0, 10_000)
            return str(s * 1000 + self.rng.randrange(0, 1000) if unit_ms else s).encode()
        if r < 0.8:
            s = self.rng.choice(self.ABS_PAST_S)
            return str(s * 1000 if unit_ms else s).encode()
        if r < 0.87:
            return self.rng.choice([b"0", b"-1", b"-1000"])
        if r < 0.94:
            return self.rng.choice([b"9223372036854775807", b"9223372036854775", b"9223372036854776",
                                    b"-9223372036854775808"])
        return self.rng.choice([b"abc", b"1.5", b"", b" 4102444800", b"4102444800 "])


class Gen:
    """Random steps: ('cmd', conn, args), ('lcs', conn, args), ('scan', conn, args),
    ('wait_expired', conn, key). A generator may return several steps (a scenario)."""

    def __init__(self, rng):
        self.rng = rng
        self.ttl = TtlPicker(rng)
        self.fresh = 0
        self.table = [
            (8, self.g_get), (12, self.g_set), (2, self.g_setnx), (3, self.g_setex),
            (2, self.g_getset), (2, self.g_getdel), (5, self.g_getex), (3, self.g_mget),
            (3, self.g_mset), (4, self.g_append), (2, self.g_strlen), (7, self.g_incr),
            (5, self.g_incrbyfloat), (4, self.g_getrange), (4, self.g_setrange), (3, self.g_lcs),
            (4, self.g_del), (3, self.g_exists), (2, self.g_type), (9, self.g_expire),
            (6, self.g_ttl), (2, self.g_persist), (4, self.g_keys), (3, self.g_rename),
            (3, self.g_copy), (2, self.g_move), (2, self.g_dbsize), (1, self.g_flushdb),
            (2, self.g_select), (2, self.g_echo_ping), (6, self.g_txn), (4, self.g_watch_scenario),
            (1, self.g_expire_wait), (2, self.g_unknown), (1, self.g_scan), (1, self.g_masked),
        ]
        self.total = sum(w for w, _ in self.table)

    # -- pieces
    def key(self):
        if self.rng.random() < 0.03:
            self.fresh += 1
            return b"fresh:%d" % self.fresh
        return self.rng.choice(KEYSPACE)

    def kw(self, word):
        """A keyword, sometimes in odd case."""
        if self.rng.random() < 0.2:
            return bytes(c ^ 0x20 if 0x41 <= (c & ~0x20) <= 0x5A and self.rng.random() < 0.5 else c
                         for c in word)
        return word

    def long_value(self):
        n = self.rng.choice([100, 500, 1000, 2000, 3000, 3000, 3000, 3000, 3000, 70_000])
        alpha = self.rng.choice([b"ab", b"abc", b"xyz", b"abcdefghijklmnopqrstuvwxyz0123456789"])
        return bytes(self.rng.choice(alpha) for _ in range(n))

    def value(self):
        r = self.rng.random()
        if r < 0.3:
            return self.rng.choice(INTS)
        if r < 0.45:
            return self.rng.choice(FLOATS)
        if r < 0.7:
            return self.rng.choice(WORDS)
        if r < 0.75:
            return b""
        if r < 0.82:
            return self.long_value()
        if r < 0.92:
            return str(self.rng.choice([self.rng.randrange(-1000, 1000),
                                        self.rng.randrange(-2 ** 63, 2 ** 63)])).encode()
        return repr(self.rng.uniform(-1e6, 1e6)).encode()

    def intarg(self):
        if self.rng.random() < 0.5:
            return str(self.rng.randrange(-20, 40)).encode()
        return self.rng.choice(INTS)

    def c(self, *args, conn=None):
        if conn is None:
            conn = "B" if self.rng.random() < 0.1 else "A"
        return [("cmd", conn, list(args))]

    # -- commands
    def g_get(self):
        r = self.rng.random()
        if r < 0.9:
            return self.c(self.kw(b"GET"), self.key())
        return self.c(b"GET", *[self.key() for _ in range(self.rng.choice([0, 2]))])

    def set_expiry(self):
        w = self.rng.choice([b"EX", b"PX", b"EXAT", b"PXAT"])
        v = self.ttl.rel(w == b"PX") if w in (b"EX", b"PX") else self.ttl.absolute(w == b"PXAT")
        return [self.kw(w), v]

    def g_set(self):
        k, v = self.key(), self.value()
        opts = []
        r = self.rng.random()
        if r < 0.65:  # mostly valid combinations
            if self.rng.random() < 0.5:
                opts.append(self.set_expiry() if self.rng.random() < 0.85 else [self.kw(b"KEEPTTL")])
            if self.rng.random() < 0.35:
                opts.append([self.kw(self.rng.choice([b"NX", b"XX"]))])
            if self.rng.random() < 0.3:
                opts.append([self.kw(b"GET")])
            self.rng.shuffle(opts)
            flat = [x for o in opts for x in o]
        else:
            pool = [[b"NX"], [b"XX"], [b"GET"], [b"KEEPTTL"], self.set_expiry(), self.set_expiry(),
                    [b"EX"], [b"PX"], [b"EXAT"], [b"FOO"], [b"EX", b"abc"], [b"EX", b"0"],
                    [b"PX", b"-1"], [b"EX", b"9223372036854775807"], [b"PX", b"9223372036854775807"],
                    [b"PXAT", b"9223372036854775807"], [b"EXAT", b"9223372036854775807"],
                    [b"EX", self.ttl.rel(False, allow_bad=False), b"extra"], [b"NX", b"NX"], [b"GET", b"GET"], [b""], [b"ex"],
                    [b"KEEPTTL", b"KEEPTTL"], [b"EX", b"1.5"]]
            flat = []
            for _ in range(self.rng.randint(1, 3)):
                flat += [self.kw(x) if x.isalpha() else x for x in self.rng.choice(pool)]
        if self.rng.random() < 0.03:
            return self.c(b"SET", k)  # arity
        return self.c(self.kw(b"SET"), k, v, *flat)

    def g_setnx(self):
        if self.rng.random() < 0.1:
            return self.c(b"SETNX", self.key())
        return self.c(self.kw(b"SETNX"), self.key(), self.value())

    def g_setex(self):
        name = self.rng.choice([b"SETEX", b"PSETEX"])
        r = self.rng.random()
        t = self.ttl.rel(name == b"PSETEX")
        if r < 0.05:
            return self.c(name, self.key(), t)
        if r < 0.08:
            return self.c(name, self.key(), t, self.value(), b"extra")
        return self.c(self.kw(name), self.key(), t, self.value())

    def g_getset(self):
        if self.rng.random() < 0.05:
            return self.c(b"GETSET", self.key())
        return self.c(self.kw(b"GETSET"), self.key(), self.value())

    def g_getdel(self):
        if self.rng.random() < 0.05:
            return self.c(b"GETDEL", self.key(), self.key())
        return self.c(self.kw(b"GETDEL"), self.key())

    def g_getex(self):
        k = self.key()
        r = self.rng.random()
        if r < 0.2:
            opts = []
        elif r < 0.7:
            w = self.rng.choice([b"EX", b"PX", b"EXAT", b"PXAT", b"PERSIST"])
            if w == b"PERSIST":
                opts = [self.kw(w)]
            else:
                opts = [self.kw(w), self.ttl.rel(w == b"PX") if w in (b"EX", b"PX")
                        else self.ttl.absolute(w == b"PXAT")]
        else:
            pool = [[b"PERSIST"], [b"EX", self.ttl.rel(False, allow_bad=False)],
                    [b"PX", self.ttl.rel(True, allow_bad=False)], [b"EX"], [b"PERSIST", b"x"],
                    [b"EX", b"0"], [b"PX", b"-5"], [b"EXAT", b"0"], [b"EX", b"9223372036854775807"],
                    [b"KEEPTTL"], [b"NX"], [b"GET"], [b"FOO"], [b"EX", b"abc"], [b"EXAT", b"1"],
                    [b"PXAT", b"9223372036854775807"], [b"EX", b"9223372036854775"]]
            opts = []
            for _ in range(self.rng.randint(1, 3)):
                opts += [self.kw(x) if x.isalpha() else x for x in self.rng.choice(pool)]
        return self.c(self.kw(b"GETEX"), k, *opts)

    def g_mget(self):
        n = self.rng.choice([0, 1, 2, 3, 6])
        return self.c(self.kw(b"MGET"), *[self.key() for _ in range(n)])

    def g_mset(self):
        name = self.rng.choice([b"MSET", b"MSET", b"MSETNX"])
        n = self.rng.choice([1, 1, 2, 3])
        args = []
        for _ in range(n):
            args += [self.key(), self.value()]
        if self.rng.random() < 0.1:
            args = args[:-1] if self.rng.random() < 0.5 else []
        return self.c(self.kw(name), *args)

    def g_append(self):
        if self.rng.random() < 0.05:
            return self.c(b"APPEND", self.key())
        return self.c(self.kw(b"APPEND"), self.key(), self.value())

    def g_strlen(self):
        if self.rng.random() < 0.05:
            return self.c(b"STRLEN")
        return self.c(self.kw(b"STRLEN"), self.key())

    def g_incr(self):
        name = self.rng.choice([b"INCR", b"DECR", b"INCRBY", b"DECRBY"])
        k = self.key()
        # often first put a number near the limits there
        pre = []
        if self.rng.random() < 0.3:
            pre = self.c(b"SET", k, self.rng.choice(INTS[:17] + [self.value()]), conn="A")
        if name in (b"INCR", b"DECR"):
            args = [k] if self.rng.random() > 0.05 else [k, b"1"]
        else:
            args = [k, self.intarg()] if self.rng.random() > 0.05 else [k]
        return pre + self.c(self.kw(name), *args)

    def g_incrbyfloat(self):
        k = self.key()
        pre = []
        if self.rng.random() < 0.3:
            pre = self.c(b"SET", k, self.floatarg(), conn="A")
        if self.rng.random() < 0.05:
            return pre + self.c(b"INCRBYFLOAT", k)
        if self.rng.random() < 0.3:
            # A run of small steps on one key: rounding to 64 bits accumulates.
            step = self.rng.choice([b"0.1", b"-0.3", b"1.1", b"0.7", b"1e-5", b"3.3e3"])
            return pre + [x for _ in range(self.rng.randrange(2, 12))
                          for x in self.c(b"INCRBYFLOAT", k, step)]
        return pre + self.c(self.kw(b"INCRBYFLOAT"), k, self.floatarg())

    def floatarg(self):
        """A float text: a listed edge case, or one made up (decimal with up to 40 digits and
        any exponent, a hex float, or a value near the ends of long double's range)."""
        r = self.rng.random()
        if r < 0.5:
            return self.rng.choice(FLOATS + INTS[:12])
        rng = self.rng
        sign = rng.choice([b"", b"", b"-", b"+"])
        if r < 0.75:
            digits = "".join(rng.choice("0123456789") for _ in range(rng.randrange(1, 41)))
            cut = rng.randrange(0, len(digits) + 1)
            text = digits[:cut] + ("." if rng.random() < 0.7 else "") + digits[cut:]
            if rng.random() < 0.5:
                text += rng.choice("eE") + str(rng.choice([rng.randrange(-30, 30),
                                                           rng.randrange(-5000, 5000)]))
            return sign + text.encode()
        if r < 0.85:
            digits = "".join(rng.choice("0123456789abcdefABCDEF") for _ in range(rng.randrange(1, 20)))
            cut = rng.randrange(0, len(digits) + 1)
            text = rng.choice(["0x", "0X"]) + digits[:cut] + "." + digits[cut:]
            if rng.random() < 0.7:
                text += rng.choice("pP") + str(rng.randrange(-16500, 16400))
            return sign + text.encode()
        # Near the largest finite value, the smallest subnormal, and the 17th decimal.
        return sign + rng.choice([
            b"1.18973149535723176502e4932", b"1.1897314953572317651e4932", b"1.19e4932",
            b"3.6e-4951", b"1.8e-4951", b"1.9e-4951", b"0x1p-16445", b"0x1p16383",
            b"0x1.fffffffffffffffep16383", b"0x1p-16446", b"0x3p-16446",
            b"0.000003814697265625", b"0.000011444091796875", b"0.000000000000000005",
            b"0.000000000000000015", b"9.99999999999999999e-1", b"99999999999999999.999999",
            b"18446744073709551615", b"18446744073709551616", b"36893488147419103231"])

    def rangearg(self):
        return self.rng.choice([b"0", b"1", b"-1", b"-2", b"3", b"5", b"100", b"-100", b"10000",
                                b"9223372036854775807", b"-9223372036854775808", b"abc", b"",
                                b"1.5", b" 1", b"-0", b"4294967296", b"-4294967297"])

    def g_getrange(self):
        name = self.rng.choice([b"GETRANGE", b"SUBSTR"])
        if self.rng.random() < 0.05:
            return self.c(name, self.key(), b"0")
        return self.c(self.kw(name), self.key(), self.rangearg(), self.rangearg())

    def g_setrange(self):
        k = self.key()
        v = self.rng.choice([b"", b"x", b"hello", b"\x00\xff", self.value()])
        r = self.rng.random()
        if r < 0.7:
            off = self.rng.choice([b"0", b"1", b"3", b"5", b"10", b"100", b"4096", b"5000"])
        elif r < 0.85:
            off = self.rng.choice([b"-1", b"abc", b"", b" 1", b"1.5", b"9223372036854775807",
                                   b"-9223372036854775808", b"9223372036854775808"])
        else:
            # beyond 512 MB: always an error when v is not empty, and no allocation when it is
            off = self.rng.choice([b"536870912", b"536870913", b"4294967296"])
            if self.rng.random() < 0.3:
                off, v = b"536870911", b""
        if self.rng.random() < 0.05:
            return self.c(b"SETRANGE", k, off)
        return self.c(self.kw(b"SETRANGE"), k, off, v)

    def g_lcs(self):
        k1, k2 = self.key(), self.key()
        steps = []
        if self.rng.random() < 0.4:
            steps += self.c(b"MSET", k1, self.rng.choice(WORDS + [self.long_value()[:300]]),
                            k2, self.rng.choice(WORDS + [self.long_value()[:300]]), conn="A")
        opts = []
        r = self.rng.random()
        if r < 0.7:
            for o in self.rng.sample([[b"LEN"], [b"IDX"], [b"MINMATCHLEN", None], [b"WITHMATCHLEN"]],
                                     self.rng.randint(0, 3)):
                if o[0] == b"MINMATCHLEN":
                    o = [o[0], self.rng.choice([b"0", b"1", b"2", b"3", b"4", b"-1", b"100"])]
                opts += [self.kw(o[0])] + o[1:]
        else:
            pool = [[b"LEN"], [b"IDX"], [b"MINMATCHLEN"], [b"MINMATCHLEN", b"abc"],
                    [b"MINMATCHLEN", b"9223372036854775808"], [b"MINMATCHLEN", b"-9223372036854775808"],
                    [b"WITHMATCHLEN"], [b"FOO"], [b"LEN", b"IDX"], [b""]]
            for _ in range(self.rng.randint(1, 3)):
                opts += self.rng.choice(pool)
        if self.rng.random() < 0.05:
            return steps + [("lcs", "A", [b"LCS", k1])]
        return steps + [("lcs", "A", [self.kw(b"LCS"), k1, k2] + opts)]

    def g_del(self):
        name = self.rng.choice([b"DEL", b"UNLINK"])
        return self.c(self.kw(name), *[self.key() for _ in range(self.rng.choice([0, 1, 1, 2, 3]))])

    def g_exists(self):
        name = self.rng.choice([b"EXISTS", b"TOUCH"])
        return self.c(self.kw(name), *[self.key() for _ in range(self.rng.choice([0, 1, 1, 2, 4]))])

    def g_type(self):
        return self.c(self.kw(b"TYPE"), *[self.key() for _ in range(self.rng.choice([1, 1, 1, 0, 2]))])

    def g_expire(self):
        name = self.rng.choice([b"EXPIRE", b"PEXPIRE", b"EXPIREAT", b"PEXPIREAT"])
        ms = name.startswith(b"P")
        t = self.ttl.absolute(ms) if name.endswith(b"AT") else self.ttl.rel(ms)
        k = self.key()
        pre = []
        if self.rng.random() < 0.25:
            pre = self.c(b"SET", k, b"v", conn="A")
        r = self.rng.random()
        if r < 0.45:
            opts = []
        elif r < 0.8:
            opts = [self.kw(self.rng.choice([b"NX", b"XX", b"GT", b"LT"]))]
        else:
            opts = [self.kw(self.rng.choice([b"NX", b"XX", b"GT", b"LT", b"FOO", b"", b"KEEPTTL", b"NXX",
                                             b"\xff", b"n\x00x", b"\xc3\xa9"]))
                    for _ in range(self.rng.randint(2, 3))]
        if self.rng.random() < 0.04:
            return pre + self.c(name, k)
        return pre + self.c(self.kw(name), k, t, *opts)

    def g_ttl(self):
        name = self.rng.choice([b"TTL", b"PTTL", b"EXPIRETIME", b"PEXPIRETIME"])
        if self.rng.random() < 0.04:
            return self.c(name, self.key(), self.key())
        return self.c(self.kw(name), self.key())

    def g_persist(self):
        if self.rng.random() < 0.05:
            return self.c(b"PERSIST")
        return self.c(self.kw(b"PERSIST"), self.key())

    def g_keys(self):
        if self.rng.random() < 0.04:
            return self.c(b"KEYS")
        return self.c(self.kw(b"KEYS"), self.rng.choice(KEY_PATTERNS))

    def g_rename(self):
        name = self.rng.choice([b"RENAME", b"RENAMENX"])
        k1 = self.key()
        k2 = k1 if self.rng.random() < 0.15 else self.key()
        if self.rng.random() < 0.05:
            return self.c(name, k1)
        return self.c(self.kw(name), k1, k2)

    def dbarg(self):
        return self.rng.choice([b"0", b"1", b"1", b"2", b"15", b"16", b"-1", b"abc", b"", b"1 ",
                                b"01", b"9223372036854775807", b"2147483648", b"1.0"])

    def g_copy(self):
        k1 = self.key()
        k2 = k1 if self.rng.random() < 0.1 else self.key()
        opts = []
        r = self.rng.random()
        if r < 0.4:
            pass
        elif r < 0.8:
            if self.rng.random() < 0.6:
                opts += [self.kw(b"DB"), self.dbarg()]
            if self.rng.random() < 0.5:
                opts.append(self.kw(b"REPLACE"))
            self.rng.shuffle(opts) if len(opts) == 1 else None
        else:
            pool = [[b"DB"], [b"REPLACE", b"REPLACE"], [b"FOO"], [b"DB", b"1", b"DB", b"2"], [b""]]
            opts = self.rng.choice(pool)
        if self.rng.random() < 0.04:
            return self.c(b"COPY", k1)
        return self.c(self.kw(b"COPY"), k1, k2, *opts)

    def g_move(self):
        if self.rng.random() < 0.05:
            return self.c(b"MOVE", self.key())
        return self.c(self.kw(b"MOVE"), self.key(), self.dbarg())

    def g_dbsize(self):
        return self.c(self.kw(b"DBSIZE"), *([b"x"] if self.rng.random() < 0.05 else []))

    def g_flushdb(self):
        opts = self.rng.choice([[], [], [b"ASYNC"], [b"SYNC"], [b"async"], [b"FOO"], [b"SYNC", b"ASYNC"]])
        return self.c(self.kw(b"FLUSHDB"), *opts)

    def g_select(self):
        arg = self.rng.choice([b"0", b"0", b"0", b"1", b"1", b"2"]) if self.rng.random() < 0.7 else self.dbarg()
        if self.rng.random() < 0.04:
            return self.c(b"SELECT")
        return self.c(self.kw(b"SELECT"), arg)

    def g_echo_ping(self):
        r = self.rng.random()
        if r < 0.4:
            return self.c(self.kw(b"ECHO"), *[self.value() for _ in range(self.rng.choice([1, 1, 1, 0, 2]))])
        return self.c(self.kw(b"PING"), *[self.value() for _ in range(self.rng.choice([0, 0, 1, 1, 2]))])

    def g_txn(self):
        r = self.rng.random()
        conn = "B" if self.rng.random() < 0.1 else "A"
        if r < 0.3:
            return self.c(self.kw(b"MULTI"), *([b"x"] if self.rng.random() < 0.05 else []), conn=conn)
        if r < 0.55:
            return self.c(self.kw(b"EXEC"), *([b"x"] if self.rng.random() < 0.05 else []), conn=conn)
        if r < 0.65:
            return self.c(self.kw(b"DISCARD"), *([b"x"] if self.rng.random() < 0.05 else []), conn=conn)
        if r < 0.9:
            return self.c(self.kw(b"WATCH"), *[self.key() for _ in range(self.rng.choice([0, 1, 1, 2]))],
                          conn=conn)
        return self.c(self.kw(b"UNWATCH"), *([b"x"] if self.rng.random() < 0.05 else []), conn=conn)

    def g_watch_scenario(self):
        """WATCH k, then one or two commands (mostly on B) that may or may not change k,
        then MULTI ... EXEC on A: EXEC must run or abort as in Redis."""
        k, o = self.key(), self.key()
        s = []
        if self.rng.random() < 0.5:
            s += self.c(b"SET", self.rng.choice([k, o]), self.rng.choice([b"1", b"v"]), conn="A")
        s += self.c(b"WATCH", k, *([self.key()] if self.rng.random() < 0.3 else []), conn="A")
        pool = [
            [b"SET", k, b"changed"], [b"DEL", k], [b"GET", k], [b"SET", o, b"other"], [b"DEL", o, k],
            [b"DEL", k, o], [b"UNLINK", o, k], [b"EXPIRE", k, self.ttl.rel(False, allow_bad=False)],
            [b"EXPIRE", k, self.ttl.rel(False, allow_bad=False), b"NX"], [b"EXPIRE", k, b"100", b"GT"],
            [b"PERSIST", k], [b"SET", k, b"x", b"NX"], [b"SET", k, b"x", b"XX"], [b"INCR", k],
            [b"INCRBY", k, b"0"], [b"APPEND", k, b""], [b"APPEND", k, b"x"], [b"FLUSHDB"],
            [b"FLUSHALL"], [b"RENAME", k, o], [b"RENAME", o, k], [b"RENAMENX", o, k],
            [b"RENAME", k, k], [b"MOVE", k, b"1"], [b"MOVE", o, b"1"], [b"COPY", o, k],
            [b"COPY", o, k, b"REPLACE"], [b"COPY", k, o, b"REPLACE"], [b"COPY", k, k, b"DB", b"1"],
            [b"EXPIRE", k, b"-1"], [b"EXPIREAT", k, b"1"], [b"GETEX", k, b"PERSIST"], [b"GETEX", k],
            [b"GETEX", k, b"EX", self.ttl.rel(False, allow_bad=False)], [b"SETRANGE", k, b"0", b""],
            [b"SETRANGE", k, b"0", b"z"], [b"MSET", o, b"1", k, b"2"], [b"MSETNX", k, b"1"],
            [b"MSETNX", o, b"1", k, b"2"], [b"GETDEL", k], [b"GETSET", k, b"g"], [b"TOUCH", k],
            [b"EXISTS", k], [b"SETNX", k, b"n"], [b"INCRBYFLOAT", k, b"0"], [b"DECRBY", k, b"1"],
            [b"SET", k, b"v", b"KEEPTTL"], [b"SET", k, b"v", b"PXAT", b"1"], [b"GETEX", k, b"PXAT", b"1"],
            [b"DEL", o]]
        who = "B" if self.rng.random() < 0.75 else "A"
        if self.rng.random() < 0.2:
            s += self.c(b"SELECT", b"1", conn=who)
        for _ in range(self.rng.choice([1, 1, 1, 2])):
            s += self.c(*self.rng.choice(pool), conn=who)
        s += self.c(b"MULTI", conn="A")
        for _ in range(self.rng.randint(0, 3)):
            s += self.rng.choice([self.g_get, self.g_set, self.g_incr, self.g_ttl, self.g_unknown,
                                  self.g_keys, self.g_expire])()
        s += self.c(self.rng.choice([b"EXEC", b"EXEC", b"DISCARD"]), conn="A")
        if who == "B" and [x for x in s if x[2][:1] == [b"SELECT"]]:
            s += self.c(b"SELECT", b"0", conn="B")
        return s

    def g_expire_wait(self):
        k = self.key()
        how = self.rng.choice([[b"SET", k, b"v", b"PX", b"20"], [b"PSETEX", k, b"30", b"v"],
                               [b"SET", k, b"v", b"EX", b"1"], [b"PEXPIRE", k, b"20"],
                               [b"SET", k, b"v", b"PX", b"25", b"GET"], [b"GETEX", k, b"PX", b"20"]])
        return [("short_ttl", "A", how), ("wait_expired", "A", [k])]

    def g_unknown(self):
        args = [self.rng.choice(UNKNOWN)] + [self.rng.choice([self.key(), self.value()])
                                             for _ in range(self.rng.choice([0, 1, 2, 4]))]
        return self.c(*args)

    def g_scan(self):
        opts = []
        if self.rng.random() < 0.5:
            opts += [self.kw(b"MATCH"), self.rng.choice(KEY_PATTERNS)]
        if self.rng.random() < 0.4:
            opts += [self.kw(b"COUNT"), self.rng.choice([b"1", b"2", b"10", b"1000", b"0", b"-1", b"abc"])]
        if self.rng.random() < 0.2:
            opts += [self.kw(b"TYPE"), self.rng.choice([b"string", b"list", b"foo", b"STRING"])]
        if self.rng.random() < 0.1:
            opts += self.rng.choice([[b"MATCH"], [b"FOO"], [b"COUNT"]])
        cursor = b"0" if self.rng.random() < 0.85 else self.rng.choice([b"abc", b"-1", b"", b"18446744073709551616"])
        return [("scan", "A", [self.kw(b"SCAN"), cursor] + opts)]

    def g_masked(self):
        return self.c(self.rng.choice([b"TIME", b"RANDOMKEY"]), *([b"x"] if self.rng.random() < 0.1 else []))

    def next(self):
        x = self.rng.uniform(0, self.total)
        for w, f in self.table:
            x -= w
            if x <= 0:
                steps = f()
                break
        else:
            steps = self.table[-1][1]()
        if self.rng.random() < 0.03:  # a wrong-case command name now and then
            kind, conn, args = steps[-1]
            if args and kind == "cmd":
                args[0] = bytes((c ^ 0x20) if 0x41 <= (c & ~0x20) <= 0x5A else c for c in args[0])
        return steps


# ---------------------------------------------------------------- the two servers

LCS_MAX_CELLS = 4_000_000  # (len a + 1) * (len b + 1): Redis allocates 4 bytes per cell


class Mismatch:
    def __init__(self, name, ref_tree, test_tree, step, history, note=""):
        self.name = name
        self.ref = ref_tree
        self.test = test_tree
        self.step = step
        self.history = history
        self.note = note

    def key(self):
        return (self.name, first_line(self.ref), first_line(self.test))

    def cls(self):
        """Coarser than key(): the reply types, and the first four words of error texts
        with quoted parts and numbers masked, so one bug shows once however many values
        hit it."""
        def kind(t):
            if t[0] in "-?" and t[1] is not None:
                text = re.sub(rb"'[^']*'( '[^']*')*", b"'..'", t[1])
                text = b" ".join(re.sub(rb"[0-9]+", b"N", text).split(b" ")[:4])
                return t[0] + text.decode("utf-8", "replace")
            return t[0]
        return (self.name, kind(self.ref), kind(self.test))


class Side:
    """One server's two client connections and the harness's own side connection."""

    def __init__(self, srv, timeout):
        self.srv = srv
        self.timeout = timeout
        self.conns = {}

    def open(self):
        self.close()
        for n in ("A", "B", "side"):
            self.conns[n] = RawConn(self.srv.port, self.timeout)

    def close(self):
        for c in self.conns.values():
            c.close()
        self.conns = {}


class Session:
    def __init__(self, ref_srv, test_srv, timeout, plant=None):
        self.ref = Side(ref_srv, timeout)
        self.test = Side(test_srv, timeout)
        self.plant = plant
        self.planted = False
        self.compared = 0
        self.history = []
        self.state = {}
        self.stats = None  # (command, reply kind) -> count, with --stats

    def reset(self):
        """Fresh connections on both servers, FLUSHALL on both, harness state cleared."""
        for side in (self.ref, self.test):
            if not side.srv.alive():
                raise common.ServerError(f"{side.srv.binary} is not running; log tail:\n"
                                         f"{side.srv.log_tail()}")
            try:
                side.open()
                r = side.conns["A"].call("FLUSHALL")
            except Closed as e:
                raise common.ServerError(f"{side.srv.binary}: {e}") from e
            if r != ("+", b"OK"):
                raise common.ServerError(f"FLUSHALL on {side.srv.binary}: {r!r}")
        self.history = []
        self.state = {c: {"multi": False, "queued": [], "db": 0} for c in ("A", "B")}

    def close(self):
        self.ref.close()
        self.test.close()

    def _exchange(self, conn, args):
        data = common.encode(*args)
        out = []
        for side in (self.ref, self.test):
            try:
                side.conns[conn].send(data)
            except Closed:
                pass  # the read below reports it
        for side in (self.ref, self.test):
            try:
                out.append(side.conns[conn].read_reply()[1])
            except Closed as e:
                out.append(("?", f"<{e}>".encode()))
        return out[0], out[1]

    def _track(self, conn, args, rt):
        """Follow MULTI state and the selected database from the reference's replies."""
        st = self.state[conn]
        name = args[0].upper() if args else b""
        if st["multi"]:
            if name == b"EXEC" and rt != ("-", b"ERR EXEC without MULTI"):
                if rt[0] == "*" and rt[1] is not None and len(rt[1]) == len(st["queued"]):
                    for q, r in zip(st["queued"], rt[1]):
                        if q[0].upper() == b"SELECT" and r == ("+", b"OK"):
                            st["db"] = int(q[1])
                st["multi"] = False
                st["queued"] = []
            elif name == b"DISCARD" and rt == ("+", b"OK"):
                st["multi"] = False
                st["queued"] = []
            elif rt == ("+", b"QUEUED"):
                st["queued"].append(args)
        else:
            if name == b"MULTI" and rt == ("+", b"OK"):
                st["multi"] = True
                st["queued"] = []
            elif name == b"SELECT" and rt == ("+", b"OK"):
                st["db"] = int(args[1])

    def _side_call(self, side, db, *args):
        c = side.conns["side"]
        r = c.call("SELECT", str(db))
        if r != ("+", b"OK"):
            raise Closed(f"side SELECT {db}: {r!r}")
        return c.call(*args)

    def step(self, step):
        """Runs one step on both servers. Returns (step as run, Mismatch or None, compared)."""
        kind, conn, args = step
        if kind == "wait_expired":
            return step, self._wait_expired(conn, args[0]), 0
        if kind == "settle":
            return step, None, 0  # the DBSIZE or EXEC it came before settles again
        if kind == "short_ttl":
            # a TTL short enough to run out during the sequence: only when its end is
            # waited for right after (not queued in a transaction that runs later)
            if self.state[conn]["multi"]:
                return step, None, 0
            kind = "cmd"
        if kind == "scan" and self.state[conn]["multi"]:
            kind = "cmd"
        if kind == "lcs":
            db = self.state[conn]["db"]
            n = []
            for k in args[1:3]:
                r = self._side_call(self.ref, db, "STRLEN", k)
                n.append(as_int(r[1]) if r[0] == ":" else 0)
            if len(n) == 2 and (n[0] + 1) * (n[1] + 1) > LCS_MAX_CELLS:
                args = [args[0], args[1], b"lcs:absent"] + args[3:]
                step = ("lcs", conn, args)
        queued = list(self.state[conn]["queued"])
        name = args[0].upper() if args else b""
        if name == b"DBSIZE" and not self.state[conn]["multi"]:
            self._settle(conn, [self.state[conn]["db"]])
        elif name == b"EXEC" and any(q[0].upper() == b"DBSIZE" for q in queued):
            self._settle(conn, range(16))
        rt, tt = self._exchange(conn, args)
        self.compared += 1
        if self.stats is not None:
            rkind = first_line(rt)[:40] if rt[0] == "-" else rt[0]
            key = (cmd_name(args).decode(), rkind)
            self.stats[key] = self.stats.get(key, 0) + 1
        if self.plant == "flip-reply" and not self.planted and self.compared >= 25:
            self.planted = True
            rt = ("+", b"PLANTED")
        self._track(conn, args, rt)
        self.history.append(step)
        if kind == "scan" and rt[0] == "*" and tt[0] == "*":
            return step, self._scan_rest(conn, args, rt, tt), 1
        d = first_diff(args, rt, tt, queued if args and args[0].upper() == b"EXEC" else None)
        if d is None:
            return step, None, 1
        note = ""
        if tt[0] == "?" and tt[1].startswith(b"<"):
            note = "the server under test did not answer"
        return step, Mismatch(d[0].decode("utf-8", "replace"), d[1], d[2], step, list(self.history),
                              note), 1

    def _scan_rest(self, conn, args, rt, tt):
        """SCAN: iterate each server to cursor 0 (bounded) and compare the key sets. A scan
        that starts at a cursor other than 0 depends on each server's hash table, so only
        that both answered an array is compared."""
        if args[1] != b"0":
            return None
        sets = []
        for side, first in ((self.ref, rt), (self.test, tt)):
            keys, reply, calls = set(), first, 0
            while True:
                if (reply[0] != "*" or reply[1] is None or len(reply[1]) != 2 or reply[1][0][0] != "$"
                        or reply[1][1][0] != "*" or reply[1][1][1] is None):
                    keys = ("bad reply", first_line(reply))
                    break
                keys |= {k[1] for k in reply[1][1][1]}
                cursor = reply[1][0][1]
                if cursor == b"0":
                    break
                calls += 1
                if calls > 2000:
                    keys = ("no end after 2000 calls", None)
                    break
                reply = side.conns[conn].call(args[0], cursor, *args[2:])
            sets.append(keys)
        if sets[0] == sets[1]:
            return None

        def show(s):
            if isinstance(s, tuple):
                return ("?", f"{s[0]}: {s[1]}".encode())
            return ("*", [("$", k) for k in sorted(s)])
        return Mismatch("SCAN", show(sets[0]), show(sets[1]), ("scan", conn, args), list(self.history),
                        "keys collected over the whole SCAN iteration, sorted")

    def _settle(self, conn, dbs):
        """Before DBSIZE: SCAN on the side connection of both servers, so keys whose time
        has passed (SET ... EXAT <past> leaves one behind in Redis 7.0) are deleted now and
        not whenever Redis's active expiry gets to them, which would make DBSIZE race."""
        for db in dbs:
            for side in (self.ref, self.test):
                r = self._side_call(side, db, "SCAN", "0", "COUNT", "1000")
                for _ in range(1000):
                    if r[0] != "*" or r[1] is None or len(r[1]) != 2 or r[1][0] == ("$", b"0"):
                        break
                    r = side.conns["side"].call("SCAN", r[1][0][1], "COUNT", "1000")
        self.history.append(("settle", conn, [str(db).encode() for db in dbs]))

    def _wait_expired(self, conn, key):
        """Bounded poll until key is gone on both servers (it was given a short TTL)."""
        if self.state[conn]["multi"]:
            return None
        db = self.state[conn]["db"]
        gone = {}
        deadline = time.monotonic() + 3.0
        for _ in range(300):
            for name, side in (("ref", self.ref), ("test", self.test)):
                if not gone.get(name):
                    gone[name] = self._side_call(side, db, "EXISTS", key) == (":", b"0")
            if gone["ref"] and gone["test"] or time.monotonic() > deadline:
                break
            time.sleep(0.01)  # waiting for a short TTL to run out, bounded above
        self.history.append(("wait_expired", conn, [key]))
        if gone["ref"] == gone["test"]:
            return None
        return Mismatch("(expiry)", (":", b"1" if not gone["ref"] else b"0"),
                        (":", b"1" if not gone["test"] else b"0"), ("wait_expired", conn, [key]),
                        list(self.history), "EXISTS after waiting up to 3 s for a short TTL")


def replay(sess, steps):
    """Replays steps on both servers after a reset. Returns the last step's Mismatch or None."""
    sess.reset()
    last = None
    for i, st in enumerate(steps):
        _, m, _ = sess.step(st)
        if i == len(steps) - 1:
            last = m
    return last


def shrink(sess, mm, deadline):
    """Removes steps (chunks, then single ones) while the last one still mismatches the same
    way. Bounded by deadline. Returns (steps, Mismatch on the minimal replay or None)."""
    steps = list(mm.history)
    target = mm.cls()
    try:
        got = replay(sess, steps)
    except Closed:
        return steps, None
    if got is None or got.cls() != target:
        return steps, None
    best = got
    n = 2
    while len(steps) > 1 and time.monotonic() < deadline:
        prefix, last = steps[:-1], steps[-1]
        chunk = max(1, len(prefix) // n)
        removed = False
        for start in range(0, len(prefix), chunk):
            if time.monotonic() >= deadline:
                break
            cand = prefix[:start] + prefix[start + chunk:] + [last]
            try:
                got = replay(sess, cand)
            except Closed:
                got = None
            if got is not None and got.cls() == target:
                steps, best, removed = cand, got, True
                break
        if not removed:
            if chunk == 1:
                break
            n = min(len(prefix), n * 2)
        else:
            n = max(n - 1, 2)
    return steps, best


def fmt_step(st):
    kind, conn, args = st
    if kind == "wait_expired":
        return f"{conn}: (wait until EXISTS {quote_arg(args[0])} is 0)"
    if kind == "settle":
        return f"{conn}: (SCAN 0 COUNT 1000 to the end on a third connection in db {b','.join(args).decode()})"
    return f"{conn}: {fmt_cmd(args)}"


def fmt_reply(tree):
    return esc(encode_tree(tree), 400)


# ---------------------------------------------------------------- main


# Differences Respite has not closed yet: still found and shown with their counts, but not
# failures, so that a new difference fails the run. Each says why; drop an entry once
# Respite matches Redis there.
KNOWN_DIFFERENCES = {}


def known_reason(mm):
    """Why a mismatch is a known difference, or None (a planted one never is)."""
    if mm.ref == ("+", b"PLANTED"):
        return None
    return KNOWN_DIFFERENCES.get(mm.name.split(">")[-1])


def known_reason_text(name):
    return KNOWN_DIFFERENCES.get(name.split(">")[-1], "")


def main():
    p = common.base_args(__doc__.split("\n")[0])
    p.add_argument("--reference-bin", default=shutil.which("redis-server") or "redis-server",
                   help="reference redis-server (default: %(default)s)")
    p.add_argument("--plant", choices=["flip-reply"], default=None,
                   help="flip-reply: corrupt one reference reply, to show the comparison bites")
    p.add_argument("--budget-s", type=float, default=None,
                   help="time for the random sequences (default 40 quick, 240 long)")
    p.add_argument("--stats", action="store_true",
                   help="print how often each command got each kind of reference reply")
    args = p.parse_args()
    seed = common.pick_seed(args)
    rng = random.Random(seed)
    tally = common.Tally()
    started = time.monotonic()
    budget = args.budget_s or (240.0 if args.long else 40.0)
    max_sequences = 20_000 if args.long else 2_000
    shrink_total = 60.0 if args.long else 15.0
    base = common.temp_dir("differential", args.keep)
    ref = common.Server(args.reference_bin, "redis", os.path.join(base, "ref"),
                        os.path.join(base, "ref.log"), appendfsync="everysec")
    test = common.Server(args.server_bin, args.server_kind, os.path.join(base, "test"),
                         os.path.join(base, "test.log"), appendfsync="everysec")
    sess = Session(ref, test, timeout=10.0, plant=args.plant)
    if args.stats:
        sess.stats = {}
    classes = {}  # Mismatch.cls() -> what was seen of it
    known = {}  # name -> sequences that ended on a known difference
    shrink_spent = 0.0
    gen = Gen(rng)
    sequences = 0
    commands = 0
    restarts = 0
    try:
        ref.start()
        test.start()
        deadline = started + budget
        while sequences < max_sequences and time.monotonic() < deadline:
            sequences += 1
            sess.reset()
            gen.ttl.reset()
            mm = None
            for _ in range(rng.randint(10, 80)):
                for st in gen.next():
                    try:
                        _, mm, n = sess.step(st)
                    except Closed as e:
                        mm = Mismatch("(side connection)", ("+", b"-"), ("?", str(e).encode()), st,
                                      list(sess.history))
                        n = 1
                    commands += n
                    if mm is not None:
                        break
                    tally.check(True, "")
                if mm is not None:
                    break
            if mm is None:
                continue
            # a server that died is restarted (fresh data) so the run can go on
            for srv, role in ((ref, "reference"), (test, "server under test")):
                if not srv.alive() and restarts < 5:
                    restarts += 1
                    print(f"  note: the {role} ({srv.binary}) died; restarting it", flush=True)
                    srv.kill9()
                    srv.start()
            if known_reason(mm) is not None:
                known[mm.name] = known.get(mm.name, 0) + 1
                continue
            c = mm.cls()
            e = classes.get(c)
            if e is None:
                tally.check(False, f"sequence {sequences}: {mm.name}",
                            f"redis {first_line(mm.ref)[:100]} / test {first_line(mm.test)[:100]} "
                            f"after {len(mm.history)} commands")
                e = classes[c] = {"mm": mm, "count": 0, "variants": {}, "steps": mm.history,
                                  "shrunk": None, "seq": sequences}
                left = shrink_total - shrink_spent
                if left > 0.5 and len(mm.history) > 1:
                    t0 = time.monotonic()
                    e["steps"], e["shrunk"] = shrink(sess, mm, t0 + min(left, 5.0))
                    spent = time.monotonic() - t0
                    shrink_spent += spent
                    deadline += spent  # shrinking does not eat the budget for sequences
            else:
                tally.failed += 1  # counted; the class was printed when first seen
                if e["shrunk"] is None and len(mm.history) < len(e["steps"]):
                    e["mm"], e["steps"] = mm, mm.history
            e["count"] += 1
            k = mm.key()
            if k not in e["variants"]:
                e["variants"][k] = mm
    except common.ServerError as ex:
        tally.check(False, "server", str(ex))
    finally:
        sess.close()
        alive_ref, alive_test = ref.alive(), test.alive()
        ref.kill9()
        test.kill9()
    tally.check(alive_test, "server under test still running at the end")
    tally.check(alive_ref, "reference still running at the end")
    if args.plant:
        tally.check(any(e["mm"].ref == ("+", b"PLANTED") for e in classes.values()),
                    f"plant {args.plant} was reported as a mismatch")

    variants = sum(len(e["variants"]) for e in classes.values())
    if classes:
        print(f"\n{len(classes)} kinds of mismatch ({variants} distinct by command and first reply "
              "lines); for each, the shortest repro (commands after FLUSHALL, A and B are two "
              "connections) and the replies:")
    for i, e in enumerate(sorted(classes.values(), key=lambda e: e["seq"]), 1):
        mm = e["mm"]
        shown = e["shrunk"] or mm
        print(f"\n#{i} {mm.name}: {e['count']}x, {len(e['variants'])} variant(s), first in sequence "
              f"{e['seq']}" + (f" - {mm.note}" if mm.note else ""))
        how = ("shrunk from " + str(len(mm.history)) + " and re-checked" if e["shrunk"] is not None
               else "as run" if len(e["steps"]) <= 1 else "as run, not shrunk")
        print(f"  repro ({len([x for x in e['steps'] if x[0] != 'settle'])} commands, {how}):")
        steps = e["shrunk"].history if e["shrunk"] is not None else e["steps"]
        if len(steps) > 150:
            print(f"    ... {len(steps) - 150} earlier commands")
            steps = steps[-150:]
        for st in steps:
            print(f"    {fmt_step(st)}")
        print(f"  redis: {fmt_reply(shown.ref)}")
        print(f"  test:  {fmt_reply(shown.test)}")
        others = [v for k, v in e["variants"].items() if k != mm.key()]
        for v in others[:3]:
            print(f"  also: {fmt_cmd(v.step[2])[:120]}\n        redis {first_line(v.ref)[:110]}"
                  f"\n        test  {first_line(v.test)[:110]}")
        if len(others) > 3:
            print(f"  ... and {len(others) - 3} more variant(s)")
    if known:
        print("\nknown differences (shown, not failures):")
        for name, n in sorted(known.items()):
            print(f"  {name}: {n} sequence(s) - {known_reason_text(name)}")
    if sess.stats:
        print("\nreference replies by command (count, command, kind):")
        for (name, kind), n in sorted(sess.stats.items()):
            print(f"  {n:6d} {name} {kind}")
    if args.keep and classes:
        path = os.path.join(base, "repros.txt")
        with open(path, "w") as f:
            for i, e in enumerate(sorted(classes.values(), key=lambda e: e["seq"]), 1):
                steps = e["shrunk"].history if e["shrunk"] is not None else e["steps"]
                f.write(f"#{i} {e['mm'].name}\n")
                for kind, conn, a in steps:
                    f.write(f"  {kind} {conn} {a!r}\n")
        print(f"\nrepros with every argument in full (Python bytes): {path}")
    print(f"\ndifferential summary: {sequences} sequences, {commands} commands compared, "
          f"{len(classes)} kinds of mismatch, {time.monotonic() - started:.0f}s")
    tally.finish()


if __name__ == "__main__":
    main()
