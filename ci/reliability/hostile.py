#!/usr/bin/env python3
"""Hostile input through real sockets, while a witness checks every answer.

One server runs for the whole script. A witness thread keeps its own
connection and does SET/GET/INCR of its own keys (binary values with CRLF and
NUL inside) and checks every reply, start to end; it must see no wrong
answer, no error and no disconnect. Meanwhile, each on its own connections:

  limits     a 2 GB bulk length with no body, multibulk counts of 2^31 and
             more, negative and overflowing lengths, `*1\\r\\n` nested 100k
             deep, a 1 MB inline line without a newline. Where Redis answers
             with a protocol error, the exact Redis text is expected.
  binary     keys and values with CRLF, NUL and all 256 byte values, an empty
             value, a 1 MB value: SET/GET/MSET/MGET/APPEND/STRLEN round trip.
  fuzz       random bytes and mutated valid RESP (bounded count and time,
             seed printed); each input on a fresh connection, then EOF; the
             server must close the connection (no hang) and stay up.
  pipeline   a client sends up to 200 MB of GETs of a 100 KB value and never
             reads: it must be disconnected or throttled while the server's
             RSS stays under --rss-limit-mb above its start.
  idle       10,000 idle connections held open (a sample must answer PING),
             then closed; RSS before, with and after.
  churn      connections opened and closed fast (graceful, RST, half a
             command), bounded count.

At the end the server must still run, answer, and exit 0 on SIGTERM.
Peak RSS is read from /proc/<pid>/status (VmRSS) every 20 ms.

For --server-kind redis the server also gets
--client-output-buffer-limit 'normal 64mb 16mb 10' (redis's default for normal
clients is no limit); --plant no-obuf-limit leaves it out, to show the
pipeline check catching unbounded growth; --plant clobber-witness overwrites
the witness's keys from another client, to show the witness notices.
"""

import errno
import os
import random
import resource
import select
import socket
import struct
import sys
import threading
import time
import zlib

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import common  # noqa: E402
from common import Error, encode

MB = 1024 * 1024


class RssMonitor(threading.Thread):
    def __init__(self, pid, limit_kb, stop):
        super().__init__(daemon=True)
        self.pid, self.limit_kb, self.stop = pid, limit_kb, stop
        self.peak = 0
        self.over = threading.Event()
        self.phase_peak = 0

    def run(self):
        while not self.stop.is_set():
            r = common.rss_kb(self.pid)
            if r is None:
                return
            self.peak = max(self.peak, r)
            self.phase_peak = max(self.phase_peak, r)
            if r > self.limit_kb:
                self.over.set()
            self.stop.wait(0.02)  # sampling period, not synchronisation

    def reset_phase(self):
        self.phase_peak = common.rss_kb(self.pid) or 0
        return self.phase_peak


class Witness(threading.Thread):
    """Does its own SET/GET/INCR and checks every answer."""

    def __init__(self, port, seed, stop):
        super().__init__(daemon=True)
        self.port, self.rng, self.stop = port, random.Random(seed), stop
        self.ops = 0
        self.wrong = []
        self.error = None
        self.max_latency = 0.0

    def value(self, i, n):
        body = b"witness\r\n\x00%d|%d|" % (i, n) + bytes(self.rng.randrange(256) for _ in range(self.rng.choice((0, 10, 200))))
        return body + struct.pack("<I", zlib.crc32(body))

    def run(self):
        model, ctr = {}, 0
        try:
            c = common.Conn(self.port, timeout=30)
            c.call("DEL", "witness:ctr")
            while not self.stop.is_set():
                i = self.rng.randrange(50)
                k = b"witness:\r\n\x00:%d" % i
                t = time.monotonic()
                r = self.rng.random()
                if r < 0.4:
                    v = self.value(i, self.ops)
                    got = c.call("SET", k, v)
                    if got != "OK" or isinstance(got, Error):
                        self.wrong.append(f"SET {k!r} -> {got!r}")
                    model[k] = v
                elif r < 0.85:
                    got = c.call("GET", k)
                    if got != model.get(k):
                        self.wrong.append(f"GET {k!r} -> {str(got)[:60]} expected {str(model.get(k))[:60]}")
                else:
                    ctr += 1
                    got = c.call("INCR", "witness:ctr")
                    if got != ctr:
                        self.wrong.append(f"INCR -> {got!r} expected {ctr}")
                self.max_latency = max(self.max_latency, time.monotonic() - t)
                self.ops += 1
                if len(self.wrong) > 20:
                    break
                self.stop.wait(0.002)  # pacing, to leave CPU to the others
            c.close()
        except (OSError, common.ProtocolError, ValueError) as e:
            self.error = f"{type(e).__name__}: {e}"


