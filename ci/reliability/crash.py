#!/usr/bin/env python3
"""Crash consistency: kill -9 the server at a random moment, restart, verify.

Several writer threads, each with its own connection and its own keys, send
SET, SET EX, DEL, INCR, APPEND, EXPIRE and MSET in small pipelined batches and
record, per key, every state they asked for and which of those the server
acknowledged. At a random number of acknowledged writes the server gets
SIGKILL; it is restarted on the same data dir and every key is read back
with GET and PTTL.

  --mode always    (default) every acknowledged write must be there: the
                   value read must be the last acknowledged state of that key
                   or a later state that was sent but not acknowledged.
  --mode everysec  loss is allowed only for writes acknowledged within
                   --window seconds (default 2) before the kill.
  --mode no        checked like `always`. A kill -9 does not drop the page
                   cache, so a server that writes before replying loses
                   nothing even without fsync; only power loss would show it.

Nothing read back may be garbage: each value names its key, writer and
sequence number and carries a CRC32, and must be exactly one some writer
sent for that key. An acknowledged DEL must not come back. A key set with a
long TTL must survive with its TTL; a key whose TTL ran out must be gone;
keys expiring around the restart may be either. SCAN must show no key that
nobody wrote.

--plant truncate|garbage|expectation plants a fault to prove the checks
catch it (the run must then fail): cut the tail of the biggest data file
before restart; overwrite one key with a foreign value; or falsify the
expectation for one key.

--encryption (respite only) runs the server with encryption at rest: a fresh
random key file (64 hex digits) in the run's temp dir, passed as
--encryption-key-file to every start. The checks are the same; at the end, after
the clean stop, no data file may hold a key name in plaintext.

--tree var|const-bitcask|const-fixed picks the database under test.
  var (default)   database 0, a VarTree on the Bitcask log; all of the above.
  const-bitcask   database 1 made a ConstTree of --value-size (48) byte values
  const-fixed     with `--tree 1 const <size> bitcask|fixed`; every connection
                  SELECTs 1. Every value is exactly <size> bytes (the same
                  self-checking format, padded), only SET, SET EX, DEL, EXPIRE
                  and MSET are sent (no INCR/APPEND), and once per cycle, before
                  the writers start, a wrong-size write (SET short/long, SET EX,
                  MSET with one wrong value, APPEND) must be refused with an
                  error and leave the keys as they were. respite only.
"""

import os
import random
import sys
import threading
import time
import zlib

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import common  # noqa: E402
from common import Error

SLACK_S = 2.5  # clock slack for TTL checks (server and harness share the clock)


class Op:
    __slots__ = ("sent", "acked")

    def __init__(self, sent):
        self.sent = sent
        self.acked = None


class State:
    """What a key holds after one write: value (None = absent) and deadline.
    The deadline is known as the window [dl_op.sent + ex, dl_op.acked + ex]."""

    __slots__ = ("val", "ex", "dl_op", "op", "kind")

    def __init__(self, val, ex, dl_op, op, kind):
        self.val, self.ex, self.dl_op, self.op, self.kind = val, ex, dl_op, op, kind

    def deadline(self, kill_time):
        if self.ex is None:
            return None
        lo = self.dl_op.sent + self.ex
        hi = (self.dl_op.acked if self.dl_op.acked is not None else kill_time) + self.ex
        return lo, hi


class Key:
    __slots__ = ("name", "numeric", "base", "states", "history")

    def __init__(self, name, numeric):
        self.name = name
        self.numeric = numeric
        base_op = Op(0.0)
        base_op.acked = 0.0
        self.base = State(None, None, None, base_op, "base")
        self.states = []
        self.history = set()

    def cur(self):
        return self.states[-1] if self.states else self.base


