#!/usr/bin/python3
"""What an idle keep-alive connection costs the gateway (not part of tests/run).

    CRUDDUR_BUILD_DIR=build/rel tests/bench/idle_conns.py [CONNECTIONS]

Starts the gateway alone (no upstream is needed for /healthz) once with a
thread per connection (GATEWAY_WORKERS=0) and once with a pool of 4, opens
CONNECTIONS (500) keep-alive connections that each send one GET /healthz and
then stay idle, and prints the anonymous memory and threads they added and
the CPU the process used over the next 10 s. The idle timeout is 75 s so a
load balancer's idle connections (ALB: 60 s) stay open: this is their price.
"""
import os
import socket
import subprocess
import sys
import time

BUILD = os.environ.get("CRUDDUR_BUILD_DIR", "build/rel")
GATEWAY = os.path.join(BUILD, "gateway", "gateway")
N = int(sys.argv[1]) if len(sys.argv) > 1 else 500


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rss_anon_kib_and_threads(pid):
    d = dict(line.split(":", 1) for line in open("/proc/%d/status" % pid))
    return int(d["RssAnon"].split()[0]), int(d["Threads"])


def cpu_s(pid):
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def idle_connection(port):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    got = b""
    while b'{"status":"ok"}' not in got:
        got += s.recv(4096)
    return s


def measure(workers):
    port = free_port()
    env = dict(os.environ, GATEWAY_LISTEN="127.0.0.1:%d" % port, AWS_COGNITO_USER_POOL_ID="p",
               AWS_COGNITO_USER_POOL_CLIENT_ID="c", COGNITO_ISSUER="http://127.0.0.1:1/p",
               GATEWAY_WORKERS=workers, GATEWAY_MAX_CONNECTIONS_PER_IP="0", LOG_LEVEL="warn")
    p = subprocess.Popen([GATEWAY], env=env, stderr=subprocess.DEVNULL)
    conns = []
    try:
        deadline = time.time() + 10
        while True:
            try:
                conns.append(idle_connection(port))
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
        for _ in range(19):  # warm: first allocations of the process are not the connections'
            conns.append(idle_connection(port))
        time.sleep(0.5)
        r0, t0 = rss_anon_kib_and_threads(p.pid)
        for _ in range(N):
            conns.append(idle_connection(port))
        time.sleep(1)
        r1, t1 = rss_anon_kib_and_threads(p.pid)
        c0 = cpu_s(p.pid)
        time.sleep(10)
        c1 = cpu_s(p.pid)
        print("GATEWAY_WORKERS=%s: %d idle keep-alive connections: RssAnon +%d KiB (%.1f KiB "
              "each), threads %d -> %d, CPU %.2f s in 10 s" % (
                  workers, N, r1 - r0, (r1 - r0) / N, t0, t1, c1 - c0))
    finally:
        for s in conns:
            s.close()
        p.terminate()
        p.wait()


if __name__ == "__main__":
    for w in ("0", "4"):
        measure(w)
