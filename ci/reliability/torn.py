#!/usr/bin/env python3
"""Torn and corrupt tails: damage the data files after a clean stop, restart.

Each cycle, on a fresh data dir:
  1. write "old" keys (some with a long TTL, some deleted again), then
     "recent" overwrites of some old keys, then padding keys, so that the last
     4 KiB of every file holds only padding and recent overwrites;
  2. stop cleanly (SIGTERM, wait for exit 0);
  3. for each regular file > 0 bytes in the data dir, either cut
     it at a random offset in its last 4 KiB or overwrite a few random bytes
     there;
  4. restart: the server must start within --start-timeout, answer, and keep
     running. Every old key must read back exactly (deleted ones absent);
     a recent overwrite may show its new or its previous value; padding may be
     lost; nothing may be a value we never wrote (garbage);
  5. respite only: when records were lost, the log must say so (a line with
     "dropped", "corrupt" or "truncat"), and it must have done so in at
     least one cycle;
  6. write a few new keys, stop cleanly, restart without damage: the keys read
     after the damage and the new ones must all be there unchanged (recovery
     cut the tail instead of leaving new records behind garbage).

--server-kind redis damages only *.incr.aof and only by truncation (the
redis AOF has no checksums: redis refuses a corrupt middle and would load a
flipped byte inside a value as data; with aof-load-truncated yes, its default,
it loads a truncated AOF). Override with --damage and --only.
"""

import fnmatch
import os
import random
import sys
import time
import zlib

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import common  # noqa: E402
from common import Error


