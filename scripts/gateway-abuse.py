#!/usr/bin/env python3
"""Measures the gateway under the attacks of issue 17, on loopback, bounded in time.

Starts a core and a gateway from the given binaries, then one scenario:
  lockout    600 grpc-web calls (HTTP/1.1, one per connection, from 127.0.0.1) send their headers
             and one body byte and stall; another peer (127.0.0.2) calls StartSession and /healthz
             every 250 ms. Prints how long that peer was locked out and when the stalled calls ended.
  silent     a TLS client (ALPN h2, and http/1.1) handshakes and sends nothing: seconds until the
             gateway closes it.
  sigterm    handshake-only, idle HTTP/2 and stalled-call connections open, then SIGTERM: seconds
             until the process exits.
  memory     1,000 idle TLS connections (HTTP/2 preface sent): gateway RSS delta per connection.

usage: scripts/gateway-abuse.py <scenario> <core-binary> <gateway-binary> [gateway flags...]
"""
import os
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time

BOUND = 90.0  # no scenario waits longer than this for anything


def start(core_bin, gw_bin, gw_flags):
    work = tempfile.mkdtemp(prefix="gw-abuse-")
    core = subprocess.Popen(
        [core_bin, "--listen", "127.0.0.1:0", "--pull-listen", "127.0.0.1:0", "--data-dir", work + "/data",
         "--max-concurrent-calls", "4096"],
        stdout=subprocess.PIPE, stderr=open(work + "/core.log", "w"), text=True)
    core_addr = pull_addr = None
    deadline = time.time() + 60
    while time.time() < deadline and not (core_addr and pull_addr):
        line = core.stdout.readline()
        if not line:
            break
        for word in line.split():
            if word.startswith("127.0.0.1:") or word.startswith("https://127.0.0.1:"):
                addr = word.replace("https://", "").split("/")[0].rstrip(",.")
                if "pull" in line.lower():
                    pull_addr = pull_addr or addr
                else:
                    core_addr = core_addr or addr
    if not core_addr:
        sys.exit("the core did not start; see " + work + "/core.log")
    tls = work + "/data/tls/"
    args = [gw_bin, "--listen", "127.0.0.1:0", "--upstream", "https://" + core_addr, "--upstream-ca",
            tls + "dev-ca.pem", "--tls-cert", tls + "localhost.pem", "--tls-key", tls + "localhost.key",
            "--weblet-dir", work]
    if pull_addr:
        args += ["--pull-upstream", "https://" + pull_addr]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PODCONNECT_")}
    gw = subprocess.Popen(args + gw_flags, stdout=subprocess.PIPE, stderr=open(work + "/gateway.log", "w"),
                          text=True, env=env)
    gw_addr = None
    while time.time() < deadline:
        line = gw.stdout.readline()
        if not line:
            break
        if line.startswith("weblet-gateway listening on https://"):
            gw_addr = line.strip().split("https://")[1]
            break
    if not gw_addr:
        sys.exit("the gateway did not start; see " + work + "/gateway.log")
    threading.Thread(target=lambda: [None for _ in gw.stdout], daemon=True).start()
    host, port = gw_addr.rsplit(":", 1)
    return core, gw, (host, int(port)), tls + "dev-ca.pem"


def tls_conn(addr, ca, alpn, source="127.0.0.1"):
    context = ssl.create_default_context(cafile=ca)
    context.set_alpn_protocols([alpn])
    raw = socket.create_connection(addr, timeout=BOUND, source_address=(source, 0))
    return context.wrap_socket(raw, server_hostname="localhost")


def grpc_web_start_session():
    message = b"\x0a\x04abcd"  # StartSessionRequest{device_id: "abcd"}
    return b"\x00" + struct.pack(">I", len(message)) + message


def h1_request(path, body, content_length=None, method="POST"):
    length = len(body) if content_length is None else content_length
    head = (f"{method} {path} HTTP/1.1\r\nHost: localhost\r\ncontent-type: application/grpc-web+proto\r\n"
            f"x-grpc-web: 1\r\ncontent-length: {length}\r\n\r\n")
    return head.encode() + body


