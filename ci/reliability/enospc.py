#!/usr/bin/env python3
"""A full disk (ENOSPC) under appendfsync always: clear errors, reads go on, nothing acknowledged lost.

The data dir lives on a size-limited tmpfs mounted for this run (needs root or
CAP_SYS_ADMIN; skipped with a note where mounting is not allowed). The server is
filled with values until the disk refuses; then:
  - every refused write got an error reply that names the cause (no space), never +OK,
    and the connection and the server stay up;
  - reads of acknowledged keys go on and return their exact values;
  - once space is freed (the tmpfs is remounted larger) and the server restarted,
    every acknowledged write is there with its value, nothing is garbage, and writes
    work again.
"""

import hashlib
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import Error  # noqa: E402

VALUE_BYTES = 32 * 1024


def value_for(i):
    """A value that names its key, so a wrong or garbled one is recognised."""
    seed = hashlib.sha256(f"enospc:{i}".encode()).digest()
    return (seed * (VALUE_BYTES // len(seed) + 1))[:VALUE_BYTES]


def mount_tmpfs(path, size_mb):
    os.makedirs(path, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", path],
                       capture_output=True, text=True)
    return r.returncode == 0, (r.stderr or r.stdout).strip()


def remount(path, size_mb):
    r = subprocess.run(["mount", "-o", f"remount,size={size_mb}m", path], capture_output=True, text=True)
    return r.returncode == 0, (r.stderr or r.stdout).strip()


def unmount(path):
    subprocess.run(["umount", "-l", path], capture_output=True)


def main():
    p = common.base_args(__doc__.split("\n")[0])
    p.add_argument("--size-mb", type=int, default=8, help="the small filesystem's size")
    args = p.parse_args()
    common.pick_seed(args)
    tally = common.Tally()
    base = common.temp_dir("enospc", args.keep)
    mnt = os.path.join(base, "small")
    ok, why = mount_tmpfs(mnt, args.size_mb)
    if not ok:
        print(f"enospc: cannot mount a small filesystem here ({why}); skipped")
        print("0 passed, 0 failed")
        return
    srv = None
    try:
        srv = common.Server(args.server_bin, args.server_kind, os.path.join(mnt, "data"),
                            os.path.join(base, "server.log"), appendfsync="always")
        srv.start()
        c = srv.connect(timeout=30.0)
        acked, refused, errors = [], [], []
        limit = (args.size_mb * 1024 * 1024) // VALUE_BYTES * 3
        started = time.monotonic()
        i = 0
        while i < limit and time.monotonic() - started < 120:
            r = c.call("SET", f"full:{i}", value_for(i))
            if isinstance(r, Error):
                refused.append(i)
                errors.append(r.text)
                if len(refused) >= 5:
                    break
            elif r == "OK":
                tally.check(not refused, f"SET full:{i} acknowledged after a refusal",
                            "the disk is still full")
                acked.append(i)
            else:
                tally.check(False, f"SET full:{i}", f"unexpected reply {r!r}")
            i += 1
        print(f"enospc: {len(acked)} writes acknowledged, then refused with: {errors[:1]}", flush=True)
        tally.check(bool(refused), "the full disk refused a write", f"{i} writes all acknowledged")
        tally.check(len(acked) > 10, "writes were acknowledged before the disk filled", f"{len(acked)}")
        tally.check(all("space" in e.lower() for e in errors),
                    "every refusal names the cause (no space left)", repr(errors[:2]))
        tally.check(srv.alive() and c.call("PING") == "PONG", "server and connection alive after ENOSPC")
        d = srv.connect()
        bad = [k for k in acked[::max(1, len(acked) // 50)] if d.call("GET", f"full:{k}") != value_for(k)]
        tally.check(not bad, "reads of acknowledged keys go on after ENOSPC", f"wrong: {bad[:5]}")
        d.close()
        c.close()

        # Free space, restart: every acknowledged write is there, nothing is garbage.
        ok, why = remount(mnt, args.size_mb * 8)
        tally.check(ok, "remount the filesystem larger", why)
        code = srv.stop()
        tally.check(code is not None, "the server stops on SIGTERM after ENOSPC", f"exit {code}")
        srv.start()
        c = srv.connect(timeout=30.0)
        lost = [k for k in acked if c.call("GET", f"full:{k}") != value_for(k)]
        tally.check(not lost, "every acknowledged write survives ENOSPC and a restart",
                    f"{len(lost)} lost or wrong, e.g. {lost[:5]}")
        garbage = []
        for k in refused:
            r = c.call("GET", f"full:{k}")
            if r is not None and r != value_for(k):
                garbage.append(k)
        tally.check(not garbage, "a refused write is absent or whole, never garbage", f"{garbage[:5]}")
        tally.check(c.call("SET", "after:space", "1") == "OK", "writes work again once space is freed")
        c.close()
        print(f"enospc summary: acknowledged {len(acked)}, refused {len(refused)}, lost {len(lost)}, "
              f"garbage {len(garbage)}", flush=True)
    except common.ServerError as e:
        tally.check(False, "server", str(e))
    except (ConnectionError, OSError) as e:
        # Redis exits on an AOF write error under `always`; respite must keep serving.
        tally.check(False, "the server kept the connection through ENOSPC",
                    f"{type(e).__name__}: {e}; alive={srv.alive() if srv else None}")
    finally:
        if srv is not None:
            srv.kill9()
        unmount(mnt)
    tally.finish()


if __name__ == "__main__":
    main()
