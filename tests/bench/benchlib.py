"""Shared helpers of the tests/bench drivers (run with /usr/bin/python3).

wrk runs and their parsed figures, a process's memory and CPU time from
/proc, the core layout of a run (pin), and result records: when BENCH_RECORDS names a file (tests/bench/run
sets it), every record() and target() appends one JSON line to it, from which
run writes the tables of bench-results.md and bench-results.json.
"""
import json
import os
import re
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
MIB = 1024  # KiB
_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def ms(v):
    """wrk's "1.23ms" / "870.00us" / "1.02s" in milliseconds (nan when unreadable)."""
    m = re.match(r"([\d.]+)(us|ms|s)$", v)
    return float(m.group(1)) * _UNIT[m.group(2)] if m else float("nan")


def wrk(url, script=None, env=None, duration=5, conns=16, threads=2, timeout_s=None):
    """One wrk --latency run. Returns rps, avg/p50/p99 (ms), total requests,
    non2xx, sockerr (wrk's socket error text, "" when none), timeouts and
    busy: rps x mean latency, the connections that were actually being
    served on average (Little's law); far below `conns` means the server
    left connections waiting (wrk counts no timeout for a request still
    unanswered when the run ends)."""
    threads = max(1, min(threads, conns))
    cmd = ["wrk", "-t%d" % threads, "-c%d" % conns, "-d%ds" % duration, "--latency"]
    if timeout_s:
        cmd += ["--timeout", "%ds" % timeout_s]
    if script:
        cmd += ["-s", os.path.join(HERE, script)]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, check=True,
                         env=dict(os.environ, **(env or {}))).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    avg = re.search(r"^\s+Latency\s+(\S+)", out, re.M)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    total = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errs = re.search(r"Socket errors: (.*)", out)
    tmo = re.search(r"timeout (\d+)", errs.group(1)) if errs else None
    avg_ms = ms(avg.group(1)) if avg else float("nan")
    return {"rps": rps, "avg": avg_ms, "busy": rps * avg_ms / 1000.0, "p50": ms(p50.group(1)) if p50 else float("nan"),
            "p99": ms(p99.group(1)) if p99 else float("nan"), "total": total,
            "non2xx": int(bad.group(1)) if bad else 0, "sockerr": errs.group(1) if errs else "",
            "timeouts": int(tmo.group(1)) if tmo else 0}


def mem_kib(pid):
    """Memory of a process, in KiB: VmRSS, VmHWM, RssAnon (its own pages) and
    Pss (shared library pages divided among the processes mapping them)."""
    with open("/proc/%d/status" % pid) as f:
        text = f.read()
    with open("/proc/%d/smaps_rollup" % pid) as f:
        pss = int(re.search(r"^Pss:\s+(\d+)", f.read(), re.M).group(1))
    return {"rss": int(re.search(r"VmRSS:\s+(\d+)", text).group(1)),
            "hwm": int(re.search(r"VmHWM:\s+(\d+)", text).group(1)),
            "anon": int(re.search(r"RssAnon:\s+(\d+)", text).group(1)), "pss": pss}


# ---- the core layout (issue 16: a fair rig) ---------------------------------
# dynalite is one Node thread and PostgreSQL one backend per connection: the
# stores. Pinned, they get core 0 to themselves, and the load generator (wrk,
# pgbench, the C bench clients) and our three processes share core 1, for the
# raw baseline and for our chain alike; so a ratio to the raw rate says
# whether our chain keeps up with the store on one core. Unpinned, everything
# floats over every core (the figures for information: how much CPU we take
# from the store).
STORES = ("dynalite", "postgres")


def _tree(pid):
    """pid and every descendant (PostgreSQL forks a backend per connection)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for t in os.listdir("/proc/%d/task" % p):
                with open("/proc/%d/task/%s/children" % (p, t)) as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return out


def _set_cpus(pid, cpus):
    """Every thread of pid and of its descendants on cpus."""
    for p in _tree(pid):
        try:
            for t in os.listdir("/proc/%d/task" % p):
                os.sched_setaffinity(int(t), cpus)
        except OSError:  # a thread or backend that just ended
            pass


def pin(pids, pinned=True):
    """Applies the layout to {name: pid}: the STORES on core 0, every other
    process and this one (so the load generators it starts later inherit it)
    on core 1; pinned=False spreads all of them over every core again.
    Returns a label for the report ("pinned: stores on core 0, ..." or
    "unpinned"). With fewer than 2 cores there is nothing to pin."""
    every = set(range(os.cpu_count()))
    if not pinned or len(every) < 2:
        for pid in pids.values():
            _set_cpus(pid, every)
        os.sched_setaffinity(0, every)
        return "unpinned"
    for name, pid in pids.items():
        _set_cpus(pid, {0} if name in STORES else {1})
    os.sched_setaffinity(0, {1})
    return "pinned: %s on core 0; load generator and our processes on core 1" % "+".join(
        n for n in pids if n in STORES)


def stack_pids(stack, names):
    """{name: pid} for names started by a tests/stack Stack ("postgres": the
    postmaster, whose backends pin() follows)."""
    out = {}
    for n in names:
        if n == "postgres":
            with open(os.path.join(stack.run_dir, "postgres.pid")) as f:
                out[n] = int(f.read())
        else:
            out[n] = stack.procs[n].pid
    return out


def cpu_s(pid):
    """User + system CPU seconds a process has used so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_all(pids):
    """CPU seconds so far of each process in {name: pid}."""
    return {n: cpu_s(p) for n, p in pids.items()}


def cpu_us_per(before, after, requests):
    """{name: CPU microseconds per request} between two cpu_all() snapshots."""
    return {n: (after[n] - before[n]) / max(1, requests) * 1e6 for n in before}


def _append(rec):
    path = os.environ.get("BENCH_RECORDS")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(rec) + "\n")


def record(section, table, row, **cols):
    """One row of a result table (columns in the order given; floats kept as
    measured, run rounds them for display)."""
    _append({"kind": "row", "section": section, "table": table, "row": row, "cols": cols})


_OPS = {"<": lambda v, t: v < t, "<=": lambda v, t: v <= t, ">": lambda v, t: v > t,
        ">=": lambda v, t: v >= t}


def target(section, what, value, op, limit, issue=None, fmt="%.2f", label="ratio", note=""):
    """Prints "LABEL WHAT = VALUE  (target OP LIMIT[; note]) PASS|MISS" and
    records it. Returns True when the target is met."""
    ok = _OPS[op](value, limit)
    extra = "; " + note if note else ""
    print(("%s %s = " + fmt + "  (target %s %s%s) %s") % (label, what, value, op, limit, extra,
                                                          "PASS" if ok else "MISS"), flush=True)
    _append({"kind": "target", "section": section, "what": what, "value": value, "op": op,
             "limit": limit, "issue": issue, "pass": ok, "note": note, "fmt": fmt})
    return ok
