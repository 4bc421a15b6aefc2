#!/usr/bin/env python3
"""The python peer of cfutures-bench: concurrent.futures.ThreadPoolExecutor.

cfutures-bench runs this script once per workload:

    python3 peer_python.py WORKLOAD key=value ...

with the sizes and the worker count as key=value arguments, and passes on
what it prints:

    ROW <metric> <median> <min> <max>   a figure, over `reps` repetitions
    NOTE <text>                         a note under the rows
    SKIP <why>                          the workload cannot be expressed

The workloads mirror bench/drivers.c; see ../shared/BENCH.md for the plan.
"""
import asyncio
import concurrent.futures as cf
import gc
import math
import os
import sys
import threading
import time

A = {}


def size(key):
    return int(float(A[key]))


def row(metric, values):
    v = sorted(values)
    print(f"ROW {metric} {v[len(v) // 2]!r} {v[0]!r} {v[-1]!r}", flush=True)


def note(text):
    print(f"NOTE {text}", flush=True)


def percentile(v, p):
    """p-th percentile of the sorted list v, as bench_percentile does."""
    i = math.ceil(p / 100 * len(v)) - 1
    return v[min(max(i, 0), len(v) - 1)]


def label(n):
    """1e4 for 10**4, as the C side names sized metrics."""
    e = round(math.log10(n))
    return f"1e{e}" if 10**e == n else str(n)


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def cpu_with_children():
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def empty():
    pass


def ident(i):
    return i


def start():
    return time.perf_counter_ns()  # CLOCK_MONOTONIC, like the C side


def spin(us):
    end = time.perf_counter() + us / 1e6
    while time.perf_counter() < end:
        pass


def pool():
    """A pool whose threads have started."""
    ex = cf.ThreadPoolExecutor(size("workers"))
    gate = threading.Barrier(size("workers") + 1)
    fs = [ex.submit(gate.wait) for _ in range(size("workers"))]
    gate.wait()
    cf.wait(fs)
    return ex


class Gate:
    """Occupy the workers of ex with jobs blocked until open()."""

    def __init__(self, ex, count):
        self.event = threading.Event()
        started = threading.Semaphore(0)

        def job():
            started.release()
            self.event.wait()

        self.futures = [ex.submit(job) for _ in range(count)]
        for _ in range(count):
            started.acquire()

    def open(self):
        self.event.set()
        cf.wait(self.futures)


def reps(fn):
    return [fn() for _ in range(size("reps"))]


# ---- workloads ----


def throughput():
    n = size("jobs")
    rate, cpu = [], []
    for _ in range(size("reps")):
        ex = pool()
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(n):
            ex.submit(empty)
        ex.shutdown(wait=True)
        rate.append(n / (time.perf_counter() - t0))
        cpu.append((time.process_time() - c0) / n * 1e9)
    row("jobs_per_s", rate)
    row("cpu_ns_per_job", cpu)
    note(f"{n} jobs; the wait for all is shutdown(wait=True)")


def futures_once(n):
    ex = pool()
    t0, c0 = time.perf_counter(), time.process_time()
    fs = [ex.submit(ident, i) for i in range(n)]
    total = 0
    for f in fs:
        total += f.result()
    del fs
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert total == n * (n - 1) // 2
    ex.shutdown()
    return wall, cpu


def futures():
    n = size("jobs")
    runs = reps(lambda: futures_once(n))
    row("jobs_per_s", [n / w for w, _ in runs])
    row("cpu_ns_per_job", [c / n * 1e9 for _, c in runs])
    note(f"{n} jobs")


def one_at_a_time(ex, count, gap, at_start):
    lat = []
    for _ in range(count):
        t0 = time.perf_counter_ns()
        v = ex.submit(start if at_start else empty).result()
        lat.append(((v if at_start else time.perf_counter_ns()) - t0) / 1e3)
        if gap > 0:
            time.sleep(gap)
    lat.sort()
    return lat


def roundtrip():
    n = size("rounds")
    p50, p99, cpu = [], [], []
    for _ in range(size("reps")):
        ex = pool()
        c0 = time.process_time()
        lat = one_at_a_time(ex, n, 0, False)
        cpu.append((time.process_time() - c0) / n * 1e9)
        p50.append(percentile(lat, 50))
        p99.append(percentile(lat, 99))
        ex.shutdown()
    row("p50_us", p50)
    row("p99_us", p99)
    row("cpu_ns_per_job", cpu)
    note(f"{n} rounds")


def latency_gap():
    for gap, name, key in ((0, "gap0", "gap0"), (50e-6, "gap50us", "gap50us"),
                           (1e-3, "gap1ms", "gap1ms")):
        p50, p99 = [], []
        for _ in range(size("reps")):
            ex = pool()
            lat = one_at_a_time(ex, size(key), gap, True)
            p50.append(percentile(lat, 50))
            p99.append(percentile(lat, 99))
            ex.shutdown()
        row(f"p50_us_{name}", p50)
        row(f"p99_us_{name}", p99)


