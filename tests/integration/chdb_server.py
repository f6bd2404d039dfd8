"""A small ClickHouse HTTP interface in front of chDB (ClickHouse 26.x in-process), so the
exporter's modern dialect runs on a real modern engine in the tests.

It speaks what the `clickhouse` exporter and the tests use: the statement in `?query=`
and/or the POST body (for INSERT ... FORMAT X, the query names the format and the body
carries the rows, as with a real server), gzip/deflate/zstd request bodies
(Content-Encoding; another encoding is refused with code 89, as ClickHouse does),
`GET /ping` and `GET /`, URL settings and the `database` parameter (a statement runs after
`USE <database>` when given; the exporter names its database in every statement), user
and password from X-ClickHouse-User/-Key or ?user=&password= (accepted, not checked: one
user). Statements run in parallel, each on a chDB session of a pool (at most POOL_MAX, each
running one statement at a time: a session serializes its own statements), as a real server
runs its HTTP requests; a statement runs in the `database` parameter's database, else in
`default`, as on a real server. Results come back as the statement's FORMAT, TabSeparated by
default.
Errors: the engine's message with HTTP 400 for syntax/parse errors, 404 for unknown
tables/databases, 500 otherwise, like ClickHouse's own status mapping.

`chdb` (session fixture) starts one server on a free loopback port; `.query(sql)` and
`.database()` work as on services.ClickHouse.

Standalone (scripts/bench-query-scale.sh --store chdb runs it so):
    .venv/bin/python tests/integration/chdb_server.py --port PORT --path DIR
serves until SIGTERM or SIGINT, then closes the sessions; it prints one line when it
listens. Run so, it imports neither pytest nor the test harness (conftest).
chDB 4 releases Python's GIL while a statement runs, and sessions on one path share one
engine and run their statements in parallel (two CPU-bound statements of 0.25 s each: 0.36 s
on two sessions, 0.56 s on one).
"""
import argparse
import gzip
import re
import signal
import sys
import threading
import urllib.parse
import uuid
import zlib

import zstandard
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

POOL_MAX = 16  # sessions, so statements at once; more wait for one
_BAD_REQUEST = {6, 26, 27, 36, 38, 41, 43, 44, 46, 47, 62, 69, 72, 117, 131}
_NOT_FOUND = {60, 81}


