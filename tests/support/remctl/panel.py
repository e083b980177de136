#!/usr/bin/python3
"""What a web panel does: talk to guest-installer through remctl with
Debian's python3-pyremctl, keeping ONE authenticated connection open for
several commands, and read the --json documents.

    panel.py HOST PORT SERVICE VM PASSWORD ROUNDS

Kerberos comes from the environment (KRB5_CONFIG, KRB5CCNAME). Runs a
fixed script of commands on one connection and prints one JSON document:
{"results": [{"cmd": [...], "status": N, "stdout": "...", "stderr": "...",
"error": null | "..."}...], "keepalive_ms": [...], "connections": 1}.
The password is sent as the last argument of `install` (stdin=last in the
drop-in) and is never printed: the command is reported with it replaced
by "<password>".

Must run with Debian's /usr/bin/python3 (python3-pyremctl is built for it).
"""

import json
import sys
import time

import remctl


def run(conn, cmd, shown=None):
    """One command on the open connection; collects output until status or
    error. Protocol errors (remctld's refusals) come back as an "error"
    output token and leave the connection usable."""
    conn.command([c.encode() if isinstance(c, str) else c for c in cmd])
    out, err = b"", b""
    while True:
        kind, data, stream, status, code = conn.output()
        if kind == "output":
            if stream == 1:
                out += data
            else:
                err += data
        elif kind == "status":
            return {"cmd": shown or cmd, "status": status, "stdout": out.decode(),
                    "stderr": err.decode(), "error": None}
        elif kind == "error":
            return {"cmd": shown or cmd, "status": None, "stdout": out.decode(),
                    "stderr": err.decode(), "error": data.decode(errors="replace")}
        elif kind == "done":
            return {"cmd": shown or cmd, "status": None, "stdout": out.decode(),
                    "stderr": err.decode(), "error": "done without status"}


def main():
    host, port, service, vm, password, rounds = sys.argv[1:7]
    conn = remctl.Remctl()
    conn.set_timeout(20)
    conn.open(host, int(port), service)
    results = [
        run(conn, ["guest", "list", "--json"]),
        run(conn, ["guest", "images", "--json"]),
        run(conn, ["guest", "status", vm, "--json"]),
        run(conn, ["guest", "install", vm, "--no-start", "--json", password],
            shown=["guest", "install", vm, "--no-start", "--json", "<password>"]),
        run(conn, ["guest", "status", vm, "--json"]),
        run(conn, ["guest", "status", "someone-elses", "--json"]),
        # refused by remctld itself: an error token, the connection lives on
        run(conn, ["guest", "machine", "show", vm, "--json"]),
        run(conn, ["guest", "cancel", vm, "--json"]),
        run(conn, ["guest", "status", vm, "--json"]),
    ]
    # Round trips on the same connection.
    times = []
    for _ in range(int(rounds)):
        t = time.monotonic()
        r = run(conn, ["guest", "status", vm, "--json"])
        times.append((time.monotonic() - t) * 1000)
        if r["status"] != 0:
            results.append(r)
            break
    conn.close()
    json.dump({"results": results, "keepalive_ms": times, "connections": 1}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