def make_value(key, writer, seq, rng, tag="v"):
    n = rng.choice((0, 8, 30, 100, 200)) if rng.random() < 0.95 else rng.randint(1000, 8000)
    pad = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(min(n, 64)))
    pad = (pad * (n // max(len(pad), 1) + 1))[:n] if n else ""
    body = f"{key}|{tag}|w{writer}|s{seq}|{pad}|".encode()
    return body + b"%08x;" % zlib.crc32(body)


def make_fixed_value(key, writer, seq, rng, size, tag="v"):
    """The make_value format padded to exactly size bytes: key|tag|wN|sN|pad|crc;"""
    head = f"{key}|{tag}|w{writer}|s{seq}|"
    n = size - len(head) - 1 - 9
    if n < 0:
        raise ValueError(f"--value-size {size} too small for {head!r}")
    pad = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(n))
    body = f"{head}{pad}|".encode()
    v = body + b"%08x;" % zlib.crc32(body)
    assert len(v) == size
    return v


def value_ok(key, val):
    """Does every segment of val name key and carry a matching CRC?"""
    if val is None:
        return True
    if val.lstrip(b"-").isdigit():
        return True
    rest = val
    while rest:
        i = rest.find(b";")
        if i < 9:
            return False
        seg, rest = rest[: i + 1], rest[i + 1:]
        body, crc = seg[:-9], seg[-9:-1]
        if b"%08x" % zlib.crc32(body) != crc or not body.startswith(key.encode() + b"|"):
            return False
    return True


class Writer(threading.Thread):
    def __init__(self, wid, conn, keys, rng, shared, vsize=None, seq=0):
        super().__init__(daemon=True)
        self.wid, self.conn, self.keys, self.rng, self.shared = wid, conn, keys, rng, shared
        self.vsize = vsize  # None: VarTree, any size; else every value exactly vsize bytes
        self.seq = seq
        self.bad_replies = []
        self.acked_ops = 0

    def run(self):
        conn = self.conn
        try:
            while not self.shared["stop"].is_set():
                self.batch(conn)
        except (OSError, common.ProtocolError, ValueError):
            pass  # the kill; whatever was not acknowledged stays pending
        finally:
            conn.close()

    def value(self, key_name, tag="v"):
        if self.vsize is None:
            return make_value(key_name, self.wid, self.seq, self.rng, tag)
        return make_fixed_value(key_name, self.wid, self.seq, self.rng, self.vsize, tag)

    def plan(self, key, now, touched):
        """Choose one command for key; returns (args, expected reply, [(key, new state or None)])."""
        rng = self.rng
        cur = touched.get(key.name, key.cur())
        self.seq += 1
        dl = cur.deadline(now) if cur.ex is not None else None
        # A deadline near now makes the server's answer ambiguous: just SET.
        certain = dl is None or dl[0] > now + 5
        present = cur.val is not None
        op = Op(0.0)
        r = rng.random()
        if key.numeric:
            if not certain or r < 0.15:
                v = str(rng.randint(-1000, 1000)).encode()
                return ["SET", key.name, v], "OK", [(key, State(v, None, None, op, "set"))]
            if r < 0.75:
                v = int(cur.val) + 1 if present else 1
                return (["INCR", key.name], v,
                        [(key, State(str(v).encode(), cur.ex, cur.dl_op, op, "incr"))])
            if r < 0.88:
                return ["DEL", key.name], int(present), [(key, State(None, None, None, op, "del") if present else None)]
            ex = rng.randint(600, 86400)
            return (["EXPIRE", key.name, ex], int(present),
                    [(key, State(cur.val, ex, op, op, "expire") if present else None)])
        # A ConstTree takes no APPEND: that share of commands is a plain SET there.
        if not certain or r < 0.30 or (self.vsize is not None and 0.45 <= r < 0.60):
            v = self.value(key.name)
            return ["SET", key.name, v], "OK", [(key, State(v, None, None, op, "set"))]
        if r < 0.45:
            v = self.value(key.name)
            ex = 1 if rng.random() < 0.3 else rng.randint(600, 86400)
            return ["SET", key.name, v, "EX", ex], "OK", [(key, State(v, ex, op, op, "setex"))]
        if r < 0.60 and (not present or len(cur.val) < 4096):
            chunk = self.value(key.name, tag="a")
            v = (cur.val or b"") + chunk
            return ["APPEND", key.name, chunk], len(v), [(key, State(v, cur.ex, cur.dl_op, op, "append"))]
        if r < 0.72:
            return ["DEL", key.name], int(present), [(key, State(None, None, None, op, "del") if present else None)]
        if r < 0.82:
            ex = rng.randint(600, 86400)
            return (["EXPIRE", key.name, ex], int(present),
                    [(key, State(cur.val, ex, op, op, "expire") if present else None)])
        # MSET of this key and another string key of the same writer
        other = rng.choice([k for k in self.keys if not k.numeric and k is not key])
        self.seq += 1
        v1 = self.value(key.name)
        v2 = self.value(other.name)
        return (["MSET", key.name, v1, other.name, v2], "OK",
                [(key, State(v1, None, None, op, "mset")), (other, State(v2, None, None, op, "mset"))])

    def batch(self, conn):
        rng = self.rng
        n = rng.choice((1, 1, 2, 3))
        now = time.time()
        touched = {}
        plans = []
        for _ in range(n):
            key = rng.choice(self.keys)
            args, expect, changes = self.plan(key, now, touched)
            for k, st in changes:
                if st is not None:
                    touched[k.name] = st
            plans.append((args, expect, changes))
        # Record every state as sent before a byte leaves: after a kill, a
        # sent-but-unanswered write may or may not be there.
        sent = time.time()
        for args, expect, changes in plans:
            for k, st in changes:
                if st is not None:
                    st.op.sent = sent
                    k.states.append(st)
                    if st.val is not None:
                        k.history.add(st.val)
        conn.send_cmds([a for a, _, _ in plans])
        for args, expect, changes in plans:
            reply = conn.read()
            t = time.time()
            for k, st in changes:
                if st is not None:
                    st.op.acked = t
            ok = reply == expect if not isinstance(expect, str) else (reply == expect and not isinstance(reply, Error))
            if not ok and len(self.bad_replies) < 20:
                self.bad_replies.append(f"{args[0]} {args[1]}: expected {expect!r}, got {reply!r}")
            self.acked_ops += 1
            self.shared["acked"].inc()


class Counter:
    def __init__(self, target, event):
        self.n = 0
        self.target = target
        self.event = event
        self.lock = threading.Lock()

    def inc(self):
        with self.lock:
            self.n += 1
            if self.n >= self.target:
                self.event.set()


def scan_all(conn, limit_iters=100_000):
    keys = set()
    cursor = b"0"
    for _ in range(limit_iters):
        r = conn.call("SCAN", cursor, "COUNT", 1000)
        if isinstance(r, Error):
            return None, r.text
        cursor, batch = r
        keys.update(batch)
        if cursor == b"0":
            return keys, None
    return keys, "SCAN did not finish"


def matches(st, val, pttl, t0, t1, kill_time):
    """Could the server legitimately show (val, pttl) if st was the last state applied?"""
    if st.val is None:
        return val is None
    dl = st.deadline(kill_time)
    if dl is None:
        return val == st.val and pttl == -1
    lo, hi = dl
    if hi < t0 - SLACK_S:
        return val is None  # expired well before we looked
    if val is None:
        return lo < t1 + SLACK_S  # may have expired around the restart
    if val != st.val or pttl < 0:
        return False
    seen_lo, seen_hi = t0 + pttl / 1000.0, t1 + pttl / 1000.0
    return seen_hi >= lo - SLACK_S and seen_lo <= hi + SLACK_S


def check_keys(conn, keys, mode, window, kill_time, stats, tally, cycle, plant_expect, rng):
    names = [k.name for k in keys]
    t0 = time.time()
    cmds = []
    for n in names:
        cmds.append(("GET", n))
        cmds.append(("PTTL", n))
    replies = []
    for i in range(0, len(cmds), 200):
        conn.send_cmds(cmds[i:i + 200])
        replies += [conn.read() for _ in cmds[i:i + 200]]
    t1 = time.time()
    if plant_expect:
        victims = [k for k in keys if k.states or k.base.val is not None]
        if victims:
            k = rng.choice(victims)
            op = Op(t0 - 100)
            op.acked = t0 - 100
            k.states.append(State(b"planted-expectation", None, None, op, "planted"))
            k.history.add(b"planted-expectation")
            print(f"  planted: expectation of {k.name} falsified")
    lost = corrupt = resurrected = ttl_bad = 0
    for idx, k in enumerate(keys):
        val, pttl = replies[2 * idx], replies[2 * idx + 1]
        if isinstance(val, Error) or isinstance(pttl, Error) or not isinstance(pttl, int):
            tally.check(False, f"cycle {cycle}: read of {k.name}", f"{val!r} {pttl!r}")
            corrupt += 1
            continue
        if val is not None and not isinstance(val, bytes):
            tally.check(False, f"cycle {cycle}: GET {k.name} type", repr(val))
            corrupt += 1
            continue
        if val is None and pttl == -2:
            pttl = -2
        chain = [k.base] + k.states
        # Index of the oldest state the server may legally show.
        if mode == "everysec":
            floor = 0
            for i, st in enumerate(chain):
                if st.op.acked is not None and st.op.acked < kill_time - window:
                    floor = i
        else:
            floor = 0
            for i, st in enumerate(chain):
                if st.op.acked is not None:
                    floor = i
        acceptable = chain[floor:]
        stats["writes_checked"] += sum(1 for st in chain[1:] if st.op.acked is not None)
        good_idx = [floor + i for i, st in enumerate(acceptable) if matches(st, val, pttl, t0, t1, kill_time)]
        good = bool(good_idx)
        last_acked = max(i for i, st in enumerate(chain) if st.op.acked is not None)
        if good and max(good_idx) < last_acked:
            # Allowed loss (everysec window): count the acknowledged writes gone.
            gone = [st for st in chain[max(good_idx) + 1:last_acked + 1] if st.op.acked is not None]
            stats["window_lost"] += len(gone)
            stats["window_oldest_s"] = max([stats["window_oldest_s"]] + [kill_time - st.op.acked for st in gone])
        if not good:
            older = [i for i, st in enumerate(chain[:floor]) if matches(st, val, pttl, t0, t1, kill_time)]
            if val is not None and val not in k.history and val != k.base.val:
                corrupt += 1
                what = "GARBAGE" if not value_ok(k.name, val) else "value never written to this key"
                tally.check(False, f"cycle {cycle}: {k.name} corrupt ({what})", f"{val[:120]!r}")
            elif older:
                n_lost = sum(1 for st in chain[older[-1] + 1:floor + 1] if st.op.acked is not None)
                stats["writes_lost"] += n_lost
                if chain[floor].val is None and val is not None:
                    resurrected += 1
                    tally.check(False, f"cycle {cycle}: {k.name} acknowledged DEL came back",
                                f"value {val[:80]!r}")
                else:
                    lost += 1
                    last = chain[floor]
                    tally.check(False, f"cycle {cycle}: {k.name} lost acknowledged write",
                                f"expected {last.kind} {(last.val or b'(absent)')[:60]!r} "
                                f"(acked {kill_time - last.op.acked:.3f}s before kill), "
                                f"read {(val or b'(absent)')[:60]!r} pttl {pttl}")
            else:
                ttl_bad += 1
                last = chain[floor]
                dl = last.deadline(kill_time)
                tally.check(False, f"cycle {cycle}: {k.name} value/TTL not any acceptable state",
                            f"read {(val or b'(absent)')[:60]!r} pttl {pttl}; last acked {last.kind} "
                            f"{(last.val or b'(absent)')[:60]!r} deadline "
                            f"{None if dl is None else (round(dl[0] - t0, 1), round(dl[1] - t0, 1))}s from now")
        # What the server shows now is the new baseline.
        op = Op(t0)
        op.acked = t0
        if val is None:
            k.base = State(None, None, None, op, "base")
        else:
            if pttl >= 0:
                dop = Op(t0)
                dop.acked = t1
                k.base = State(val, pttl / 1000.0, dop, op, "base")
            else:
                k.base = State(val, None, None, op, "base")
            k.history.add(val)
        k.states = []
    stats["keys_checked"] += len(keys)
    stats["corrupt"] += corrupt
    stats["lost_keys"] += lost + resurrected
    stats["ttl_bad"] += ttl_bad
    return lost + corrupt + resurrected + ttl_bad == 0


def select_db(conn, db):
    """SELECT db on conn (nothing to do for 0); raises OSError if refused."""
    if db:
        r = conn.call("SELECT", db)
        if r != "OK" or isinstance(r, Error):
            raise OSError(f"SELECT {db} answered {r!r}")
    return conn


def wrong_size_probe(conn, cycle, keys, vsize, rng, tally):
    """A ConstTree must refuse a write of the wrong size with an error, never +OK,
    and leave the keys as they were. One probe per cycle, before any writer
    runs, so the keys' last states (k.base, read back after the restart) are
    what GET must still show."""
    # Keys that cannot expire between the check and the GET below.
    steady = [k for k in keys if k.base.ex is None or k.base.ex > 60]
    k1, k2 = rng.sample(steady if len(steady) >= 2 else keys, 2)
    kinds = ["set-short", "set-long", "set-ex", "mset", "append", "set-empty"]
    kind = kinds[cycle % len(kinds)]
    good = make_fixed_value(k1.name, 99, cycle, rng, vsize, tag="p")
    if kind == "set-short":
        cmd = ["SET", k1.name, good[1:]]
    elif kind == "set-long":
        cmd = ["SET", k1.name, good + b"x"]
    elif kind == "set-ex":
        cmd = ["SET", k1.name, good + good, "EX", 3600]
    elif kind == "mset":
        # the first pair is right-sized: MSET is all or nothing, so neither may change
        cmd = ["MSET", k1.name, good, k2.name, good[:-1]]
    elif kind == "append":
        cmd = ["APPEND", k1.name, b"p"]
    else:
        cmd = ["SET", k1.name, b""]
    r = conn.call(*cmd)
    tally.check(isinstance(r, Error), f"cycle {cycle}: wrong-size {kind} refused with an error",
                f"{cmd[0]} {cmd[1]} ({', '.join(str(len(a)) for a in cmd[2:] if isinstance(a, bytes))} "
                f"bytes) answered {r!r}")
    for k in (k1, k2):
        v = conn.call("GET", k.name)
        tally.check(v == k.base.val, f"cycle {cycle}: {k.name} unchanged by the refused {kind}",
                    f"was {(k.base.val or b'(absent)')[:60]!r}, now {(v or b'(absent)')[:60]!r}")
    return kind


def data_files(d):
    """Every non-empty file in the data dir. The server's own log lies outside it, and
    respite's Bitcask segments are named NNNNNNNNNN.log, so no suffix is excluded."""
    out = []
    for root, _dirs, files in os.walk(d):
        for f in files:
            p = os.path.join(root, f)
            if os.path.isfile(p) and os.path.getsize(p) > 0:
                out.append(p)
    return out


def plaintext_in(path, needle, block=1 << 20):
    """Whether `needle` occurs in the file (read in blocks, overlapping by len(needle))."""
    tail = b""
    with open(path, "rb") as f:
        while True:
            chunk = f.read(block)
            if not chunk:
                return False
            if needle in tail + chunk:
                return True
            tail = chunk[-len(needle):]


def data_end(path, block=1 << 16):
    """Offset just past the last non-zero byte of the file (its size if it ends in data)."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        pos = size
        for _ in range(size // block + 1):
            start = max(0, pos - block)
            f.seek(start)
            chunk = f.read(pos - start).rstrip(b"\0")
            if chunk:
                return start + len(chunk)
            pos = start
            if pos == 0:
                break
    return 0


def main():
    p = common.base_args(__doc__.split("\n")[0])
    p.add_argument("--mode", choices=["always", "everysec", "no"], default="always")
    p.add_argument("--window", type=float, default=2.0, help="everysec loss window, seconds")
    p.add_argument("--cycles", type=int, default=None, help="default 20 quick, 200 long")
    p.add_argument("--writers", type=int, default=4)
    p.add_argument("--keys-per-writer", type=int, default=40)
    p.add_argument("--budget", type=float, default=None, help="seconds; default 150 quick, 1800 long")
    p.add_argument("--plant", choices=["truncate", "garbage", "expectation"], default=None)
    p.add_argument("--tree", choices=["var", "const-bitcask", "const-fixed"], default="var",
                   help="var: database 0 (VarTree); const-*: database 1 as a ConstTree of "
                        "--value-size byte values on the bitcask or fixed backend (respite only)")
    p.add_argument("--value-size", type=int, default=48, help="ConstTree value size in bytes (const trees)")
    p.add_argument("--encryption", action="store_true",
                   help="encryption at rest: a random key file passed as --encryption-key-file (respite only)")
    args = p.parse_args()
    if args.encryption and args.server_kind != "respite":
        print(f"crash: --encryption needs respite-server ({args.server_kind} has no encryption at rest)",
              flush=True)
        sys.exit(2)
    const = args.tree != "var"
    if const and args.server_kind != "respite":
        print(f"crash: --tree {args.tree} needs respite-server: a ConstTree database "
              f"(`--tree 1 const <size> <backend>`) is a respite feature, {args.server_kind} has none. "
              "Use --tree var (the default) for redis.", flush=True)
        sys.exit(2)
    vsize = args.value_size if const else None
    db = 1 if const else 0
    if const:
        longest = f"crash:w{args.writers - 1}:s{args.keys_per_writer - 1}|v|w99|s{10 ** 9}|x|"
        if args.value_size < len(longest) + 9:
            p.error(f"--value-size {args.value_size} too small: at least {len(longest) + 9} "
                    "for key, writer, sequence and checksum")
    seed = common.pick_seed(args)
    rng = random.Random(seed)
    cycles = args.cycles or (200 if args.long else 20)
    budget = args.budget or (1800 if args.long else 150)
    tally = common.Tally()
    started = time.monotonic()

    base = common.temp_dir("crash", args.keep)
    extra = ["--tree", "1", "const", str(vsize), args.tree.split("-")[1]] if const else []
    if args.encryption:
        key_file = os.path.join(base, "respite.key")
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(os.urandom(32).hex() + "\n")
        extra += ["--encryption-key-file", key_file]
    srv = common.Server(args.server_bin, args.server_kind, os.path.join(base, "data"),
                        os.path.join(base, "server.log"), appendfsync=args.mode, extra=extra)
    print(f"crash: {args.server_kind} {args.server_bin} appendfsync {args.mode}, tree {args.tree}"
          f"{f' (database 1, {vsize}-byte values)' if const else ''}"
          f"{', encryption at rest' if args.encryption else ''}, dir {base}", flush=True)

    keys_by_writer = []
    for w in range(args.writers):
        ks = []
        for i in range(args.keys_per_writer):
            numeric = i % 4 == 3 and not const  # a ConstTree gets no INCR
            ks.append(Key(f"crash:w{w}:{'n' if numeric else 's'}{i}", numeric))
        keys_by_writer.append(ks)
    all_keys = [k for ks in keys_by_writer for k in ks]
    known = {k.name.encode() for k in all_keys}
    stats = dict(window_lost=0, window_oldest_s=0.0, writes_checked=0, writes_lost=0, lost_keys=0, corrupt=0, ttl_bad=0,
                 keys_checked=0, acked=0, max_restart_s=0.0)
    done = 0
    seqs = [0] * args.writers
    try:
        srv.start()
        for cycle in range(cycles):
            if time.monotonic() - started > budget:
                tally.check(False, "time budget", f"{budget}s spent after {done} of {cycles} cycles")
                break
            fire = threading.Event()
            target = rng.randint(30, 1500) if rng.random() < 0.8 else rng.randint(1500, 4000)
            shared = {"stop": threading.Event(), "acked": Counter(target, fire)}
            # Connect every writer before any starts, so the kill never races a connect.
            conns = []
            try:
                for _ in range(args.writers):
                    conns.append(common.Conn(srv.port, timeout=10))
                    select_db(conns[-1], db)
                if const:
                    probe = select_db(srv.connect(), db)
                    try:
                        wrong_size_probe(probe, cycle, all_keys, vsize, rng, tally)
                    finally:
                        probe.close()
            except (OSError, common.ProtocolError) as e:
                tally.check(False, f"cycle {cycle}: writers connect", str(e))
                for c in conns:
                    c.close()
                break
            # On a ConstTree every value is a fixed size, so sequence numbers run on across
            # cycles to keep values unique (on a VarTree the random padding length does that).
            writers = [Writer(w, conns[w], keys_by_writer[w], random.Random(rng.random()), shared,
                              vsize, seqs[w] if const else 0)
                       for w in range(args.writers)]
            for w in writers:
                w.start()
            # Kill at a random count of acknowledged writes (or at the cap).
            fire.wait(timeout=4.0)
            kill_time = time.time()
            srv.kill9()
            shared["stop"].set()
            for w in writers:
                w.join(timeout=30)
                tally.check(not w.is_alive(), f"cycle {cycle}: writer {w.wid} finished")
            seqs = [w.seq for w in writers]
            acked = sum(w.acked_ops for w in writers)
            stats["acked"] += acked
            bad = [b for w in writers for b in w.bad_replies]
            tally.check(not bad, f"cycle {cycle}: every reply as expected", "; ".join(bad[:5]))
            if args.plant == "truncate" and cycle % 2 == 1:
                files = sorted(data_files(srv.data_dir), key=os.path.getsize)
                if files:
                    f = files[-1]
                    # Cut the last 16 KiB of data, not of preallocated zeros: FixedStore slot
                    # files are allocated ahead and fill from the front.
                    end = data_end(f)
                    cut = min(end, 16384)
                    os.truncate(f, end - cut)
                    print(f"  planted: cut {cut} bytes of data off {f} ({os.path.getsize(f)} bytes left)")
            t = time.monotonic()
            try:
                srv.start()
            except common.ServerError as e:
                tally.check(False, f"cycle {cycle}: restart after kill -9", str(e))
                break
            stats["max_restart_s"] = max(stats["max_restart_s"], time.monotonic() - t)
            conn = srv.connect()
            try:
                select_db(conn, db)
                if args.plant == "garbage" and cycle % 2 == 1:
                    k = rng.choice(all_keys)
                    g = b"planted garbage \x00\xff"
                    if const:
                        g = (g * (vsize // len(g) + 1))[:vsize]  # right-sized, or the ConstTree refuses it
                    r = conn.call("SET", k.name, g)
                    print(f"  planted: {k.name} overwritten behind the harness's back ({r!r})")
                ok = check_keys(conn, all_keys, args.mode, args.window, kill_time, stats, tally,
                                cycle, args.plant == "expectation" and cycle % 2 == 1, rng)
                tally.check(ok, f"cycle {cycle}: all {len(all_keys)} keys as acknowledged")
                found, err = scan_all(conn)
                if found is None:
                    if cycle == 0:
                        print(f"  note: SCAN unsupported ({err}); unknown-key check skipped")
                else:
                    extra = found - known
                    tally.check(not extra, f"cycle {cycle}: no key nobody wrote", repr(sorted(extra)[:5]))
            finally:
                conn.close()
            done += 1
            print(f"  cycle {cycle}: {acked} writes acked before kill (target {target}); "
                  f"lost so far {stats['writes_lost']}, corrupt {stats['corrupt']}", flush=True)
        code = srv.stop()
        tally.check(code == 0, "clean shutdown on SIGTERM at the end", f"exit code {code}")
        if args.encryption:
            # Every key name starts with this; encrypted files must not show it anywhere.
            leaks = [f for f in data_files(srv.data_dir) if plaintext_in(f, b"crash:w")]
            tally.check(not leaks, "encryption: no key name in plaintext in the data files",
                        ", ".join(leaks[:5]))
    except common.ServerError as e:
        tally.check(False, "server start", str(e))
    finally:
        srv.kill9()
    print(f"crash summary: tree {args.tree}, mode {args.mode}, cycles run {done}, writes acked {stats['acked']}, "
          f"writes checked {stats['writes_checked']}, writes lost {stats['writes_lost']} "
          f"(keys {stats['lost_keys']}), lost within the allowed window {stats['window_lost']} "
          f"(oldest acked {stats['window_oldest_s']:.2f}s before the kill), corrupt values {stats['corrupt']}, "
          f"ttl mismatches {stats['ttl_bad']}, keys checked {stats['keys_checked']}, "
          f"slowest restart {stats['max_restart_s']:.2f}s, {time.monotonic() - started:.0f}s")
    tally.check(done >= min(cycles, 1), "at least one cycle ran")
    tally.finish()


if __name__ == "__main__":
    main()
