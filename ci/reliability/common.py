"""Shared pieces of the reliability and security harnesses (issue 7).

Start and stop a server (respite-server, or redis-server as the reference),
talk raw RESP to it over a plain socket, read its memory use, and keep the
tally that every script ends with: one line `N passed, N failed`.

Only the standard library here; the scripts may also use redis-py.
Every wait in this file is bounded in time and count. The only pauses are
between connection attempts while a server starts up.
"""

import argparse
import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEFAULT_BIN = os.path.join(REPO, "target", "debug", "respite-server")

# Every server this process started, so atexit and signal handlers kill them.
_LIVE = []
_TEMP_DIRS = []


def _cleanup():
    for srv in list(_LIVE):
        srv.kill9()
    for d in _TEMP_DIRS:
        shutil.rmtree(d, ignore_errors=True)


atexit.register(_cleanup)


def _on_signal(signum, _frame):
    # sys.exit runs atexit handlers, which kill our servers.
    sys.exit(128 + signum)


signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGHUP, _on_signal)


def base_args(description):
    """The arguments every harness takes."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--server-bin", default=DEFAULT_BIN,
                   help="server executable (default: %(default)s)")
    p.add_argument("--server-kind", choices=["respite", "redis"], default="respite",
                   help="flag dialect; redis gets --appendonly yes --save ''")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", dest="long", action="store_false", default=False,
                   help="CI size (default)")
    g.add_argument("--long", dest="long", action="store_true", help="local, longer run")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: from time)")
    p.add_argument("--keep", action="store_true", help="keep temp dirs and logs")
    return p


def pick_seed(args):
    seed = args.seed if args.seed is not None else int(time.time() * 1000) % 1_000_000_007
    print(f"seed {seed} (re-run with --seed {seed})", flush=True)
    return seed


def temp_dir(prefix, keep=False):
    d = tempfile.mkdtemp(prefix=f"respite-{prefix}-")
    if not keep:
        _TEMP_DIRS.append(d)
    return d


def free_port():
    """A port nobody listens on right now (bind to 0, read, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Tally:
    """Counts checks; prints failures as they happen and the summary at the end."""

    MAX_PRINTED = 200

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, ok, what, detail=""):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            if self.failed <= self.MAX_PRINTED:
                print(f"FAIL: {what}" + (f": {detail}" if detail else ""), flush=True)
            elif self.failed == self.MAX_PRINTED + 1:
                print(f"(further failures counted, not printed)", flush=True)
        return ok

    def finish(self):
        print(f"{self.passed} passed, {self.failed} failed", flush=True)
        sys.exit(1 if self.failed or not self.passed else 0)


class ServerError(Exception):
    pass


class Server:
    """One server process on 127.0.0.1 with its own data dir and log file.

    kind "respite": --port --bind --dir --appendfsync [extra]
    kind "redis":   the same plus --appendonly yes --save ''
    A config file, if given, is the first argument, as redis-server takes it.
    """

    def __init__(self, binary, kind, data_dir, log_path, appendfsync="always",
                 extra=(), config_file=None, bind="127.0.0.1", port=None):
        self.binary = binary
        self.kind = kind
        self.data_dir = data_dir
        self.log_path = log_path
        self.appendfsync = appendfsync
        self.extra = list(extra)
        self.config_file = config_file
        self.bind = bind
        self.port = port or free_port()
        self.proc = None
        self.starts = 0

    def argv(self):
        a = [self.binary]
        if self.config_file:
            a.append(self.config_file)
        a += ["--port", str(self.port)]
        if self.bind is not None:
            a += ["--bind", self.bind]
        a += ["--dir", self.data_dir]
        if self.appendfsync is not None:
            a += ["--appendfsync", self.appendfsync]
        if self.kind == "redis":
            a += ["--appendonly", "yes", "--save", ""]
        return a + self.extra

    def start(self, timeout=30.0, password=None):
        """Start and wait until PING answers (bounded). Raises ServerError."""
        if not os.path.exists(self.binary):
            raise ServerError(f"server binary {self.binary} does not exist; "
                              "build it (cargo build --bins) or pass --server-bin")
        os.makedirs(self.data_dir, exist_ok=True)
        for attempt in range(3):
            log = open(self.log_path, "ab")
            log.write(f"\n===== harness: start {self.starts} argv {self.argv()}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=self.data_dir,
                                         start_new_session=True)
            log.close()
            self.starts += 1
            _LIVE.append(self)
            try:
                self.wait_ready(timeout, password)
                return self
            except ServerError:
                died = self.proc.poll() is not None
                self.kill9()
                if died and "in use" in self.log_tail(2000) and attempt < 2:
                    self.port = free_port()  # lost the race for the port; try another
                    continue
                raise
        raise ServerError("could not start")

    def wait_ready(self, timeout, password=None):
        deadline = time.monotonic() + timeout
        last = None
        attempts = 0
        while time.monotonic() < deadline and attempts < 100_000:
            attempts += 1
            if self.proc.poll() is not None:
                raise ServerError(f"server exited with {self.proc.returncode} during start-up; "
                                  f"log tail:\n{self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                    s.settimeout(2)
                    s.sendall(b"*1\r\n$4\r\nPING\r\n")
                    data = s.recv(100)
                    # NOAUTH also proves the server is up and parsing.
                    if data.startswith(b"+PONG") or data.startswith(b"-NOAUTH"):
                        return
                    last = data
            except OSError as e:
                last = e
            time.sleep(0.02)  # between connection attempts during start-up only
        raise ServerError(f"server not answering PING within {timeout}s (last: {last!r}); "
                          f"log tail:\n{self.log_tail()}")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=30)
        if self in _LIVE:
            _LIVE.remove(self)

    def stop(self, timeout=30.0):
        """SIGTERM and wait for exit. Returns the exit code, or None if it had
        to be killed after the timeout."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill9()
                return None
        if self in _LIVE:
            _LIVE.remove(self)
        return self.proc.returncode

    def rss_kb(self):
        return rss_kb(self.proc.pid) if self.alive() else None

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, n=1500):
        return self.log_text()[-n:]

    def connect(self, timeout=10.0):
        return Conn(self.port, timeout)


def rss_kb(pid):
    """VmRSS of a process in KiB, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


