#!/usr/bin/env python3
"""Minimal CQL v4 client check: STARTUP must answer READY and
`SELECT release_version FROM system.local` must return a row.
Usage: cql_ping.py HOST PORT [TIMEOUT_S]. Exit 0 and print the version on success."""
import socket
import struct
import sys


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


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    timeout = float(sys.argv[3]) if len(sys.argv) > 3 else 5.0
    with socket.create_connection((host, port), timeout=timeout) as sock:
        op, _ = request(sock, 1, 0x01, struct.pack(">H", 1) + cql_string("CQL_VERSION") + cql_string("3.0.0"))
        if op != 0x02:
            raise RuntimeError("STARTUP answered opcode 0x%02x, expected READY" % op)
        query = "SELECT release_version FROM system.local".encode()
        # QUERY: [long string][consistency ONE=0x0001][flags=0]
        op, p = request(sock, 2, 0x07, struct.pack(">I", len(query)) + query + struct.pack(">HB", 0x0001, 0))
        if op != 0x08:
            raise RuntimeError("QUERY answered opcode 0x%02x, expected RESULT" % op)
        kind, mflags, ncols = struct.unpack(">iii", p[:12])
        if kind != 2 or ncols != 1:
            raise RuntimeError("unexpected RESULT kind=%d columns=%d" % (kind, ncols))
        pos = 12
        if mflags & 0x0002:  # has_more_pages: [bytes paging_state]
            (n,) = struct.unpack(">i", p[pos : pos + 4])
            pos += 4 + max(n, 0)
        names = 3 if not (mflags & 0x0001) else 1  # per-column ks+table, or global spec once
        if mflags & 0x0001:
            for _ in range(2):
                (n,) = struct.unpack(">H", p[pos : pos + 2])
                pos += 2 + n
        for _ in range(names):  # [ks][table] name, or just name
            (n,) = struct.unpack(">H", p[pos : pos + 2])
            pos += 2 + n
        pos += 2  # type option id (varchar has no parameters)
        (rows,) = struct.unpack(">i", p[pos : pos + 4])
        pos += 4
        if rows < 1:
            raise RuntimeError("system.local returned no rows")
        (n,) = struct.unpack(">i", p[pos : pos + 4])
        version = p[pos + 4 : pos + 4 + n].decode() if n >= 0 else "null"
        print(version)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - one line for the caller's log
        print("cql check failed: %s" % e, file=sys.stderr)
        sys.exit(1)