def read_response(conn):
    """Reads one HTTP/1.1 response with a content-length or chunked body; returns (status, text)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None, data
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    lower = head.lower()
    if b"content-length:" in lower:
        length = int(lower.split(b"content-length:")[1].split(b"\r\n")[0])
        while len(rest) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            rest += chunk
    else:
        while not rest.endswith(b"0\r\n\r\n"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            rest += chunk
    return status, head + b"\r\n\r\n" + rest


def grpc_status(text):
    for marker in (b"grpc-status:", b"grpc-status: "):
        if marker in text:
            return int(text.split(marker)[1][:2].strip(b"\r\n "))
    return None


def ordinary_call(addr, ca, source):
    try:
        conn = tls_conn(addr, ca, "http/1.1", source)
        conn.settimeout(10)
        conn.sendall(h1_request("/podconnect.v1.SessionService/StartSession", grpc_web_start_session()))
        status, text = read_response(conn)
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        health, _ = read_response(conn)
        conn.close()
        return grpc_status(text) == 0 and health == 200
    except OSError:
        return False


def lockout(addr, ca, gw):
    stalled = []
    ended = []
    started = time.time()
    for _ in range(600):
        conn = tls_conn(addr, ca, "http/1.1")
        conn.sendall(h1_request("/podconnect.v1.SessionService/StartSession", b"\x00", content_length=9))
        stalled.append(conn)

    def watch(conn):
        conn.settimeout(BOUND)
        try:
            status, text = read_response(conn)
            ended.append((time.time() - started, grpc_status(text)))
        except OSError:
            ended.append((time.time() - started, "error"))

    for conn in stalled:
        threading.Thread(target=watch, args=(conn,), daemon=True).start()
    print(f"600 stalled calls open after {time.time() - started:.1f}s")
    window = 60.0
    failed = []
    probe_start = time.time()
    while time.time() - probe_start < window:
        t = time.time()
        if not ordinary_call(addr, ca, "127.0.0.2"):
            failed.append(t - probe_start)
        time.sleep(max(0, 0.25 - (time.time() - t)))
    locked = (failed[-1] - failed[0] + 0.25) if failed else 0.0
    print(f"other peer: {len(failed)} failed probes in {window:.0f}s; locked out for {locked:.1f}s "
          f"(first failure at {failed[0] if failed else '-'}, last at {failed[-1] if failed else '-'})")
    codes = {}
    for _, code in ended:
        codes[code] = codes.get(code, 0) + 1
    last = max((t for t, _ in ended), default=None)
    print(f"stalled calls ended: {len(ended)}/600 within {window:.0f}s + setup, statuses {codes}, "
          f"last at {last:.1f}s" if last else f"stalled calls ended: 0/600 within {window:.0f}s")


def silent(addr, ca, gw):
    for alpn in ("h2", "http/1.1"):
        conn = tls_conn(addr, ca, alpn)
        start_time = time.time()
        conn.settimeout(BOUND)
        try:
            data = conn.recv(1)
            while data:  # HTTP/2 sends its SETTINGS; keep reading until EOF
                data = conn.recv(65536)
            print(f"silent TLS peer (ALPN {alpn}): closed after {time.time() - start_time:.1f}s")
        except socket.timeout:
            print(f"silent TLS peer (ALPN {alpn}): still open after {BOUND:.0f}s")
        except OSError as err:
            print(f"silent TLS peer (ALPN {alpn}): reset after {time.time() - start_time:.1f}s ({err})")
    raw = socket.create_connection(addr, timeout=BOUND)
    start_time = time.time()
    try:
        raw.recv(1)
        print(f"TCP-only peer: closed after {time.time() - start_time:.1f}s")
    except socket.timeout:
        print(f"TCP-only peer: still open after {BOUND:.0f}s")
    except OSError:
        print(f"TCP-only peer: reset after {time.time() - start_time:.1f}s")


H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def sigterm(addr, ca, gw):
    keep = []
    keep += [tls_conn(addr, ca, "h2") for _ in range(3)]  # handshake only
    keep.append(socket.create_connection(addr))  # TCP only
    for _ in range(3):  # idle HTTP/2
        conn = tls_conn(addr, ca, "h2")
        conn.sendall(H2_PREFACE)
        keep.append(conn)
    for _ in range(3):  # stalled call
        conn = tls_conn(addr, ca, "http/1.1")
        conn.sendall(h1_request("/podconnect.v1.SessionService/StartSession", b"\x00", content_length=9))
        keep.append(conn)
    time.sleep(1)
    start_time = time.time()
    gw.send_signal(signal.SIGTERM)
    try:
        gw.wait(timeout=BOUND)
        print(f"SIGTERM to exit: {time.time() - start_time:.1f}s")
    except subprocess.TimeoutExpired:
        print(f"SIGTERM to exit: still running after {BOUND:.0f}s")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def memory(addr, ca, gw):
    warm = [tls_conn(addr, ca, "h2") for _ in range(20)]
    for conn in warm:
        conn.sendall(H2_PREFACE)
    time.sleep(1)
    before = rss_kib(gw.pid)
    keep = []
    for _ in range(1000):
        conn = tls_conn(addr, ca, "h2")
        conn.sendall(H2_PREFACE)
        keep.append(conn)
    time.sleep(2)
    after = rss_kib(gw.pid)
    print(f"RSS {before} KiB -> {after} KiB with 1000 idle HTTP/2 TLS connections: "
          f"{(after - before) / 1000:.1f} KiB per connection")


def main():
    scenario, core_bin, gw_bin = sys.argv[1:4]
    core, gw, addr, ca = start(core_bin, gw_bin, sys.argv[4:])
    try:
        {"lockout": lockout, "silent": silent, "sigterm": sigterm, "memory": memory}[scenario](addr, ca, gw)
    finally:
        for process in (gw, core):
            if process.poll() is None:
                process.kill()
                process.wait()


if __name__ == "__main__":
    main()