# ---------------------------------------------------------------- raw RESP

class ProtocolError(Exception):
    pass


class Error(object):
    """An error reply, kept as its text (without the leading '-')."""

    __slots__ = ("text",)

    def __init__(self, text):
        self.text = text

    def __eq__(self, other):
        return isinstance(other, Error) and other.text == self.text

    def __hash__(self):
        return hash(self.text)

    def __repr__(self):
        return f"Error({self.text!r})"


class Simple(str):
    """A simple-string reply (+OK)."""


def encode(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        elif isinstance(a, int):
            a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Conn:
    """A blocking RESP2/RESP3 connection over a raw socket. Replies come back
    as Python values: Simple, Error, int, bytes, None, list, dict, float."""

    def __init__(self, port, timeout=10.0, host="127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.buf = bytearray()
        self.pos = 0

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        self.sock.sendall(data)

    def send_cmds(self, cmds):
        self.sock.sendall(b"".join(encode(*c) for c in cmds))

    def call(self, *args):
        self.send(encode(*args))
        return self.read()

    def _fill(self):
        if self.pos > 65536 and self.pos > len(self.buf) // 2:
            del self.buf[: self.pos]
            self.pos = 0
        d = self.sock.recv(1 << 20)
        if not d:
            raise ConnectionError("connection closed by server")
        self.buf += d

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n", self.pos)
            if i >= 0:
                line = bytes(self.buf[self.pos:i])
                self.pos = i + 2
                return line
            self._fill()

    def _exact(self, n):
        while len(self.buf) - self.pos < n + 2:
            self._fill()
        data = bytes(self.buf[self.pos:self.pos + n])
        if self.buf[self.pos + n:self.pos + n + 2] != b"\r\n":
            raise ProtocolError("bulk not terminated by CRLF")
        self.pos += n + 2
        return data

    def read(self):
        line = self._line()
        if not line:
            raise ProtocolError("empty reply line")
        t, rest = line[:1], line[1:]
        if t == b"+":
            return Simple(rest.decode("utf-8", "replace"))
        if t == b"-":
            return Error(rest.decode("utf-8", "replace"))
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if t == b"*" or t == b"~" or t == b">":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        if t == b"%":
            n = int(rest)
            d = {}
            for _ in range(n):
                k = self.read()
                d[k] = self.read()
            return d
        if t == b"_":
            return None
        if t == b"#":
            return rest == b"t"
        if t == b",":
            return float(rest)
        if t == b"(":
            return int(rest)
        if t == b"=" or t == b"!":
            n = int(rest)
            return self._exact(n)
        raise ProtocolError(f"unknown reply type {line[:40]!r}")


def ping_ok(port, timeout=5.0):
    try:
        c = Conn(port, timeout)
        try:
            r = c.call("PING")
            return r == "PONG" or (isinstance(r, Error) and r.text.startswith("NOAUTH"))
        finally:
            c.close()
    except (OSError, ProtocolError, ValueError):
        return False
