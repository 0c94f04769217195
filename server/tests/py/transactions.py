"""redis-py against a running respite-server: MULTI / EXEC / DISCARD / WATCH / UNWATCH.

Usage: python3 transactions.py PORT   (exit code 0 = every check held)

Every check is also meant to hold against a real Redis 7 on the same port.
"""
import sys
import threading
import time
import traceback

import redis

port = int(sys.argv[1])


def client(**kwargs):
    kwargs.setdefault("protocol", PROTOCOL)
    return redis.Redis(host="127.0.0.1", port=port, decode_responses=True, **kwargs)


# The whole suite runs twice: RESP2 and RESP3 (redis-py 8 speaks RESP3 unless told otherwise).
# `r` is client A, `other` is client B, a second connection (in the other protocol) whose
# writes race with A's transactions.
PROTOCOL = 2
r = other = None


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def error_of(fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except redis.ResponseError as e:
        return e
    raise AssertionError(f"{getattr(fn, '__name__', fn)}{args} did not fail")


def watch_error_of(pipe):
    """EXEC of `pipe` must be refused because a watched key changed."""
    try:
        result = pipe.execute()
    except redis.WatchError:
        return
    finally:
        pipe.reset()
    raise AssertionError(f"EXEC ran despite a WATCH conflict: {result!r}")


class Raw:
    """One connection, reply by reply, with no redis-py reply callbacks in between
    (SET's callback would turn a "QUEUED" into False, for instance)."""

    def __init__(self):
        self.c = client(single_connection_client=True)

    def __call__(self, *args):
        self.c.connection.send_command(*args)
        return self.c.connection.read_response()

    def err(self, *args):
        try:
            reply = self(*args)
        except redis.ResponseError as e:
            return e
        raise AssertionError(f"{args} did not fail: {reply!r}")


def suite():
    r.flushall()

    # --- pipeline() is MULTI/EXEC: replies in order, effects applied -------------------------
    r.set("n", "10")
    pipe = r.pipeline()  # transaction=True by default
    check(pipe.transaction is True, "pipeline() is not transactional by default")
    pipe.set("a", "1").incr("n").incrby("n", 5).get("a").get("missing").append("l", "xy").mget("a", "l", "n", "missing")
    res = pipe.execute()
    check(res == [True, 11, 16, "1", None, 2, ["1", "xy", "16", None]], f"pipeline results: {res!r}")
    check(r.get("a") == "1" and r.get("n") == "16", f"pipeline effects: a={r.get('a')!r} n={r.get('n')!r}")
    check(r.get("l") == "xy", f"pipeline effects: l={r.get('l')!r}")
    # The pipeline object is reusable after execute().
    pipe.incr("n").mset({"f": "v", "g": "w"}).getrange("l", 1, 1).getdel("g").exists("f", "g")
    res = pipe.execute()
    check(res == [17, True, "y", "w", 1], f"second pipeline results: {res!r}")
    # An empty transaction pipeline is a no-op.
    check(r.pipeline().execute() == [], "empty pipeline")

    # --- the wire protocol, reply by reply ---------------------------------------------------
    raw = Raw()
    check(raw("MULTI") == "OK", "MULTI reply")
    check(raw("SET", "w1", "v") == "QUEUED", "SET inside MULTI is not QUEUED")
    check(raw("INCR", "w2") == "QUEUED", "INCR inside MULTI is not QUEUED")
    check(r.get("w1") is None, "a queued SET ran before EXEC")
    res = raw("EXEC")
    check(res == ["OK", 1], f"EXEC reply: {res!r}")
    check(r.get("w1") == "v" and r.get("w2") == "1", "EXEC effects")
    check(raw("MULTI") == "OK", "MULTI reply (empty transaction)")
    check(raw("EXEC") == [], "EXEC of an empty transaction")
    e = raw.err("EXEC")
    check(str(e) == "EXEC without MULTI", f"EXEC without MULTI: {e}")
    e = raw.err("DISCARD")
    check(str(e) == "DISCARD without MULTI", f"DISCARD without MULTI: {e}")
    check(raw("MULTI") == "OK", "MULTI reply (nesting)")
    e = raw.err("MULTI")
    check(str(e) == "MULTI calls can not be nested", f"nested MULTI: {e}")
    e = raw.err("WATCH", "w1")
    check(str(e) == "WATCH inside MULTI is not allowed", f"WATCH inside MULTI: {e}")
    check(raw("GET", "w1") == "QUEUED", "GET after the refused MULTI/WATCH is not QUEUED")
    # Neither the nested MULTI nor WATCH aborts the transaction.
    res = raw("EXEC")
    check(res == ["v"], f"EXEC after nested MULTI / WATCH inside MULTI: {res!r}")
    check(raw("PING") == "PONG", "connection usable after EXEC")

    # --- DISCARD ------------------------------------------------------------------------------
    r.set("d", "before")
    check(raw("MULTI") == "OK", "MULTI reply (discard)")
    check(raw("SET", "d", "after") == "QUEUED", "SET not QUEUED (discard)")
    check(raw("DEL", "a") == "QUEUED", "DEL not QUEUED (discard)")
    check(raw("DISCARD") == "OK", "DISCARD reply")
    check(r.get("d") == "before" and r.get("a") == "1", "a DISCARDed command ran")
    e = raw.err("EXEC")
    check(str(e) == "EXEC without MULTI", f"EXEC after DISCARD: {e}")
    # redis-py: reset() on a pipeline in MULTI mode after queueing.
    pipe = r.pipeline()
    pipe.set("d", "piped")
    pipe.reset()
    check(r.get("d") == "before", "reset() pipeline ran its commands")

    # --- a runtime error inside EXEC: only that slot fails ------------------------------------
    r.set("text", "abc")
    r.set("cnt", "1")
    pipe = r.pipeline()
    pipe.set("rt1", "x").incr("text").incr("cnt").incrbyfloat("text", 1).get("rt1")
    res = pipe.execute(raise_on_error=False)
    check(len(res) == 5, f"runtime-error pipeline length: {res!r}")
    check(res[0] is True and res[2] == 2 and res[4] == "x", f"runtime-error pipeline results: {res!r}")
    check(isinstance(res[1], redis.ResponseError)
          and "value is not an integer or out of range" in str(res[1]), f"INCR slot: {res[1]!r}")
    check(isinstance(res[3], redis.ResponseError) and "value is not a valid float" in str(res[3]),
          f"INCRBYFLOAT slot: {res[3]!r}")
    check(r.get("rt1") == "x" and r.get("cnt") == "2" and r.get("text") == "abc", "runtime-error effects")
    # With raise_on_error (the default) the first error is raised, but the others still ran.
    pipe = r.pipeline()
    pipe.incr("cnt").incr("text").incr("cnt")
    e = error_of(pipe.execute)
    check("value is not an integer or out of range" in str(e), f"raised runtime error: {e}")
    check(r.get("cnt") == "4", f"commands around a runtime error: cnt={r.get('cnt')!r}")
    # Raw: the error sits inside the EXEC array.
    check(raw("MULTI") == "OK", "MULTI reply (runtime error)")
    check(raw("INCR", "text") == "QUEUED", "INCR on text not QUEUED: errors are found at EXEC")
    check(raw("INCR", "cnt") == "QUEUED", "INCR cnt not QUEUED")
    res = raw("EXEC")
    check(len(res) == 2 and isinstance(res[0], redis.ResponseError) and res[1] == 5, f"raw EXEC: {res!r}")

    # --- a queueing error: EXECABORT and nothing runs -----------------------------------------
    r.set("q", "0")
    pipe = r.pipeline()
    pipe.set("q", "1").execute_command("NOSUCHCMD", "arg").incr("q2")
    e = error_of(pipe.execute)
    check("unknown command" in str(e) or "EXECABORT" in str(e), f"unknown command in pipeline: {e}")
    check(r.get("q") == "0" and r.get("q2") is None, "a command of an aborted transaction ran")
    pipe = r.pipeline()
    pipe.set("q", "1").execute_command("GET").incr("q2")
    e = error_of(pipe.execute)
    check("wrong number of arguments" in str(e) or "EXECABORT" in str(e), f"bad arity in pipeline: {e}")
    check(r.get("q") == "0" and r.get("q2") is None, "a command of an arity-aborted transaction ran")
    # Raw: the queueing error is reported at once, EXEC answers EXECABORT.
    check(raw("MULTI") == "OK", "MULTI reply (queueing error)")
    check(raw("SET", "q", "1") == "QUEUED", "SET not QUEUED (queueing error)")
    e = raw.err("NOSUCHCMD", "arg")
    check(str(e).startswith("unknown command 'NOSUCHCMD'"), f"unknown command reply: {e}")
    e = raw.err("GET")
    check(str(e) == "wrong number of arguments for 'get' command", f"bad arity reply: {e}")
    check(raw("INCR", "q2") == "QUEUED", "INCR after a queueing error not QUEUED")
    e = raw.err("EXEC")
    check(isinstance(e, redis.exceptions.ExecAbortError)
          and str(e) == "Transaction discarded because of previous errors.", f"EXECABORT: {e!r} {e}")
    check(r.get("q") == "0" and r.get("q2") is None, "a command of a raw aborted transaction ran")
    e = raw.err("EXEC")
    check(str(e) == "EXEC without MULTI", f"the aborted transaction is still open: {e}")
    # DISCARD also ends an aborted transaction.
    check(raw("MULTI") == "OK", "MULTI reply (discard aborted)")
    raw.err("NOSUCHCMD")
    check(raw("DISCARD") == "OK", "DISCARD of an aborted transaction")
    check(raw("PING") == "PONG", "connection usable after DISCARD")

    # --- WATCH: a conflicting write by another client aborts EXEC -----------------------------
    r.set("k", "orig")
    pipe = r.pipeline()
    pipe.watch("k")
    check(pipe.get("k") == "orig", "GET in immediate (watching) mode")
    check(other.set("k", "theirs") is True, "client B's SET")
    pipe.multi()
    pipe.set("k", "mine")
    pipe.incr("side-effect")
    watch_error_of(pipe)
    check(r.get("k") == "theirs", f"after the WATCH conflict k={r.get('k')!r}")
    check(r.get("side-effect") is None, "a command of a WATCH-aborted transaction ran")
    # Raw: EXEC answers a null array.
    r.set("k", "orig")
    check(raw("WATCH", "k") == "OK", "WATCH reply")
    other.append("k", "+")
    check(raw("MULTI") == "OK", "MULTI reply (raw watch)")
    check(raw("SET", "k", "mine") == "QUEUED", "SET not QUEUED (raw watch)")
    res = raw("EXEC")
    check(res is None, f"EXEC after a WATCH conflict: {res!r}")
    check(r.get("k") == "orig+", f"raw WATCH conflict k={r.get('k')!r}")
    # The failed EXEC also dropped the watch: the next transaction runs.
    other.set("k", "again")
    check(raw("MULTI") == "OK" and raw("SET", "k", "ok") == "QUEUED", "MULTI/SET after a failed EXEC")
    res = raw("EXEC")
    check(res == ["OK"] and r.get("k") == "ok", f"watches survived a failed EXEC: {res!r}")


    def expect_watch_conflict(what, setup, write):
        """Client A watches the keys, client B runs `write`, A's EXEC must be refused."""
        setup()
        p = r.pipeline()
        p.watch("k", "m")
        write()
        p.multi()
        p.set("k", "mine")
        try:
            watch_error_of(p)
        except AssertionError as e:
            raise AssertionError(f"{what}: {e}") from None
        check(r.get("k") != "mine", f"{what}: k={r.get('k')!r}")


    def expect_no_conflict(what, setup, touch):
        """Client A watches the keys, B runs `touch`, A's EXEC must still run."""
        setup()
        p = r.pipeline()
        p.watch("k", "m")
        touch()
        p.multi()
        p.set("k", "mine")
        try:
            res = p.execute()
        except redis.WatchError:
            raise AssertionError(f"{what}: EXEC was aborted") from None
        finally:
            p.reset()
        check(res == [True], f"{what}: EXEC reply {res!r}")
        check(r.get("k") == "mine", f"{what}: k={r.get('k')!r}")


    def k_only():
        r.delete("m")
        r.set("k", "orig")


    def k_and_m():
        r.set("k", "orig")
        r.set("m", "1")


    # Writes that change a watched key abort, even when the value ends up the same.
    expect_watch_conflict("SET to the same value", k_only, lambda: other.set("k", "orig"))
    expect_watch_conflict("DEL of the watched key", k_only, lambda: other.delete("k"))
    expect_watch_conflict("EXPIRE of the watched key", k_only, lambda: other.expire("k", 100))
    expect_watch_conflict("SET of a watched missing key", k_only, lambda: other.set("m", "1"))
    expect_watch_conflict("INCR of the second watched key", k_and_m, lambda: other.incr("m"))
    expect_watch_conflict("RENAME onto the watched key", k_only,
                          lambda: (other.set("src", "s"), other.rename("src", "k")))
    expect_watch_conflict("RENAME away from the watched key", k_only, lambda: other.rename("k", "moved"))
    expect_watch_conflict("FLUSHDB with the watched key", k_only, lambda: other.flushdb())
    # A transaction by B that writes the key counts too.
    expect_watch_conflict("MULTI/EXEC of B", k_only,
                          lambda: other.pipeline().set("k", "tx").execute())
    # Reads, failed conditional writes and writes to other keys do not abort.
    expect_no_conflict("no other client", k_only, lambda: None)
    expect_no_conflict("GET/EXISTS/TTL by B", k_only,
                       lambda: (other.get("k"), other.exists("k", "m"), other.ttl("k"), other.strlen("k")))
    expect_no_conflict("SET NX on the existing key", k_only,
                       lambda: check(other.set("k", "x", nx=True) is None, "SET NX succeeded"))
    expect_no_conflict("SET XX on the missing key", k_only,
                       lambda: check(other.set("m", "x", xx=True) is None, "SET XX succeeded"))
    expect_no_conflict("DEL of the missing watched key", k_only,
                       lambda: check(other.delete("m") == 0, "DEL of a missing key deleted"))
    expect_no_conflict("EXPIRE/PERSIST that do nothing", k_only,
                       lambda: check(other.expire("m", 10) is False and other.persist("k") is False,
                                     "EXPIRE/PERSIST did something"))
    expect_no_conflict("writes to other keys", k_only,
                       lambda: (other.set("unrelated", "1"), other.delete("unrelated")))
    expect_no_conflict("the same key name in another db", k_only,
                       lambda: client(db=1).set("k", "db1"))
    # UNWATCH forgets the watches.
    r.set("k", "orig")
    check(raw("WATCH", "k") == "OK", "WATCH reply (unwatch)")
    check(raw("UNWATCH") == "OK", "UNWATCH reply")
    other.set("k", "theirs")
    check(raw("MULTI") == "OK" and raw("SET", "k", "mine") == "QUEUED", "MULTI/SET after UNWATCH")
    res = raw("EXEC")
    check(res == ["OK"] and r.get("k") == "mine", f"EXEC after UNWATCH: {res!r}")
    # DISCARD forgets the watches too.
    check(raw("WATCH", "k") == "OK", "WATCH reply (discard)")
    check(raw("MULTI") == "OK" and raw("DISCARD") == "OK", "MULTI/DISCARD")
    other.set("k", "theirs")
    check(raw("MULTI") == "OK" and raw("SET", "k", "mine2") == "QUEUED", "MULTI/SET after DISCARD")
    res = raw("EXEC")
    check(res == ["OK"] and r.get("k") == "mine2", f"EXEC after DISCARD dropped watches: {res!r}")
    # The watching client's own write before MULTI also aborts its EXEC (as in Redis).
    r.set("k", "orig")
    check(raw("WATCH", "k") == "OK", "WATCH reply (own write)")
    check(raw("SET", "k", "self") == "OK", "own SET while watching")
    check(raw("MULTI") == "OK" and raw("SET", "k", "mine") == "QUEUED", "MULTI/SET (own write)")
    res = raw("EXEC")
    check(res is None and r.get("k") == "self", f"EXEC after the client's own write: {res!r}")
    # A watched key that expires before EXEC aborts it (Redis 7).
    r.set("k", "short", px=50)
    check(raw("WATCH", "k") == "OK", "WATCH reply (expiry)")
    deadline = time.monotonic() + 10
    while r.pttl("k") != -2:  # waits for the clock, not for another actor
        check(time.monotonic() < deadline, "key with PX 50 did not expire within 10 s")
        time.sleep(0.01)
    check(raw("MULTI") == "OK" and raw("SET", "k", "mine") == "QUEUED", "MULTI/SET (expiry)")
    res = raw("EXEC")
    check(res is None and r.get("k") is None, f"EXEC after the watched key expired: {res!r}")

    # --- r.transaction(): WATCH + retry from several threads ----------------------------------
    THREADS, INCREMENTS, MAX_ATTEMPTS = 4, 50, 100_000
    r.set("counter", "0")
    attempts = [0]
    attempts_lock = threading.Lock()
    failures = []


    def bump(pipe):
        with attempts_lock:
            attempts[0] += 1
            if attempts[0] > MAX_ATTEMPTS:
                raise RuntimeError("too many transaction attempts")
        value = int(pipe.get("counter"))
        pipe.multi()
        pipe.set("counter", value + 1)


    def worker():
        try:
            for _ in range(INCREMENTS):
                res = r.transaction(bump, "counter")
                if res != [True]:
                    raise AssertionError(f"transaction() returned {res!r}")
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            failures.append(repr(e))


    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    check(not any(t.is_alive() for t in threads), "transaction() threads did not finish within 120 s")
    check(not failures, f"transaction() threads failed: {failures}")
    total = THREADS * INCREMENTS
    check(r.get("counter") == str(total), f"counter={r.get('counter')!r}, expected {total}")
    check(attempts[0] >= total, f"only {attempts[0]} attempts for {total} increments")


for PROTOCOL in (2, 3):
    r = client()
    other = client(protocol=5 - PROTOCOL)
    try:
        check(r.client_info()["resp"] == str(PROTOCOL), f"client_info: {r.client_info()!r}")
        check(other.client_info()["resp"] == str(5 - PROTOCOL), "client B's protocol")
        suite()
    except AssertionError as e:
        traceback.print_exc()
        sys.exit(f"FAILED under RESP{PROTOCOL}: {e}")
    r.close()
    other.close()

# --- checks that Redis 7 makes when a command is queued -----------------------------------
# Placed last so that everything above has run when one of these fails.
r = client(protocol=2)
other = client(protocol=2)
raw = Raw()
r.flushall()
# A bad subcommand, or a subcommand with the wrong arity, is a queueing error: EXECABORT, and
# the SET queued before it never runs.
for bad in (("CONFIG", "GET"), ("CLIENT", "NOSUCH"), ("OBJECT", "NOSUCH", "k")):
    check(raw("MULTI") == "OK", f"MULTI reply ({bad})")
    check(raw("SET", "sub", "ran") == "QUEUED", f"SET not QUEUED ({bad})")
    try:
        reply = raw(*bad)
    except redis.ResponseError:
        reply = None
    check(reply is None, f"{' '.join(bad)} inside MULTI was answered {reply!r}, not an error")
    e = raw.err("EXEC")
    check(isinstance(e, redis.exceptions.ExecAbortError), f"EXEC after {' '.join(bad)}: {e!r}")
    check(r.get("sub") is None, f"SET ran in a transaction aborted by {' '.join(bad)}")
# FLUSHDB / FLUSHALL abort only the watchers of keys that existed: a watched missing key is
# not modified by them.
for flush in ("FLUSHDB", "FLUSHALL"):
    r.set("present", "1")
    check(raw("WATCH", "absent") == "OK", f"WATCH reply ({flush})")
    other.execute_command(flush)
    check(raw("MULTI") == "OK" and raw("SET", "after", "1") == "QUEUED", f"MULTI/SET ({flush})")
    res = raw("EXEC")
    check(res == ["OK"], f"{flush} aborted a transaction watching a missing key: EXEC answered {res!r}")
r.flushall()
print("ok")