def exchange(port, data, timeout=5.0, shut=True, read_limit=4 * MB):
    """Send data on a fresh connection, then EOF; read until the server closes.
    Returns (reply bytes, outcome) with outcome 'closed', 'reset', or 'hung'."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.settimeout(timeout)
    out = bytearray()
    outcome = "closed"
    try:
        try:
            s.sendall(data)
            if shut:
                s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            outcome = "reset"
        except OSError as e:
            # The server answered and closed before our shutdown(): the kernel already
            # tore the connection down (RST for unread bytes). That is a close, not a hang.
            if e.errno != errno.ENOTCONN:
                raise
            outcome = "reset"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(out) < read_limit:
            try:
                d = s.recv(65536)
            except socket.timeout:
                return bytes(out), "hung"
            except ConnectionResetError:
                return bytes(out), "reset"
            if not d:
                return bytes(out), outcome
            out += d
        return bytes(out), "hung" if len(out) < read_limit else "closed"
    finally:
        s.close()


def send_watching(s, data):
    """Send data in pieces, collecting any reply that arrives meanwhile (a
    server may answer with an error and close before it has read it all);
    then read until a full line, EOF or a 5 s silence (the server waits)."""
    reply, outcome = bytearray(), "open"
    for i in range(0, len(data), 65536):
        try:
            s.sendall(data[i:i + 65536])
        except (BrokenPipeError, ConnectionResetError):
            # The server answered and closed before reading everything; what it
            # sent before the reset may still be queued here.
            try:
                while len(reply) < 4096:
                    d = s.recv(4096, socket.MSG_DONTWAIT)
                    if not d:
                        break
                    reply += d
            except OSError:
                pass
            return reply, "reset"
        while select.select([s], [], [], 0)[0]:
            try:
                d = s.recv(4096)
            except ConnectionResetError:
                return reply, "reset"
            if not d:
                return reply, "closed"
            reply += d
    if outcome == "open":
        try:
            while len(reply) < 4096 and not reply.endswith(b"\r\n"):
                d = s.recv(4096)
                if not d:
                    return reply, "closed"
                reply += d
        except socket.timeout:
            pass  # no reply: the server waits for the rest
        except ConnectionResetError:
            outcome = "reset"
    return reply, outcome


SAFE = [
    ["PING"], ["ECHO", "hello"], ["SET", "fz:k", "v"], ["GET", "fz:k"], ["DEL", "fz:k", "fz:j"],
    ["INCR", "fz:n"], ["APPEND", "fz:a", "xyz"], ["MGET", "fz:k", "fz:a"], ["EXISTS", "fz:k"],
    ["STRLEN", "fz:k"], ["SET", "fz:k", "value", "EX", "100"], ["EXPIRE", "fz:k", "50"],
    ["TTL", "fz:k"], ["MSET", "fz:a", "1", "fz:b", "2"], ["GETRANGE", "fz:k", "0", "-1"],
    ["SELECT", "1"], ["DBSIZE"], ["HELLO", "3"], ["HELLO", "2"], ["INCRBY", "fz:n", "5"],
    ["SETNX", "fz:x", "1"], ["TYPE", "fz:k"], ["SCAN", "0"], ["QUIT"],
]
NUMBERS = [b"-1", b"-2", b"0", b"2147483648", b"4294967296", b"9223372036854775807",
           b"99999999999999999999", b"-9223372036854775808", b"1e3", b"", b" 3", b"3 "]


def mutate(rng):
    cmds = [rng.choice(SAFE) for _ in range(rng.randint(1, 4))]
    data = bytearray(b"".join(encode(*c) for c in cmds))
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(8)
        if not data:
            break
        i = rng.randrange(len(data))
        if op == 0:
            data[i] ^= 1 << rng.randrange(8)
        elif op == 1:
            data.insert(i, rng.randrange(256))
        elif op == 2:
            del data[i]
        elif op == 3:
            del data[i:]
        elif op == 4:
            data[i:i] = b"\r\n"
        elif op == 5:
            j = rng.randrange(len(data))
            data[i:i] = data[min(i, j):max(i, j)][:1000]
        elif op == 6:
            # replace a length with a hostile number
            pos = [p for p in range(len(data) - 1) if data[p] in b"*$" and data[p + 1:p + 2].isdigit()]
            if pos:
                p = rng.choice(pos) + 1
                e = data.find(b"\r\n", p)
                if e > 0:
                    data[p:e] = rng.choice(NUMBERS)
        else:
            data[i:i] = rng.choice((b"*", b"$", b"\x00", b"\r", b"\n", b"*-1\r\n", b"$-1\r\n", b"%1\r\n"))
    return bytes(data)


def random_bytes(rng):
    n = rng.choice((1, 2, 5, 16, 100, 1000, 5000))
    prefix = rng.choice((b"", b"", b"*", b"$", b"*3\r\n", b"*2\r\n$3\r\nGET\r\n$"))
    return prefix + bytes(rng.randrange(256) for _ in range(n))


def main():
    p = common.base_args(__doc__.split("\n")[0])
    p.add_argument("--fuzz", type=int, default=None, help="inputs of each fuzz kind; default 2000 quick, 50000 long")
    p.add_argument("--idle", type=int, default=10000, help="idle connections to hold")
    p.add_argument("--churn", type=int, default=None, help="open/close count; default 3000 quick, 30000 long")
    p.add_argument("--pipeline-mb", type=int, default=200)
    p.add_argument("--rss-limit-mb", type=int, default=768, help="allowed RSS growth over the start")
    p.add_argument("--idle-kb-per-conn", type=int, default=64, help="allowed RSS per idle connection")
    p.add_argument("--phase-time", type=float, default=None, help="seconds per bounded phase; default 25 quick, 120 long")
    p.add_argument("--plant", choices=["no-obuf-limit", "clobber-witness"], default=None)
    args = p.parse_args()
    seed = common.pick_seed(args)
    rng = random.Random(seed)
    fuzz_n = args.fuzz or (50000 if args.long else 2000)
    churn_n = args.churn or (30000 if args.long else 3000)
    phase_time = args.phase_time or (120 if args.long else 25)
    tally = common.Tally()
    started = time.monotonic()

    # Room for the idle connections, for us and (inherited) for the server.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, args.idle + 2000)) if hard != resource.RLIM_INFINITY else args.idle + 2000
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    print(f"hostile: {args.server_kind} {args.server_bin}; RLIMIT_NOFILE {want}/{hard}", flush=True)

    extra = ["--maxclients", "20000"]
    if args.server_kind == "redis" and args.plant != "no-obuf-limit":
        extra += ["--client-output-buffer-limit", "normal 64mb 16mb 10"]
    base = common.temp_dir("hostile", args.keep)
    srv = common.Server(args.server_bin, args.server_kind, os.path.join(base, "data"),
                        os.path.join(base, "server.log"), appendfsync="everysec", extra=extra)
    stop = threading.Event()
    inputs = 0
    crashes = 0
    report = {}
    up = False
    try:
        srv.start()
        up = True
        port = srv.port
        start_rss = srv.rss_kb()
        mon = RssMonitor(srv.proc.pid, start_rss + args.rss_limit_mb * 1024, stop)
        mon.start()
        witness = Witness(port, rng.random(), stop)
        witness.start()

        def alive(phase):
            nonlocal crashes
            ok = srv.alive() and common.ping_ok(port)
            if not srv.alive():
                crashes += 1
            tally.check(ok, f"{phase}: server alive and answering",
                        "" if ok else f"exit {srv.proc.poll()}; log tail:\n{srv.log_tail()}")
            return ok

        # ---- limits: exact Redis protocol errors, bounded memory
        cases = [
            ("2 GB bulk length, no body", b"*2\r\n$3\r\nGET\r\n$2147483648\r\n", "ERR Protocol error: invalid bulk length"),
            ("4 GB bulk length, no body", b"*2\r\n$3\r\nGET\r\n$4294967296\r\n", "ERR Protocol error: invalid bulk length"),
            ("overflowing bulk length", b"*2\r\n$3\r\nGET\r\n$99999999999999999999\r\n", "ERR Protocol error: invalid bulk length"),
            ("negative bulk length", b"*2\r\n$3\r\nGET\r\n$-2\r\n", "ERR Protocol error: invalid bulk length"),
            ("multibulk count 2^31", b"*2147483648\r\n", "ERR Protocol error: invalid multibulk length"),
            ("multibulk count 2^63-1", b"*9223372036854775807\r\n", "ERR Protocol error: invalid multibulk length"),
            ("overflowing multibulk count", b"*99999999999999999999\r\n", "ERR Protocol error: invalid multibulk length"),
            ("multibulk count 2^31-1, no body", b"*2147483647\r\n", None),
            ("512 MB bulk length, no body", b"*3\r\n$3\r\nSET\r\n$4\r\nfz:k\r\n$536870912\r\n", None),
            ("*1 nested 100k deep", b"*1\r\n" * 100_000, "ERR Protocol error: expected '$', got '*'"),
            ("1 MB inline line, no newline", b"A" * MB, "ERR Protocol error: too big inline request"),
        ]
        for name, data, want_err in cases:
            inputs += 1
            before = common.rss_kb(srv.proc.pid) or 0
            # Keep the connection open (no EOF) so a server that waits for the
            # body is seen holding the connection, not closing on EOF.
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.settimeout(5)
            reply, outcome = send_watching(s, data)
            during = common.rss_kb(srv.proc.pid) or 0
            s.close()
            text = bytes(reply).decode("latin-1").strip()
            print(f"  limits: {name}: reply {text[:90]!r}, connection {outcome}, "
                  f"RSS {before // 1024} -> {during // 1024} MB", flush=True)
            if want_err is not None:
                tally.check(text == "-" + want_err, f"limits: {name} answered with Redis's error",
                            f"got {text[:120]!r}, want {'-' + want_err!r}")
            else:
                tally.check(not text or text.startswith("-"), f"limits: {name}: no success reply", text[:120])
            tally.check(during - before < 64 * 1024, f"limits: {name}: RSS did not jump", f"{before} -> {during} KiB")
            if not alive(f"limits: {name}"):
                raise RuntimeError("server died")

        # ---- binary keys and values round-trip exactly
        c = srv.connect()
        allbytes = bytes(range(256))
        pairs = [
            (b"bin:\r\n", b"\r\n"), (b"bin:\x00", b"\x00"), (b"bin:\x00\r\n\x00", allbytes * 4),
            (b"bin:empty", b""), (b"", b"empty key"), (b"bin:big", os.urandom(MB)),
            (b"bin:\r\n$3\r\nGET\r\n", b"*1\r\n$4\r\nPING\r\n"), (b"bin:\xff\xfe", b"\r" * 1000 + b"\n" * 1000),
        ]
        bad = []
        for k, v in pairs:
            inputs += 1
            r = c.call("SET", k, v)
            if r != "OK" or isinstance(r, Error):
                bad.append(f"SET {k!r}: {r!r}")
            r = c.call("GET", k)
            if r != v:
                bad.append(f"GET {k!r}: {str(r)[:60]}")
            r = c.call("STRLEN", k)
            if r != len(v):
                bad.append(f"STRLEN {k!r}: {r!r}")
        r = c.call("MSET", *[x for kv in pairs for x in kv])
        if r != "OK" or isinstance(r, Error):
            bad.append(f"MSET: {r!r}")
        r = c.call("MGET", *[k for k, _ in pairs])
        if r != [v for _, v in pairs]:
            bad.append("MGET differs")
        r1, r2 = c.call("APPEND", b"bin:\x00", b"\r\n\x00"), c.call("GET", b"bin:\x00")
        if r1 != 4 or r2 != b"\x00\r\n\x00":
            bad.append(f"APPEND: {r1!r} {r2!r}")
        r = c.call("DEL", *[k for k, _ in pairs])
        if r != len(pairs):
            bad.append(f"DEL: {r!r}")
        c.close()
        tally.check(not bad, "binary: keys and values with CRLF/NUL round-trip exactly", "; ".join(bad[:5]))
        alive("binary")
        if args.plant == "clobber-witness":
            # Another client changes the witness's keys: it must notice.
            c = srv.connect()
            for i in range(50):
                c.call("SET", b"witness:\r\n\x00:%d" % i, b"clobbered")
            c.close()
            print("  planted: witness keys overwritten by another client")

        # ---- fuzz: random bytes and mutated RESP
        for kind, gen in (("random bytes", random_bytes), ("mutated RESP", mutate)):
            frng = random.Random(rng.random())
            n, hung, t0 = 0, [], time.monotonic()
            while n < fuzz_n and time.monotonic() - t0 < phase_time:
                data = gen(frng)
                n += 1
                try:
                    _, outcome = exchange(port, data, timeout=10.0)
                except OSError as e:
                    outcome = f"connect failed: {e}"
                if outcome not in ("closed", "reset"):
                    hung.append((data[:60], outcome))
                if n % 50 == 0 and not srv.alive():
                    break
            inputs += n
            print(f"  fuzz: {kind}: {n} inputs in {time.monotonic() - t0:.1f}s, {len(hung)} not closed after EOF",
                  flush=True)
            tally.check(not hung, f"fuzz: {kind}: server closes every connection after EOF", repr(hung[:3]))
            if not alive(f"fuzz: {kind}"):
                raise RuntimeError("server died")

        # ---- a client that pipelines GETs of a 100 KB value and never reads
        c = srv.connect()
        c.call("SET", "hostile:big", b"x" * 100_000)
        c.close()
        mon.reset_phase()
        one = encode("GET", "hostile:big")
        chunk = one * (MB // len(one))
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.settimeout(1.0)
        sent, outcome, stalled, t0 = 0, None, 0.0, time.monotonic()
        while outcome is None:
            if sent >= args.pipeline_mb * MB:
                outcome = "all sent"
                break
            if time.monotonic() - t0 > phase_time:
                outcome = "time bound"
                break
            if mon.over.is_set():
                outcome = "RSS limit exceeded"
                break
            try:
                n = s.send(chunk)
                sent += n
                stalled = 0.0
            except socket.timeout:
                stalled += 1.0
                if stalled >= 5.0:
                    outcome = "throttled"  # the server stopped reading from us
            except (BrokenPipeError, ConnectionResetError):
                outcome = "disconnected"
        s.close()
        peak = mon.phase_peak
        print(f"  pipeline: {sent / MB:.0f} MB of GETs sent in {time.monotonic() - t0:.1f}s, outcome {outcome}, "
              f"peak RSS {peak // 1024} MB (start {start_rss // 1024} MB)", flush=True)
        report["pipeline"] = f"{sent / MB:.0f} MB sent, {outcome}, peak RSS {peak // 1024} MB"
        tally.check(outcome in ("disconnected", "throttled"),
                    "pipeline: the non-reading client is disconnected or throttled", outcome)
        tally.check(peak - start_rss < args.rss_limit_mb * 1024,
                    f"pipeline: RSS growth under {args.rss_limit_mb} MB", f"peak {peak // 1024} MB")
        if not alive("pipeline"):
            raise RuntimeError("server died")

        # ---- 10,000 idle connections
        before = mon.reset_phase()
        socks, failed, t0 = [], None, time.monotonic()
        try:
            while len(socks) < args.idle and time.monotonic() - t0 < phase_time * 2:
                try:
                    socks.append(socket.create_connection(("127.0.0.1", port), timeout=10))
                except OSError as e:
                    failed = f"after {len(socks)}: {e}"
                    break
            # Each of a sample must be served.
            sample = rng.sample(socks, min(100, len(socks)))
            for x in sample:
                x.settimeout(10)
                x.sendall(b"*1\r\n$4\r\nPING\r\n")
            bad = 0
            for x in sample:
                try:
                    if x.recv(100) != b"+PONG\r\n":
                        bad += 1
                except OSError:
                    bad += 1
            with_rss = common.rss_kb(srv.proc.pid) or 0
            held = len(socks)
            tally.check(held == args.idle and not failed, f"idle: {args.idle} connections opened", failed or "")
            tally.check(bad == 0, "idle: a sample of 100 idle connections answers PING", f"{bad} did not")
            alive("idle (while held)")
        finally:
            for x in socks:
                x.close()
        socks = []
        after = None
        # RSS "after": taken once the server has served a fresh request, which
        # it does only after handling the closes queued before it.
        common.ping_ok(port)
        after = common.rss_kb(srv.proc.pid) or 0
        per = (with_rss - before) * 1024 / max(held, 1)
        print(f"  idle: {held} connections in {time.monotonic() - t0:.1f}s; RSS before {before // 1024} MB, "
              f"with {with_rss // 1024} MB ({per / 1024:.1f} KiB each), after {after // 1024} MB", flush=True)
        report["idle"] = f"RSS before {before // 1024} MB, with {with_rss // 1024} MB, after {after // 1024} MB"
        tally.check(per < args.idle_kb_per_conn * 1024, f"idle: under {args.idle_kb_per_conn} KiB per idle connection",
                    f"{per / 1024:.1f} KiB")
        inputs += held

        # ---- churn: connections opened and closed fast
        n, errs, t0 = 0, [], time.monotonic()
        crng = random.Random(rng.random())
        while n < churn_n and time.monotonic() - t0 < phase_time:
            n += 1
            try:
                x = socket.create_connection(("127.0.0.1", port), timeout=5)
                x.settimeout(5)
                how = crng.randrange(4)
                if how == 1:
                    x.sendall(b"*1\r\n$4\r\nPING\r\n")
                    if x.recv(100) != b"+PONG\r\n":
                        errs.append("bad PING reply")
                elif how == 2:
                    x.sendall(b"*3\r\n$3\r\nSET\r\n$4\r\nfz:c")  # half a command
                if how >= 2 or crng.random() < 0.5:
                    x.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
                x.close()
            except OSError as e:
                errs.append(str(e))
                if len(errs) > 20:
                    break
        inputs += n
        print(f"  churn: {n} connections in {time.monotonic() - t0:.1f}s, {len(errs)} errors", flush=True)
        tally.check(not errs, "churn: every connection accepted and served", "; ".join(errs[:3]))
        alive("churn")
    except RuntimeError as e:
        tally.check(False, "run", str(e))
    except common.ServerError as e:
        tally.check(False, "server start", str(e))
    finally:
        stop.set()
    try:
        if "witness" in locals():
            witness.join(timeout=60)
            print(f"  witness: {witness.ops} ops, {len(witness.wrong)} wrong, error {witness.error}, "
                  f"max latency {witness.max_latency * 1000:.0f} ms", flush=True)
            tally.check(not witness.wrong, "witness saw only correct answers", "; ".join(witness.wrong[:5]))
            tally.check(witness.error is None, "witness connection never failed", witness.error or "")
            tally.check(witness.ops > 100, "witness did work throughout", f"{witness.ops} ops")
        if up:
            was_alive = srv.alive()
            if not was_alive:
                crashes += 1
            tally.check(was_alive, "server process alive at the end", srv.log_tail() if not was_alive else "")
            peak = mon.peak if "mon" in locals() else 0
            code = srv.stop()
            tally.check(code == 0, "server exits 0 on SIGTERM", f"exit {code}")
            print(f"hostile summary: inputs tried {inputs}, crashes {crashes}, peak RSS {peak // 1024} MB "
                  f"(start {(start_rss or 0) // 1024 if 'start_rss' in locals() else '?'} MB), "
                  + "; ".join(f"{k}: {v}" for k, v in report.items())
                  + f", {time.monotonic() - started:.0f}s")
    finally:
        srv.kill9()
    tally.finish()


if __name__ == "__main__":
    main()