class ChdbServer:
    def __init__(self, path, port=None):
        """A server on 127.0.0.1:|port| (None: a free port from the test harness) over a pool
        of chDB sessions on |path| (one opened now); not yet serving (start())."""
        if port is None:
            import conftest  # the harness's port picker; only the fixture comes here
            port = conftest.free_port()
        self.path = str(path)
        self.cond = threading.Condition()  # guards the pool below
        self.idle = [self._open()]  # [session, its current database]; one opened now, so a
        self.opened = 1              # bad path fails here, not at the first request
        self.busy = 0
        self.closed = False
        self.port = port
        self.url = f"http://127.0.0.1:{self.port}"
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # TCP_NODELAY: headers and body are two writes; with Nagle the body waits for the
            # client's delayed ACK of the headers (40 ms on Linux) on a kept-alive connection
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def do_GET(self):
                url = urllib.parse.urlsplit(self.path)
                if url.path in ("/ping", "/"):
                    params = urllib.parse.parse_qs(url.query)
                    if "query" not in params:
                        return self._send(200, b"Ok.\n")
                self._handle(b"")

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                enc = (self.headers.get("Content-Encoding") or "").lower()
                try:
                    if enc == "gzip":
                        body = gzip.decompress(body)
                    elif enc == "deflate":
                        body = zlib.decompress(body)
                    elif enc == "zstd":
                        body = zstandard.ZstdDecompressor().decompress(body)
                    elif enc:
                        return self._send(400, b"Code: 89. Unknown Content-Encoding of HTTP "
                                          b"request: " + enc.encode() + b"\n")
                except Exception as e:  # a broken body is the client's fault
                    return self._send(400, f"Code: 353. Cannot decompress: {e}\n".encode())
                self._handle(body)

            def _handle(self, body):
                params = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                query = params.get("query", [""])[0]
                sql = (query + "\n" + body.decode("utf-8", "replace")) if query else \
                    body.decode("utf-8", "replace")
                status, out = server.execute(sql, params.get("database", [None])[0])
                self._send(status, out)

            def _send(self, status, data):
                self.send_response(status)
                self.send_header("Content-Type", "text/tab-separated-values; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                if status != 200:
                    m = re.match(rb"Code: (\d+)", data)
                    if m:
                        self.send_header("X-ClickHouse-Exception-Code", m.group(1).decode())
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def _open(self):
        from chdb import session
        return [session.Session(self.path), "default"]

    def _take(self):
        """An idle session of the pool, a new one while fewer than POOL_MAX are open, or the
        next one returned; None once closed."""
        with self.cond:
            while not self.closed and not self.idle and self.opened >= POOL_MAX:
                self.cond.wait()
            if self.closed:
                return None
            self.busy += 1
            if self.idle:
                return self.idle.pop()
            self.opened += 1
        try:
            return self._open()
        except Exception:
            self._give(None)
            raise

    def _give(self, entry):
        with self.cond:
            self.busy -= 1
            if entry is None:
                self.opened -= 1
            else:
                self.idle.append(entry)
            self.cond.notify_all()

    def execute(self, sql, database=None):
        """Runs one statement: (HTTP status, response bytes)."""
        entry = self._take()
        if entry is None:
            return 503, b"Code: 210. chdb_server: shutting down\n"
        try:
            db = database or "default"
            if entry[1] != db:
                entry[0].query(f"USE `{db}`")
                entry[1] = db
            res = entry[0].query(sql, "TabSeparated")
            return 200, res.bytes() if hasattr(res, "bytes") else bytes(str(res), "utf-8")
        except Exception as e:
            entry[1] = None  # its database unknown after a failed USE: set again next time
            msg = str(e)
            m = re.search(r"Code: (\d+)", msg)
            code = int(m.group(1)) if m else 0
            status = 400 if code in _BAD_REQUEST else 404 if code in _NOT_FOUND else 500
            return status, (msg if msg.startswith("Code:") else f"Code: {code}. {msg}").encode() + b"\n"
        finally:
            self._give(entry)

    def close(self):
        """Waits for the statements under way (handler threads), then closes every session
        (the engine shuts down with the last)."""
        with self.cond:
            self.closed = True
            while self.busy:
                self.cond.wait()
            idle, self.idle = self.idle, []
        for entry in idle:
            entry[0].close()

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.close()

    # the services.ClickHouse interface the tests use
    def query(self, sql):
        status, out = self.execute(sql)
        assert status == 200, f"chdb: {status} {out!r}\n{sql}"
        return out.decode()

    def database(self):
        return "prela_t" + uuid.uuid4().hex[:12]


def main(argv=None):
    """The standalone server (see the module comment). Returns the exit status."""
    ap = argparse.ArgumentParser(description="ClickHouse HTTP interface over chDB")
    ap.add_argument("--port", type=int, required=True, help="loopback port to listen on")
    ap.add_argument("--path", required=True, help="chDB's data directory")
    args = ap.parse_args(argv)
    server = ChdbServer(args.path, args.port)

    def stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        version = server.query("SELECT version()").strip()
        print(f"chdb_server: chDB {version} on {server.url}, data in {args.path}; "
              f"statements in parallel on up to {POOL_MAX} sessions", flush=True)
        server.httpd.serve_forever()
    finally:
        server.httpd.server_close()
        server.close()  # statements still running in handler threads end first
    return 0


if __name__ == "__main__":
    sys.exit(main())
else:  # imported by a test module: the pytest fixture
    import pytest

    _shared = {"server": None, "users": 0}

    @pytest.fixture(scope="session")
    def chdb(tmp_path_factory):
        """One server per process, however many test modules import this fixture (each import
        is a fixture of its own to pytest, and chDB's engine can be opened only once per
        process, with one path); stopped when the last of them is torn down."""
        if _shared["server"] is None:
            _shared["server"] = ChdbServer(tmp_path_factory.mktemp("chdb") / "db").start()
        _shared["users"] += 1
        yield _shared["server"]
        _shared["users"] -= 1
        if _shared["users"] == 0:
            _shared["server"].stop()
            _shared["server"] = None