def value(key, gen, rng, size):
    body = f"{key}|g{gen}|".encode() + bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz0123456789")
                                             for _ in range(min(size, 32)))
    body = (body * (size // len(body) + 1))[:max(size, len(body))]
    return body + b"|%08x" % zlib.crc32(body)


def sound(key, val):
    body, crc = val[:-9], val[-8:]
    return val[-9:-8] == b"|" and b"%08x" % zlib.crc32(body) == crc and body.startswith(key.encode() + b"|")


def pipeline(conn, cmds, chunk=200):
    out = []
    for i in range(0, len(cmds), chunk):
        part = cmds[i:i + chunk]
        conn.send_cmds(part)
        out += [conn.read() for _ in part]
    return out


def record_ends(path):
    """Where the records of a plain respite log end, one offset per record
    (docs/format-bitcask.md: a 24-byte file header, then records of a 32-byte
    header, key length at 24..28 and value length at 28..32, key and value).
    Empty for anything that is not such a log."""
    with open(path, "rb") as f:
        b = f.read()
    if not b.startswith(b"RSPTLOG\0"):
        return set()
    ends, at = set(), 24
    while at + 32 <= len(b):
        key = int.from_bytes(b[at + 24:at + 28], "little")
        val = int.from_bytes(b[at + 28:at + 32], "little")
        at += 32 + key + val
        if at > len(b):
            break
        ends.add(at)
    return ends


def damage(data_dir, rng, how, only):
    """Damage each eligible file's last 4 KiB; returns a list of descriptions
    and whether every cut landed exactly where a record ends (then nothing
    torn is left for recovery to find, and the server may say nothing)."""
    done = []
    clean_cuts = []
    for root, _dirs, files in os.walk(data_dir):
        for name in sorted(files):
            path = os.path.join(root, name)
            # The server's own log lives beside the data dir, not in it; respite's Bitcask
            # data files are named *.log, so nothing in here is skipped by name.
            if not os.path.isfile(path) or os.path.islink(path):
                continue
            if only and not fnmatch.fnmatch(name, only):
                continue
            size = os.path.getsize(path)
            if size == 0:
                continue
            lo = max(0, size - 4096)
            kind = how if how != "mixed" else rng.choice(("truncate", "overwrite"))
            if kind == "truncate":
                at = rng.randint(lo, size - 1)
                clean_cuts.append(at in record_ends(path))
                os.truncate(path, at)
                done.append(f"{os.path.relpath(path, data_dir)}: cut at {at} of {size}")
            else:
                spots = sorted(rng.randint(lo, size - 1) for _ in range(rng.randint(1, 8)))
                with open(path, "r+b") as f:
                    for at in spots:
                        f.seek(at)
                        b = f.read(1)[0]
                        f.seek(at)
                        f.write(bytes([b ^ rng.randint(1, 255)]))
                    f.flush()
                    os.fsync(f.fileno())
                done.append(f"{os.path.relpath(path, data_dir)}: {len(spots)} bytes flipped "
                            f"at {spots} of {size}")
                clean_cuts.append(False)
    return done, bool(clean_cuts) and all(clean_cuts)


def main():
    p = common.base_args(__doc__.split("\n")[0])
    p.add_argument("--cycles", type=int, default=None, help="default 8 quick, 60 long")
    p.add_argument("--damage", choices=["truncate", "overwrite", "mixed"], default=None,
                   help="default: mixed for respite, truncate for redis")
    p.add_argument("--only", default=None,
                   help="damage only files whose name matches this glob (default: all for respite, "
                        "*.incr.aof for redis)")
    p.add_argument("--old-keys", type=int, default=400)
    p.add_argument("--pad-kb", type=int, default=1024, help="padding written after the old keys")
    p.add_argument("--start-timeout", type=float, default=30.0)
    p.add_argument("--budget", type=float, default=None, help="seconds; default 150 quick, 1800 long")
    p.add_argument("--plant", choices=["old"], default=None,
                   help="old: also cut a file deep inside (the old keys), to prove loss is caught")
    args = p.parse_args()
    seed = common.pick_seed(args)
    rng = random.Random(seed)
    cycles = args.cycles or (60 if args.long else 8)
    budget = args.budget or (1800 if args.long else 150)
    how = args.damage or ("truncate" if args.server_kind == "redis" else "mixed")
    only = args.only if args.only is not None else ("*.incr.aof" if args.server_kind == "redis" else None)
    tally = common.Tally()
    started = time.monotonic()
    stats = dict(old_ok=0, old_lost=0, recent_new=0, recent_prev=0, recent_lost=0, pad_ok=0,
                 pad_lost=0, garbage=0, files_damaged=0, cycles=0, cycles_logged=0)
    print(f"torn: {args.server_kind} {args.server_bin}, damage {how}, files {only or 'all'}", flush=True)

    for cycle in range(cycles):
        if time.monotonic() - started > budget:
            tally.check(False, "time budget", f"{budget}s spent after {cycle} cycles")
            break
        base = common.temp_dir("torn", args.keep)
        srv = common.Server(args.server_bin, args.server_kind, os.path.join(base, "data"),
                            os.path.join(base, "server.log"), appendfsync="everysec")
        try:
            srv.start(timeout=args.start_timeout)
            conn = srv.connect()
            # expect[key] = set of acceptable values (None = absent); classes for reporting.
            expect, klass = {}, {}
            old = [f"torn:c{cycle}:old:{i}" for i in range(args.old_keys)]
            cmds = []
            for i, k in enumerate(old):
                v = value(k, 0, rng, rng.choice((10, 100, 700, 3000)))
                if i % 10 == 0:
                    cmds.append(("SET", k, v, "EX", rng.randint(3600, 86400)))
                else:
                    cmds.append(("SET", k, v))
                expect[k], klass[k] = {v}, "old"
            deleted = old[5::17]
            for k in deleted:
                cmds.append(("DEL", k))
                expect[k] = {None}
            # Recent overwrites go last-but-padding; they may come back old or new.
            recent = rng.sample([k for k in old if k not in deleted], 20)
            pad, pad_bytes, j = [], 0, 0
            pad_target = rng.randint(args.pad_kb // 2, args.pad_kb) * 1024
            tail_cmds = []
            while pad_bytes < pad_target and j < 100_000:
                k = f"torn:c{cycle}:pad:{j}"
                v = value(k, 0, rng, rng.choice((50, 500, 1500)))
                tail_cmds.append(("SET", k, v))
                expect[k], klass[k] = {v, None}, "pad"
                pad.append(k)
                pad_bytes += len(v) + len(k)
                j += 1
            for k in recent:
                v = value(k, 1, rng, rng.choice((10, 100, 700)))
                tail_cmds.insert(rng.randint(max(0, len(tail_cmds) - 60), len(tail_cmds)), ("SET", k, v))
                expect[k] = expect[k] | {v}
                klass[k] = "recent"
            replies = pipeline(conn, cmds) + pipeline(conn, tail_cmds)
            bad = [r for r in replies if isinstance(r, Error)]
            tally.check(not bad, f"cycle {cycle}: writes accepted", repr(bad[:3]))
            conn.close()
            code = srv.stop()
            tally.check(code == 0, f"cycle {cycle}: clean stop (SIGTERM) exits 0", f"exit {code}")

            log_before = len(srv.log_text())
            what, on_record_ends = damage(srv.data_dir, rng, how, only)
            if args.plant == "old":
                files = [os.path.join(r, f) for r, _, fs in os.walk(srv.data_dir) for f in fs
                         if not only or fnmatch.fnmatch(f, only)]
                big = max(files, key=os.path.getsize)
                os.truncate(big, os.path.getsize(big) // 3)
                what.append(f"PLANTED: {big} cut to a third")
            stats["files_damaged"] += len(what)
            print(f"  cycle {cycle}: damaged " + "; ".join(what), flush=True)
            tally.check(bool(what), f"cycle {cycle}: found data files to damage")

            try:
                srv.start(timeout=args.start_timeout)
            except common.ServerError as e:
                tally.check(False, f"cycle {cycle}: server starts after damage", str(e)[:2000])
                continue
            conn = srv.connect()
            keys = list(expect)
            got = pipeline(conn, [("GET", k) for k in keys])
            seen = {}
            lost = []
            for k, v in zip(keys, got):
                seen[k] = v
                c = klass[k]
                if isinstance(v, Error) or (v is not None and not isinstance(v, bytes)):
                    tally.check(False, f"cycle {cycle}: GET {k}", repr(v))
                    continue
                if v not in expect[k]:
                    if v is not None and k in deleted:
                        tally.check(False, f"cycle {cycle}: deleted key {k} came back", repr(v[:80]))
                    elif v is not None:
                        stats["garbage"] += 1
                        tally.check(False, f"cycle {cycle}: {k} ({c}) is a value we never wrote",
                                    f"{'checksum fails' if not sound(k, v) else 'sound but wrong'}: {v[:80]!r}")
                    else:
                        lost.append(k)
                        stats[f"{c}_lost"] += 1
                        if c != "pad":
                            tally.check(False, f"cycle {cycle}: {c} key {k} lost (not in a damaged tail)")
                    continue
                if c == "old":
                    stats["old_ok"] += 1
                elif c == "recent":
                    newest = [x for x in expect[k] if x is not None and b"|g1|" in x]
                    stats["recent_new" if v in newest else "recent_prev"] += 1
                elif v is None:
                    lost.append(k)
                    stats["pad_lost"] += 1
                else:
                    stats["pad_ok"] += 1
            # TTLs of the old keys must have survived.
            ttl_keys = [k for i, k in enumerate(old) if i % 10 == 0 and k not in deleted and k not in recent]
            ttls = pipeline(conn, [("TTL", k) for k in ttl_keys])
            wrong_ttl = [(k, t) for k, t in zip(ttl_keys, ttls) if not (isinstance(t, int) and 3000 < t <= 86400)]
            tally.check(not wrong_ttl, f"cycle {cycle}: TTLs of old keys survive", repr(wrong_ttl[:3]))
            if lost:
                print(f"  cycle {cycle}: lost {len(lost)} keys written last: {', '.join(lost[:8])}"
                      f"{' ...' if len(lost) > 8 else ''}", flush=True)
            log = srv.log_text()[log_before:]
            mention = [l for l in log.splitlines() if any(w in l.lower() for w in ("dropped", "corrupt", "truncat"))]
            reverted = sum(1 for k in recent if seen.get(k) is not None and b"|g1|" not in seen[k])
            if mention:
                stats["cycles_logged"] += 1
            if on_record_ends and not args.plant:
                # A cut exactly where a record ends leaves no torn record: the
                # log reads as a shorter, whole log, and recovery has nothing to
                # report. What was cut is still checked above (no garbage, old
                # keys intact).
                print(f"  cycle {cycle}: the cut fell on a record boundary: nothing torn to report")
            elif args.server_kind == "respite" and (lost or reverted):
                # Records were dropped, so the server must say so.
                tally.check(bool(mention), f"cycle {cycle}: log reports the damage "
                            "(a line with 'dropped', 'corrupt' or 'truncat')", log[-800:])
            elif cycle == 0:
                print("  redis log (not asserted): " + " | ".join(l.strip()[-90:] for l in mention[:3]))

            # New writes after recovery, then a clean restart without damage.
            after = {}
            for i in range(50):
                k = f"torn:c{cycle}:after:{i}"
                after[k] = value(k, 2, rng, rng.choice((10, 300)))
            r = pipeline(conn, [("SET", k, v) for k, v in after.items()])
            tally.check(all(x == "OK" for x in r), f"cycle {cycle}: writes accepted after recovery", repr(r[:3]))
            conn.close()
            tally.check(srv.alive(), f"cycle {cycle}: server still running after the reads")
            code = srv.stop()
            tally.check(code == 0, f"cycle {cycle}: clean stop after recovery", f"exit {code}")
            srv.start(timeout=args.start_timeout)
            conn = srv.connect()
            want = dict(seen)
            want.update(after)
            keys = list(want)
            got = pipeline(conn, [("GET", k) for k in keys])
            changed = [(k, want[k], g) for k, g in zip(keys, got) if g != want[k]]
            tally.check(not changed, f"cycle {cycle}: second restart shows the recovered state plus new writes",
                        "; ".join(f"{k}: {str(a)[:40]} -> {str(b)[:40]}" for k, a, b in changed[:5]))
            conn.close()
            code = srv.stop()
            tally.check(code == 0, f"cycle {cycle}: final clean stop", f"exit {code}")
            stats["cycles"] += 1
        except (common.ServerError, OSError, common.ProtocolError) as e:
            tally.check(False, f"cycle {cycle}: server failed", f"{type(e).__name__}: {e}"[:2000])
        finally:
            srv.kill9()

    if args.server_kind == "respite" and stats["cycles"]:
        tally.check(stats["cycles_logged"] > 0, "the log reported damage in at least one cycle")
    print(f"torn summary: cycles {stats['cycles']}, files damaged {stats['files_damaged']}, "
          f"old keys ok {stats['old_ok']} lost {stats['old_lost']}, recent overwrites new "
          f"{stats['recent_new']} previous {stats['recent_prev']} lost {stats['recent_lost']}, "
          f"padding ok {stats['pad_ok']} lost {stats['pad_lost']}, garbage {stats['garbage']}, "
          f"cycles whose log mentions the damage {stats['cycles_logged']}, "
          f"{time.monotonic() - started:.0f}s")
    tally.finish()


if __name__ == "__main__":
    main()
