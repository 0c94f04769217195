"""redis-py against a running respite-server: every command family, with edge cases.

Usage: python3 commands.py PORT   (exit code 0 = every assertion held)
"""
import sys

import redis

port = int(sys.argv[1])
r = redis.Redis(host="127.0.0.1", port=port, decode_responses=True)


def error_of(fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except redis.ResponseError as e:
        return str(e)
    raise AssertionError(f"{fn.__name__}{args} did not fail")


# connection
assert r.ping() is True
assert r.echo("hi") == "hi"
assert r.client_id() > 0
assert r.client_setname("py-client") is True
assert r.client_getname() == "py-client"
assert any(c["name"] == "py-client" for c in r.client_list())
assert r.client_info()["name"] == "py-client"
assert "spaces" in error_of(r.client_setname, "a b")
assert r.execute_command("SELECT", 0) in (True, "OK")
assert error_of(r.execute_command, "SELECT", 16) == "DB index is out of range"
assert error_of(r.execute_command, "SELECT", "x") == "value is not an integer or out of range"
r3 = redis.Redis(host="127.0.0.1", port=port, decode_responses=True, protocol=3)
assert r3.ping() is True
r3.set("resp3", "yes")
assert r3.get("resp3") == "yes"
assert r3.get("resp3-missing") is None
# (redis-py slows down a client that saw HELLO through execute_command: use a separate one.)
hello = redis.Redis(host="127.0.0.1", port=port, decode_responses=True).execute_command("HELLO", 2)
hello = dict(zip(hello[::2], hello[1::2])) if isinstance(hello, list) else hello
assert hello["server"] == "redis" and hello["version"] == "7.2.0" and hello["proto"] == 2, hello
r.flushall()

# strings
assert r.set("k", "v") is True
assert r.get("k") == "v"
assert r.set("k", "w", nx=True) is None
assert r.set("k", "w", xx=True, get=True) == "v"
assert r.set("absent", "w", xx=True) is None
assert r.setnx("k", "z") is False
assert r.setnx("k2", "z") is True
assert r.set("ex", "v", ex=100) is True and 0 < r.ttl("ex") <= 100
assert r.set("px", "v", px=100000) is True and 0 < r.pttl("px") <= 100000
assert r.set("ex", "v2", keepttl=True) is True and 0 < r.ttl("ex") <= 100
assert r.set("ex", "v3") is True and r.ttl("ex") == -1
assert error_of(r.set, "k", "v", ex=0) == "invalid expire time in 'set' command"
assert error_of(r.execute_command, "SET", "k", "v", "EX", "x") == "value is not an integer or out of range"
assert error_of(r.execute_command, "SET", "k", "v", "NX", "XX") == "syntax error"
assert error_of(r.execute_command, "SET", "k", "v", "EX", "10", "PX", "10") == "syntax error"
assert r.setex("e", 100, "v") is True and 0 < r.ttl("e") <= 100
assert r.psetex("pe", 100000, "v") is True and 0 < r.pttl("pe") <= 100000
assert error_of(r.setex, "e", -1, "v") == "invalid expire time in 'setex' command"
assert r.getset("k", "x") == "w"
assert r.getset("newgs", "x") is None
assert r.getdel("k") == "x" and r.get("k") is None
assert r.getdel("k") is None
r.set("g", "v")
assert r.getex("g", ex=50) == "v" and 0 < r.ttl("g") <= 50
assert r.getex("g", persist=True) == "v" and r.ttl("g") == -1
assert r.getex("nope") is None
assert r.mset({"a": "1", "b": "2"}) is True
assert r.mget("a", "b", "c") == ["1", "2", None]
assert r.msetnx({"a": "9", "z": "9"}) is False and r.get("z") is None
assert r.msetnx({"y": "9", "z": "9"}) is True and r.get("z") == "9"
assert error_of(r.execute_command, "MSET", "a", "1", "b") == "wrong number of arguments for 'mset' command"
assert r.append("s", "ab") == 2 and r.append("s", "cd") == 4 and r.strlen("s") == 4
assert r.strlen("nothing") == 0
assert r.incr("n") == 1 and r.decr("n") == 0 and r.incrby("n", 10) == 10 and r.decrby("n", 3) == 7
assert r.incrbyfloat("fl", 10.5) == 10.5 and r.incrbyfloat("fl", 0.1) == 10.6
assert r.get("fl") == "10.6"
assert r.incrbyfloat("fl", -10.6) == 0
assert error_of(r.incrbyfloat, "fl", "abc") == "value is not a valid float"
r.set("notnum", "abc")
assert error_of(r.incr, "notnum") == "value is not an integer or out of range"
assert error_of(r.incrbyfloat, "notnum", 1) == "value is not a valid float"
r.set("big", str(2**63 - 1))
assert error_of(r.incr, "big") == "increment or decrement would overflow"
assert r.get("big") == str(2**63 - 1)
r.set("ttlkeep", "5", ex=100)
assert r.incr("ttlkeep") == 6 and r.ttl("ttlkeep") > 0
r.set("gr", "Hello World")
assert r.getrange("gr", 0, 4) == "Hello"
assert r.getrange("gr", -5, -1) == "World"
assert r.getrange("gr", 5, 1) == ""
assert r.getrange("gr", 0, 1000) == "Hello World"
assert r.getrange("missing", 0, 10) == ""
assert r.setrange("gr", 6, "Redis") == 11 and r.get("gr") == "Hello Redis"
assert r.setrange("pad", 3, "x") == 4 and r.get("pad") == "\x00\x00\x00x"
assert error_of(r.setrange, "pad", -1, "x") == "offset is out of range"
assert error_of(r.execute_command, "GET") == "wrong number of arguments for 'get' command"

# keys
r.flushdb()
r.mset({"k1": "1", "k2": "2", "k3": "3", "user:1": "a", "user:2": "b"})
assert r.exists("k1", "k2", "nope", "k1") == 3
assert r.touch("k1", "nope") == 1
assert r.type("k1") == "string" and r.type("nope") == "none"
assert r.delete("k1", "nope") == 1
assert r.unlink("k2") == 1
assert sorted(r.keys("user:*")) == ["user:1", "user:2"]
assert sorted(r.keys()) == ["k3", "user:1", "user:2"]
assert sorted(r.scan_iter(match="user:*", count=1)) == ["user:1", "user:2"]
assert list(r.scan_iter(_type="hash")) == []
assert error_of(r.execute_command, "SCAN", "x") == "invalid cursor"
assert r.randomkey() in ("k3", "user:1", "user:2")
assert r.dbsize() == 3
assert r.expire("k3", 100) is True and 0 < r.ttl("k3") <= 100
assert r.expire("k3", 50, gt=True) is False
assert r.expire("k3", 500, gt=True) is True and r.ttl("k3") > 100
assert r.expire("k3", 10, lt=True) is True and r.ttl("k3") <= 10
assert r.expire("k3", 10, nx=True) is False
assert r.expire("user:1", 10, xx=True) is False
assert r.expire("user:1", 10, nx=True) is True
assert r.persist("user:1") is True and r.ttl("user:1") == -1
assert r.persist("user:1") is False
assert r.pexpire("user:1", 100000) is True and 0 < r.pttl("user:1") <= 100000
assert r.expireat("user:2", 4102444800) is True and r.expiretime("user:2") == 4102444800
assert r.pexpireat("user:2", 4102444800123) is True
assert r.execute_command("PEXPIRETIME", "user:2") == 4102444800123
assert r.ttl("nope") == -2 and r.pttl("nope") == -2 and r.expiretime("nope") == -2
assert r.expire("nope", 10) is False
assert error_of(r.execute_command, "EXPIRE", "k3", "10", "NX", "XX") == \
    "NX and XX, GT or LT options at the same time are not compatible"
assert error_of(r.execute_command, "EXPIRE", "k3", "10", "GT", "LT") == \
    "GT and LT options at the same time are not compatible"
assert error_of(r.execute_command, "EXPIRE", "k3", "10", "FOO") == "Unsupported option FOO"
r.set("gone", "x")
assert r.expire("gone", -1) is True and r.exists("gone") == 0
assert r.rename("k3", "k4") is True and r.get("k4") == "3"
assert error_of(r.rename, "nope", "x") == "no such key"
assert r.renamenx("k4", "user:1") is False
assert r.renamenx("k4", "k5") is True
assert r.copy("k5", "k6") is True and r.get("k6") == "3"
assert r.copy("k5", "k6") is False
assert r.copy("k5", "k6", replace=True) is True
assert r.copy("k5", "k5", destination_db=1) is True
assert r.move("k6", 1) is True and r.exists("k6") == 0
assert r.move("k6", 1) is False
assert "same" in error_of(r.move, "k5", 0)
r1 = redis.Redis(host="127.0.0.1", port=port, db=1, decode_responses=True)
assert r1.get("k6") == "3" and r1.get("k5") == "3"
assert r1.flushdb() is True and r1.dbsize() == 0 and r.dbsize() > 0
assert r.flushall() is True and r.dbsize() == 0

# server
r.set("int", "12345")
r.set("emb", "hello")
r.set("raw", "x" * 100)
assert r.object("encoding", "int") == "int"
assert r.object("encoding", "emb") == "embstr"
assert r.object("encoding", "raw") == "raw"
assert r.object("encoding", "nope") is None
assert r.memory_usage("raw") > 100
assert r.memory_usage("nope") is None
info = r.info()
for field in ("redis_version", "connected_clients", "used_memory", "aof_enabled",
              "total_commands_processed", "instantaneous_ops_per_sec", "keyspace_hits"):
    assert field in info, field
assert info["redis_version"] == "7.2.0"
assert info["db0"]["keys"] == 3, info["db0"]
assert r.info("keyspace")["db0"]["keys"] == 3
assert r.config_get("maxclients") == {"maxclients": "10000"}
assert "appendfsync" in r.config_get("append*")
assert r.config_set("timeout", 0) is True
assert r.config_set("appendfsync", "always") is True
assert r.config_get("appendfsync") == {"appendfsync": "always"}
assert r.set("under-always", "1") is True
assert r.config_set("appendfsync", "everysec") is True
assert "Unknown option" in error_of(r.config_set, "nope", "1")
assert r.config_resetstat() is True
assert r.command_count() > 50
secs, micros = r.time()
assert secs > 1_600_000_000 and 0 <= micros < 1_000_000
assert r.save() is True
assert r.lastsave() is not None
r.bgsave()
assert r.function_list() == []
assert r.function_flush() in (True, "OK")
assert r.dbsize() == 4
assert r.execute_command("WAITAOF", 1, 0, 0) == [1, 0]
assert r.execute_command("WAIT", 0, 0) == 0
print("ok")
