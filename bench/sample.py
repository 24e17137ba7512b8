#!/usr/bin/env python3
"""Samples RSS and CPU of named processes from /proc for a fixed time and prints a table.

usage: sample.py DURATION_SECS INTERVAL_SECS name=pid [name=pid ...]
CPU is (utime+stime) over the whole window, as percent of one core; RSS is VmRSS (avg and max).
"""
import os
import sys
import time

HZ = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    duration, interval = float(sys.argv[1]), float(sys.argv[2])
    procs = [arg.split("=", 1) for arg in sys.argv[3:]]
    start_ticks = {name: cpu_ticks(pid) for name, pid in procs}
    rss = {name: [] for name, _ in procs}
    t0 = time.monotonic()
    while time.monotonic() - t0 < duration:
        for name, pid in procs:
            rss[name].append(rss_kb(pid))
        time.sleep(interval)
    elapsed = time.monotonic() - t0
    print(f"{'process':<28} {'avg RSS MB':>10} {'max RSS MB':>10} {'CPU % of a core':>16}   ({elapsed:.0f} s, {len(rss[procs[0][0]])} samples)")
    for name, pid in procs:
        cpu = (cpu_ticks(pid) - start_ticks[name]) / HZ / elapsed * 100
        r = rss[name]
        print(f"{name:<28} {sum(r) / len(r) / 1024:>10.1f} {max(r) / 1024:>10.1f} {cpu:>16.3f}")


if __name__ == "__main__":
    main()
