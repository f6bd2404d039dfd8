"""A small ClickHouse HTTP interface in front of chDB (ClickHouse 26.x in-process), so the
exporter's modern dialect runs on a real modern engine in the tests.

It speaks what the `clickhouse` exporter and the tests use: the statement in `?query=`
and/or the POST body (for INSERT ... FORMAT X, the query names the format and the body
carries the rows, as with a real server), gzip/deflate/zstd request bodies
(Content-Encoding; another encoding is refused with code 89, as ClickHouse does),
`GET /ping` and `GET /`, the `database` parameter, user and password from
X-ClickHouse-User/-Key or ?user=&password= (accepted, not checked: one user), and URL
settings as a server applies them:
- every URL parameter that is not one of the HTTP interface's own (query, database, user,
  query_id, ...) is a setting of that statement alone (max_execution_time, max_result_rows,
  max_threads, ...): SET on its session before it runs, back to DEFAULT before a later
  statement without it; an unknown setting fails with the engine's code 115;
- readonly=1 or 2: a statement that is not a read (SELECT, WITH, SHOW, DESCRIBE, EXISTS,
  EXPLAIN) is refused with code 164 and HTTP 403 (emulated: SET readonly would also forbid
  putting the session's settings back);
- query_id: the statement runs with a leading comment naming it, and `KILL QUERY WHERE
  query_id = '<id>'` stops the statements so named (chDB makes its own query ids; its
  system.processes is shared by the sessions).
Statements run in parallel, each on a chDB session of a pool (at most POOL_MAX, each
running one statement at a time: a session serializes its own statements), as a real server
runs its HTTP requests; a statement runs in the `database` parameter's database, else in
`default`, as on a real server. Results come back as the statement's FORMAT, TabSeparated by
default.
Errors: the engine's message with HTTP 400 for syntax/parse errors, 404 for unknown
tables/databases, 403 for a write under readonly, 500 otherwise, like ClickHouse's own status
mapping.

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
# URL parameters of the HTTP interface itself; any other parameter is a setting
_NOT_SETTINGS = {"query", "database", "user", "password", "quota_key", "query_id",
                 "default_format", "wait_end_of_query", "buffer_size", "compress",
                 "decompress", "session_id", "session_timeout", "session_check", "stacktrace",
                 "role", "client_protocol_version", "close_session", "readonly"}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")
_QUERY_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
_KILL_BY_ID = re.compile(r"query_id\s*=\s*'([A-Za-z0-9_.:-]{1,128})'")
_READS = {"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN"}
_BAD_REQUEST = {6, 26, 27, 36, 38, 41, 43, 44, 46, 47, 62, 69, 72, 117, 131}
_NOT_FOUND = {60, 81}


def _tag(query_id):
    """The comment a statement named |query_id| begins with (what its KILL QUERY looks for)."""
    return f"/* chdb_server query_id={query_id} */ "


class _Refused(Exception):
    """A request refused before it reaches the engine: its HTTP status and body."""

    def __init__(self, status, body):
        super().__init__(body)
        self.status, self.body = status, body


def _settings(params):
    """The statement's settings among the URL parameters |params|: {name: SQL literal}.
    Raises _Refused (code 115) for a parameter that cannot be a setting's name."""
    settings = {}
    for k, v in params.items():
        if k in _NOT_SETTINGS or k.startswith("param_"):
            continue
        if not _NAME.fullmatch(k):
            raise _Refused(500, f"Code: 115. DB::Exception: Unknown setting {k!r}.\n".encode())
        settings[k] = v if _NUMBER.fullmatch(v) else \
            "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return settings


def _statement(sql, params):
    """|sql| as the engine runs it: under readonly, refused (_Refused, code 164) unless it
    is a read; a KILL QUERY by query_id made to look for the statements' tags; the
    request's own query_id's tag in front."""
    if params.get("readonly", "0") != "0":
        m = re.match(r"\s*(\w+)", sql)
        if not m or m.group(1).upper() not in _READS:
            raise _Refused(403, b"Code: 164. DB::Exception: Cannot execute query in readonly "
                                b"mode. (READONLY)\n")
    if re.match(r"\s*KILL\s+QUERY\b", sql, re.I):
        sql = _KILL_BY_ID.sub(lambda m: f"startsWith(query, '{_tag(m.group(1))}')", sql)
    qid = params.get("query_id", "")
    if _QUERY_ID.fullmatch(qid):
        sql = _tag(qid) + sql
    return sql


def _error(msg):
    """The engine's error message |msg| as (HTTP status, body), as ClickHouse maps its codes."""
    m = re.search(r"Code: (\d+)", msg)
    code = int(m.group(1)) if m else 0
    status = 400 if code in _BAD_REQUEST else 404 if code in _NOT_FOUND else 500
    return status, (msg if msg.startswith("Code:") else f"Code: {code}. {msg}").encode() + b"\n"


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
                status, out = server.execute(sql, params.get("database", [None])[0],
                                             {k: v[-1] for k, v in params.items()})
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
        return [session.Session(self.path), "default", {}]  # its database, settings SET

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

    def execute(self, sql, database=None, params=None):
        """Runs one statement with the request's URL parameters |params| ({name: value}, see
        the module comment): (HTTP status, response bytes)."""
        params = params or {}
        try:
            settings = _settings(params)
            sql = _statement(sql, params)
        except _Refused as r:
            return r.status, r.body
        entry = self._take()
        if entry is None:
            return 503, b"Code: 210. chdb_server: shutting down\n"
        try:
            return 200, self._run(entry, sql, database or "default", settings)
        except Exception as e:
            entry[1] = None  # its database unknown after a failed USE: USE again next time
            # (a failed SET changed nothing, so entry[2] still holds the session's settings)
            return _error(str(e))
        finally:
            self._give(entry)

    @staticmethod
    def _run(entry, sql, db, settings):
        """Runs |sql| on the pool's |entry| in database |db| under |settings| alone (the
        session's own changed to them first): the result's bytes; raises the engine's error."""
        if entry[1] != db:
            entry[0].query(f"USE `{db}`")
            entry[1] = db
        sets = [f"{k} = {v}" for k, v in settings.items() if entry[2].get(k) != v]
        sets += [f"{k} = DEFAULT" for k in entry[2] if k not in settings]
        if sets:  # a SET that fails changes nothing (measured on chDB 4.4)
            entry[0].query("SET " + ", ".join(sets))
            entry[2] = settings
        res = entry[0].query(sql, "TabSeparated")
        return res.bytes() if hasattr(res, "bytes") else bytes(str(res), "utf-8")

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
