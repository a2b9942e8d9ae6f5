#!/usr/bin/env python3
"""Where a stream's first byte goes: a kernel trace of one-at-a-time requests, cut into steps.

Records scheduler and system-call events with the kernel's own tracer (tracefs; needs root)
for a moment while `atlasai-bench load --concurrency 1 --stream` runs, arranged as the gateway
benchmark arranges it: the load generator on CPU 0, the upstream (`atlasai-bench upstream`)
and the gateway under test on CPU 1. Then, for every request, it finds when

  req       the load generator's write of the request starts (the clock starts here),
  in        a process on CPU 1 first reads bytes (the request arrived; CPU 1 woke up),
  gw_send   the gateway writes to the upstream,
  up_write  the upstream writes its answer (head and first chunk),
  gw_read   the gateway reads that answer,
  gw_write  the gateway writes the first bytes to the client,
  fb        the load generator reads them (its first byte),

and prints the median of each, in microseconds from `req`. With `--direct` (the load generator
calling the upstream itself) only req, in, up_write and fb exist. Timestamps are the kernel's
CLOCK_MONOTONIC, the clock the load generator measures with.

    python3 bench/trace_first_byte.py [--seconds 1] [--direct] [--keep trace.txt]
    python3 bench/trace_first_byte.py --analyze trace.txt [--direct]

Tracing costs a few microseconds per request: compare runs traced alike, not with untraced ones.
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import time

TRACEFS = "/sys/kernel/tracing"
EVENTS = [
    "sched:sched_switch",
    "sched:sched_wakeup",
    "raw_syscalls:sys_enter",
    "raw_syscalls:sys_exit",
]
# x86-64 system call numbers.
READS = {0, 19, 45, 47}  # read, readv, recvfrom, recvmsg
WRITES = {1, 20, 44, 46}  # write, writev, sendto, sendmsg
LINE = re.compile(r"^\s*(.+?)-(\d+)\s+\[(\d+)\]\s+\S+\s+([\d.]+): (\w+): (.*)$")
BENCH = "atlasai-bench"


def write(name, value):
    with open(os.path.join(TRACEFS, name), "w") as f:
        f.write(value)


def record(seconds):
    if not os.path.exists(os.path.join(TRACEFS, "trace")):
        subprocess.run(["mount", "-t", "tracefs", "nodev", TRACEFS], check=True)
    write("tracing_on", "0")
    write("trace", "")
    write("buffer_size_kb", "40960")
    write("set_event", "\n".join(EVENTS) + "\n")
    write("trace_clock", "mono")
    write("tracing_on", "1")
    time.sleep(seconds)
    write("tracing_on", "0")
    with open(os.path.join(TRACEFS, "trace")) as f:
        text = f.read()
    write("set_event", "")
    write("trace", "")
    return text.splitlines()


def parse(lines):
    events = []
    for line in lines:
        m = LINE.match(line)
        if not m:
            continue
        comm, pid, cpu, ts, name, rest = m.groups()
        nr = re.match(r"NR (\d+)", rest)
        ret = re.search(r"= (-?\d+)$", rest)
        args = re.search(r"\(([^)]*)\)", rest)
        events.append(
            {
                "t": float(ts) * 1e6,
                "cpu": int(cpu),
                "comm": comm,
                "name": name,
                "nr": int(nr.group(1)) if nr else None,
                "ret": int(ret.group(1)) if ret else None,
                "args": args.group(1).split(", ") if args else [],
            }
        )
    return events


def role(e):
    if e["cpu"] == 0:
        return "load" if e["comm"].startswith(BENCH) else None
    if e["comm"].startswith(BENCH):
        return "upstream"
    if e["comm"] == "<idle>":
        return None
    return "gateway"


def is_read(e, who):
    return (
        role(e) == who
        and e["name"] == "sys_exit"
        and e["nr"] in READS
        and (e["ret"] or 0) > 0
    )


def is_write(e, who):
    # tokio wakes its own threads by writing 8 bytes to an eventfd: not a socket write.
    if role(e) != who or e["name"] != "sys_enter" or e["nr"] not in WRITES:
        return False
    return not (e["nr"] == 1 and len(e["args"]) > 2 and e["args"][2] == "8")


def first(events, start, pred):
    """The index of the first event from `start` on that `pred` accepts, or None."""
    for i in range(start, len(events)):
        if pred(events[i]):
            return i
    return None


def analyze(events, direct):
    if direct:
        chain = [("up_write", "upstream", is_write)]
    else:
        chain = [("gw_send", "gateway", is_write), ("up_write", "upstream", is_write),
                 ("gw_read", "gateway", is_read), ("gw_write", "gateway", is_write)]
    steps = ["in"] + [c[0] for c in chain] + ["fb"]
    found = {s: [] for s in steps}
    switches = 0
    requests = 0
    i = 0
    while True:
        start = first(events, i, lambda e: is_write(e, "load"))
        end = None if start is None else first(events, start, lambda e: is_read(e, "load"))
        if end is None:
            break
        t0 = events[start]["t"]
        marks = {"fb": events[end]["t"]}
        at = first(events, start,
                   lambda e: e["cpu"] == 1 and role(e) is not None and is_read(e, role(e)))
        if at is not None and at < end:
            marks["in"] = events[at]["t"]
            for step, who, pred in chain:
                at = first(events, at, lambda e, who=who, pred=pred: pred(e, who))
                if at is None or at > end:
                    break
                marks[step] = events[at]["t"]
        if len(marks) == len(steps):
            requests += 1
            for s in steps:
                found[s].append(marks[s] - t0)
            switches += sum(1 for e in events[start:end + 1]
                            if e["name"] == "sched_switch" and e["cpu"] == 1)
        i = end + 1
    if not requests:
        sys.exit("no complete request in the trace: is the load running as described above?")
    print(f"{requests} requests; medians in µs from the load generator's write of the request")
    prev = 0.0
    for s in steps:
        v = statistics.median(found[s])
        q = statistics.quantiles(found[s], n=4)
        print(f"  {s:9s} {v:7.1f}  (+{v - prev:6.1f})   quartiles {q[0]:.1f}–{q[2]:.1f}")
        prev = v
    print(f"  context switches on CPU 1 per request: {switches / requests:.1f}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=1.0)
    p.add_argument("--direct", action="store_true", help="the load calls the upstream itself")
    p.add_argument("--keep", help="also write the raw trace here")
    p.add_argument("--analyze", help="analyze a trace written by --keep instead of recording")
    a = p.parse_args()
    if a.analyze:
        with open(a.analyze) as f:
            lines = f.read().splitlines()
    else:
        lines = record(a.seconds)
        if a.keep:
            with open(a.keep, "w") as f:
                f.write("\n".join(lines) + "\n")
    analyze(parse(lines), a.direct)


if __name__ == "__main__":
    main()
