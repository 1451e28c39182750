#!/usr/bin/env python3
"""Minimal CQL v4 client check: STARTUP must answer READY and
`SELECT release_version FROM system.local` must return a row.
Usage: cql_ping.py HOST PORT [TIMEOUT_S]. Exit 0 and print the version on success.
With --prune MAX_AGE_S it drops the keyspaces test runs left behind (older than MAX_AGE_S)
instead: a node that keeps every run's keyspaces runs out of heap."""
import re
import socket
import struct
import sys
import time


def frame(stream, opcode, body):
    return struct.pack(">BBhBI", 0x04, 0, stream, opcode, len(body)) + body


def read_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by server")
        buf += chunk
    return buf


def request(sock, stream, opcode, body):
    sock.sendall(frame(stream, opcode, body))
    _ver, _flags, _stream, op, length = struct.unpack(">BBhBI", read_exact(sock, 9))
    payload = read_exact(sock, length)
    if op == 0x00:  # ERROR: [int code][string message]
        code = struct.unpack(">i", payload[:4])[0]
        (mlen,) = struct.unpack(">H", payload[4:6])
        raise RuntimeError("server error 0x%04x: %s" % (code, payload[6 : 6 + mlen].decode(errors="replace")))
    return op, payload


def cql_string(s):
    b = s.encode()
    return struct.pack(">H", len(b)) + b


def query(sock, stream, cql):
    """QUERY at consistency ONE; returns the RESULT payload."""
    q = cql.encode()
    # QUERY: [long string][consistency ONE=0x0001][flags=0]
    op, p = request(sock, stream, 0x07, struct.pack(">I", len(q)) + q + struct.pack(">HB", 0x0001, 0))
    if op != 0x08:
        raise RuntimeError("QUERY answered opcode 0x%02x, expected RESULT" % op)
    return p


def first_column(p):
    """The first column of a Rows RESULT whose columns are all varchar."""
    kind, mflags, ncols = struct.unpack(">iii", p[:12])
    if kind != 2:
        raise RuntimeError("unexpected RESULT kind=%d" % kind)
    pos = 12
    if mflags & 0x0002:  # has_more_pages: [bytes paging_state]
        (n,) = struct.unpack(">i", p[pos : pos + 4])
        pos += 4 + max(n, 0)
    if mflags & 0x0001:  # global table spec: [ks][table] once
        for _ in range(2):
            (n,) = struct.unpack(">H", p[pos : pos + 2])
            pos += 2 + n
    for _ in range(ncols):  # per column: ([ks][table])? [name] [type id]
        for _ in range(1 if mflags & 0x0001 else 3):
            (n,) = struct.unpack(">H", p[pos : pos + 2])
            pos += 2 + n
        pos += 2  # varchar has no type parameters
    (rows,) = struct.unpack(">i", p[pos : pos + 4])
    pos += 4
    values = []
    for _ in range(rows):
        for col in range(ncols):
            (n,) = struct.unpack(">i", p[pos : pos + 4])
            pos += 4
            if col == 0:
                values.append(p[pos : pos + n].decode() if n >= 0 else None)
            pos += max(n, 0)
    return values


def stale(name, now, max_age):
    """A keyspace a test run made (`weft_<kind>_<unix seconds>_<hex>`, see
    tests/common/mod.rs) more than max_age seconds ago, or one in the format
    before the seconds were in the name."""
    m = re.fullmatch(r"weft_[a-z]{2,16}_(\d{9,})_[0-9a-f]+", name)
    if m:
        return now - int(m.group(1)) > max_age
    return re.fullmatch(r"weft_(it|test|proc|cli|logs)_[0-9a-f]{10,16}", name) is not None


def main():
    args = sys.argv[1:]
    prune = None
    if "--prune" in args:
        i = args.index("--prune")
        prune = float(args[i + 1])
        del args[i : i + 2]
    host, port = args[0], int(args[1])
    timeout = float(args[2]) if len(args) > 2 else 5.0
    with socket.create_connection((host, port), timeout=timeout) as sock:
        op, _ = request(sock, 1, 0x01, struct.pack(">H", 1) + cql_string("CQL_VERSION") + cql_string("3.0.0"))
        if op != 0x02:
            raise RuntimeError("STARTUP answered opcode 0x%02x, expected READY" % op)
        if prune is None:
            versions = first_column(query(sock, 2, "SELECT release_version FROM system.local"))
            if not versions:
                raise RuntimeError("system.local returned no rows")
            print(versions[0])
            return
        # Dropping a keyspace with dozens of tables takes a while on a busy node.
        sock.settimeout(max(timeout, 120.0))
        names = first_column(query(sock, 2, "SELECT keyspace_name FROM system_schema.keyspaces"))
        now = time.time()
        dropped = 0
        for name in names:
            if name and stale(name, now, prune):
                query(sock, 3, "DROP KEYSPACE IF EXISTS %s" % name)
                dropped += 1
        print("dropped %d of %d keyspaces (test keyspaces older than %d s)" % (dropped, len(names), prune))


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - one line for the caller's log
        print("cql check failed: %s" % e, file=sys.stderr)
        sys.exit(1)