def idle_cpu():
    window = float(A["idle_window"])
    pct = []
    for _ in range(size("reps")):
        ex = pool()
        cf.wait([ex.submit(empty) for _ in range(size("idle_burst"))])
        c0 = time.process_time()
        time.sleep(window)
        pct.append((time.process_time() - c0) / window * 100)
        ex.shutdown()
    row("cpu_pct", pct)


async def bridge_once(ex, rounds, jobs, inflight):
    loop = asyncio.get_running_loop()
    lat = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        await loop.run_in_executor(ex, empty)
        lat.append((time.perf_counter() - t0) * 1e6)
    lat.sort()
    slots = asyncio.Semaphore(inflight)
    finished = loop.create_future()
    count = 0

    def delivered(_):
        nonlocal count
        slots.release()
        count += 1
        if count == jobs:
            finished.set_result(None)

    t0 = time.perf_counter()
    for _ in range(jobs):
        await slots.acquire()
        loop.run_in_executor(ex, empty).add_done_callback(delivered)
    await finished
    return percentile(lat, 50), percentile(lat, 99), jobs / (time.perf_counter() - t0)


def bridge():
    runs = []
    for _ in range(size("reps")):
        ex = pool()
        runs.append(asyncio.run(bridge_once(ex, size("bridge_rounds"),
                                            size("bridge_jobs"),
                                            size("inflight"))))
        ex.shutdown()
    row("p50_us", [r[0] for r in runs])
    row("p99_us", [r[1] for r in runs])
    row("jobs_per_s", [r[2] for r in runs])
    note(f"asyncio loop.run_in_executor; {size('bridge_jobs')} jobs")


def fanout_once(depth, limit):
    ex = pool()
    deadline = time.monotonic() + limit

    def node(i, d):
        if d == depth:
            return True
        if time.monotonic() > deadline:
            return False  # deadlocked and unwinding: do not fan out
        fs = [ex.submit(node, 2 * i + 1, d + 1), ex.submit(node, 2 * i + 2, d + 1)]
        ok = True
        for f in fs:
            try:
                ok = f.result(timeout=max(0, deadline - time.monotonic())) and ok
            except cf.TimeoutError:
                ok = False
        return ok

    t0 = time.perf_counter()
    root = ex.submit(node, 0, 0)
    try:
        ok = root.result(timeout=limit)
    except cf.TimeoutError:
        ok = False
    wall = time.perf_counter() - t0
    root.result()
    ex.shutdown(wait=True)
    return ok, wall


def fanout():
    depth, limit = size("fanout_depth"), float(A["fanout_limit"])
    nodes = 2 ** (depth + 1) - 1
    rates = []
    completed = True
    for _ in range(size("reps")):
        completed, wall = fanout_once(depth, limit)
        if not completed:
            break
        rates.append(nodes / wall)
    row("completed", [int(completed)])
    if completed:
        row("jobs_per_s", rates)
    else:
        note(f"deadlock: all {size('workers')} workers wait for children "
             f"queued behind them (no result in {limit} s; then unwound)")


def as_completed():
    n = size("ac_jobs")
    batches = 10  # the small size: as many jobs, in batches of n / 10
    for batch in (n // batches, n):
        ns, ms = [], []
        for _ in range(size("reps")):
            ex = pool()
            t0, c0 = time.perf_counter(), time.thread_time()
            for b in range(0, n, batch):
                fs = [ex.submit(spin, i * 7919 % 21) for i in range(b, b + batch)]
                seen = sum(1 for _ in cf.as_completed(fs))
                assert seen == batch
            ns.append((time.thread_time() - c0) / n * 1e9)
            ms.append((time.perf_counter() - t0) * 1e3)
            ex.shutdown()
        row(f"ns_per_op_{label(batch)}", ns)
        if batch == n:
            row(f"ms_{label(n)}", ms)


def timeout():
    per = max(1, size("timeouts") // size("reps"))
    p50, p99 = [], []
    early = 0
    for _ in range(size("reps")):
        ex = pool()
        gate = Gate(ex, 1)
        over = []
        for _ in range(per):
            t0 = time.perf_counter()
            try:
                gate.futures[0].result(timeout=1e-3)
                raise RuntimeError("result() did not time out")
            except cf.TimeoutError:
                pass
            dt = time.perf_counter() - t0
            early += dt < 1e-3
            over.append((dt - 1e-3) * 1e6)
        over.sort()
        p50.append(percentile(over, 50))
        p99.append(percentile(over, 99))
        gate.open()
        ex.shutdown()
    row("p50_us", p50)
    row("p99_us", p99)
    row("early", [early])


def cancel():
    n, workers = size("cancels"), size("workers")
    ran = bytearray(n)

    def mark(i):
        ran[i] = 1

    def lost(fs, cancelled):
        return sum(1 for i, f in enumerate(fs)
                   if not f.done() or (cancelled[i] and ran[i]))

    def queued():
        """A pool with busy workers and n futures queued behind them."""
        ex = pool()
        gate = Gate(ex, workers)
        ran[:] = bytes(n)
        return ex, gate, [ex.submit(mark, i) for i in range(n)]

    total_lost = 0
    per_cancel, shutdown_ms = [], []
    for _ in range(size("reps")):
        ex, gate, fs = queued()
        t0 = time.perf_counter()
        cancelled = [f.cancel() for f in fs]
        per_cancel.append((time.perf_counter() - t0) / n * 1e9)
        gate.open()
        ex.shutdown(wait=True)
        total_lost += lost(fs, cancelled)
    for _ in range(size("reps")):
        ex, gate, fs = queued()
        t0 = time.perf_counter()
        ex.shutdown(wait=False, cancel_futures=True)
        shutdown_ms.append((time.perf_counter() - t0) * 1e3)
        gate.open()
        ex.shutdown(wait=True)
        total_lost += lost(fs, [False] * n)
    row("ns_per_op", per_cancel)
    row("ms", shutdown_ms)
    row("lost", [total_lost])
    note(f"{n} queued futures")


def fresh(name):
    """Run the measurement `name` in a fresh interpreter (memory freed by
    earlier repetitions would otherwise be reused) and return its value."""
    import subprocess
    out = subprocess.run([sys.executable, __file__, name, *sys.argv[2:]],
                         check=True, capture_output=True, text=True).stdout
    return float(out.split()[0])


def memory_once():
    n = size("mem")
    ex = pool()
    gate = Gate(ex, size("workers"))
    fs = [None] * n
    gc.collect()
    before = rss()
    for i in range(n):
        fs[i] = ex.submit(empty)
    print((rss() - before) / n)
    for f in fs:
        f.cancel()
    gate.open()
    ex.shutdown(wait=True)


def memory():
    row("bytes_per_future", reps(lambda: fresh("memory_once")))
    note(f"{size('mem')} queued futures; each repetition in a fresh process")


def scaling():
    for e in range(4, size("scaling_exp") + 1):
        n = 10**e
        row(f"ns_per_op_{label(n)}",
            [w / n * 1e9 for w, _ in reps(lambda: futures_once(n))])


async def yield_n(n):
    for _ in range(n):
        await asyncio.sleep(0)


async def nothing():
    pass


async def spawn_join(m):
    for _ in range(m):
        await asyncio.create_task(nothing())


async def suspended(n):
    gc.collect()
    before = rss()
    tasks = [asyncio.create_task(asyncio.sleep(3600)) for _ in range(n)]
    await asyncio.sleep(0)
    per = (rss() - before) / n
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return per


def tasks_memory_once():
    print(asyncio.run(suspended(size("tasks"))))


def tasks():
    switches = size("switches")

    def gen():
        while True:
            yield

    sw, yl, sj, mem = [], [], [], []
    for _ in range(size("reps")):
        g = gen()
        next(g)
        t0 = time.perf_counter()
        for _ in range(switches):
            g.send(None)
        sw.append((time.perf_counter() - t0) / (2 * switches) * 1e9)
        t0 = time.perf_counter()
        asyncio.run(yield_n(switches // 10))
        yl.append((time.perf_counter() - t0) / (switches // 10) * 1e9)
        t0 = time.perf_counter()
        asyncio.run(spawn_join(switches // 100))
        sj.append((time.perf_counter() - t0) / (switches // 100) * 1e9)
        mem.append(fresh("tasks_memory_once"))
    row("switch_ns", sw)
    row("yield_ns", yl)
    row("spawn_join_ns", sj)
    row("bytes_per_task", mem)
    note("switch: a generator send(); asyncio for the rest; memory in a "
         "fresh process per repetition")


WORKLOADS = {f.__name__: f for f in (
    throughput, futures, roundtrip, idle_cpu, latency_gap, bridge, fanout,
    as_completed, timeout, cancel, memory, scaling, tasks,
    memory_once, tasks_memory_once)}


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in WORKLOADS:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(WORKLOADS)}}} key=value...")
    for arg in sys.argv[2:]:
        key, _, value = arg.partition("=")
        A[key] = value
    t0, c0 = time.perf_counter(), cpu_with_children()
    WORKLOADS[sys.argv[1]]()
    what = ("asyncio" if sys.argv[1] == "tasks" else
            f"ThreadPoolExecutor({size('workers')})")
    if not sys.argv[1].endswith("_once"):
        note(f"({what}; "
             f"wall {time.perf_counter() - t0:.2f} s, "
             f"cpu {cpu_with_children() - c0:.2f} s)")


if __name__ == "__main__":
    main()
