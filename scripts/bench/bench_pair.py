#!/usr/bin/env python3
"""Side by side: honcho_exporter against the hand-written peer exporter (Python,
prometheus_client + httpx; it lives outside this repository, in `../shared/peers/`), both polling
one upstream: the peer's own fake Honcho (`fake_honcho.py`, wrapped by counting_fake.py, which
marks every poll cycle's first request and keeps a measurement window of first request / last
response). Per repetition, in alternating order: a raw fetch of the same pages with curl
(sequential, and 4 curls in parallel when there are >= 4 workspaces), then each exporter.

- The peer polls back to back (its cycle blocks on every workspace's walk); its cycles are
  timed between consecutive `POST /v3/workspaces/list` arrivals, and CPU is its utime + stime
  (/proc/PID/stat) read at those instants.
- Ours schedules discovery, status and walks as separate jobs (issue 9), so LIST to LIST is its
  poll interval, not a walk. Its cycle is made explicit instead: one process per cycle, started
  with a long --poll.interval (default 10m) so that exactly one round runs after start-up
  (discovery, every workspace's status, every workspace's full walk), at each --rust-concurrency
  (default 1 and 4) with the rate limit raised. The cycle runs from the fake's first request to
  its last response once it has answered all of them (1 + W + W x pages); CPU is the exporter's
  CPU time (the sum over its threads of /proc/PID/task/TID/schedstat, nanoseconds; utime +
  stime ticks if a thread exited meanwhile) when it has gone quiet after that (its last pages
  merged and published) minus the same read by the fake just before serving the first request
  (start-up excluded). Its /metrics is then read once to check that every walk was published
  and every request answered 200, exactly once. Wall ratios are per repetition, ours and the
  raw fetches alternating cycle by cycle (same load).
- The raw fetch is timed by the same window (first request to last response at the fake), and
  as curl's own wall time.

Then both exporters idle and their /metrics are scraped alternately.

usage: bench_pair.py W U --peer-dir DIR [--python PY] [--exporter BIN] [--exporter-prefix CMD]
                     [--rust-concurrency 1,4] [--rust-max-rps 100000] [--reps 3] [--cycles 5]
                     [--warmup 1] [--scrapes 20] [--out DIR]
Prints one line per measurement and, last, `SUMMARY <json>` (medians over the repetitions).
Only processes started here are stopped, by PID (ours: its own process group, so that a wrapper
from --exporter-prefix leaves nothing behind). Everything binds to 127.0.0.1.
"""
import argparse, json, os, re, signal, socket, statistics, subprocess, sys, threading, time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
PY = sys.executable        # set from --python: a Python with prometheus-client and httpx
RUST = "target/release/honcho_exporter"
PREFIX = []                # --exporter-prefix: e.g. a profiler wrapping the exporter
MAX_RPS = "100000"         # --rust-max-rps
PEER_DIR = None
PEER = None
encode_cursor = workspace_name = None

TCK = os.sysconf("SC_CLK_TCK")
# Loopback only: never through a proxy from the environment.
LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TCK  # utime + stime


def threads_ns(pid):
    """{TID: CPU ns} of PID's live threads (/proc/PID/task/TID/schedstat)."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                out[tid] = int(f.read().split()[0])
        except FileNotFoundError:
            pass  # exited meanwhile
    return out


def cpu_between(first, last):
    """CPU seconds from the per-thread times `first` to `last`, or None when a thread alive at
    `first` has exited since (its time is gone from /proc)."""
    if not first or not last or any(tid not in last for tid in first):
        return None
    return (sum(last.values()) - sum(first.values())) / 1e9


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])


def stop(proc, grace=15):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill(); proc.wait()


def stop_group(proc, grace=15):
    """stop(proc), then SIGTERM to what is left of the process group it leads (started here with
    start_new_session: only processes started by it), e.g. the exporter under a wrapper."""
    stop(proc, grace)
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        pass


def curl(url, compressed=False, out="/dev/null", timeout=120):
    cmd = ["curl", "-s", "--max-time", str(timeout), "-o", out, "-w", "%{time_total} %{size_download} %{http_code}"]
    if compressed:
        cmd.append("--compressed")
    r = subprocess.run(cmd + [url], capture_output=True, text=True)
    t, size, code = r.stdout.split()
    return float(t), int(size), code


def wait_http(url, pred, timeout=600, every=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = subprocess.run(["curl", "-s", "--max-time", "5", url], capture_output=True, text=True)
        if r.returncode == 0 and pred(r.stdout):
            return r.stdout
        time.sleep(every)
    raise RuntimeError(f"timeout waiting for {url}")


class Fake:
    """counting_fake.py; a reader thread stamps every cycle start (POST /v3/workspaces/list)."""

    def __init__(self, w, u, outdir):
        s = max(1, u // 20)
        self.errf = open(f"{outdir}/fake.stderr", "w")
        self.proc = subprocess.Popen([PY, os.path.join(HERE, "counting_fake.py"), PEER_DIR, "--port", "0", "--workspaces", str(w),
                                      "--sessions", str(s), "--work-units", str(u), "--seed", "1"],
                                     stdout=subprocess.PIPE, stderr=self.errf, text=True, bufsize=1)
        line = self.proc.stdout.readline()
        self.banner = line.strip()
        self.url = re.search(r"listening on (http://\S+)", line).group(1)
        self.pid = self.proc.pid
        self.current = None   # pid of the exporter being measured
        self.events = []      # (t, requests_so_far, exporter_pid, exporter_cpu, fake_cpu)
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            if not line.startswith("LIST "):
                continue
            t = time.monotonic()
            cur = self.current
            try:
                ecpu = cpu_s(cur) if cur else None
            except FileNotFoundError:
                ecpu = None
            ev = (t, int(line.split()[1]), cur, ecpu, cpu_s(self.pid))
            with self.lock:
                self.events.append(ev)

    def arm(self, pid=None):
        """Opens a new measurement window at the fake (counting_fake.py); PID's CPU is read at
        its first request."""
        q = f"?pid={pid}" if pid else ""
        req = urllib.request.Request(f"{self.url}/_bench/arm{q}", data=b"", method="POST")
        with LOCAL.open(req, timeout=10) as r:
            r.read()

    def window(self):
        with LOCAL.open(f"{self.url}/_bench/window", timeout=10) as r:
            return json.loads(r.read())

    def events_for(self, pid):
        with self.lock:
            return [e for e in self.events if e[2] == pid and e[3] is not None]

    def close(self):
        stop(self.proc)
        self.errf.close()


def raw_fetch_config(fake, w, u, path, workspaces=None):
    """curl -K file: the list POST, then every workspace's status + every work-unit page, as the
    exporters request them (size=100, cursor pasted verbatim)."""
    base = fake.url
    lines = []
    if workspaces is None:
        workspaces = range(w)
        lines += [f'url = "{base}/v3/workspaces/list?page=1&size=100"', 'request = "POST"', 'data = "{}"',
                  'header = "Content-Type: application/json"', "next"]
    for i in workspaces:
        ws = workspace_name(i)
        lines.append(f'url = "{base}/v3/workspaces/{ws}/queue/status"')
        for off in range(0, u, 100):
            q = "size=100" + (f"&cursor={encode_cursor('>', off)}" if off else "")
            lines.append(f'url = "{base}/v3/workspaces/{ws}/queue/work-units?{q}"')
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return len([l for l in lines if l.startswith("url")])


def raw_fetch(fake, cfgs, expected):
    """Runs one curl per config concurrently (1 config = sequential). Returns the wall time from
    the fake's first request to its last response (as ours is timed), curl's own wall time
    (process start to exit), and the fake's CPU over the window (as for ours)."""
    fake.current = None
    fake.arm()
    t0 = time.monotonic()
    procs = [subprocess.Popen(["curl", "-s", "--fail", "-K", c], stdout=subprocess.DEVNULL) for c in cfgs]
    rcs = [p.wait() for p in procs]
    t1 = time.monotonic()
    assert all(rc == 0 for rc in rcs), rcs
    deadline = time.monotonic() + 10
    while True:  # curl may have read the last response before the fake's thread stamped it
        win = fake.window()
        if win["responses"] >= expected or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert win["responses"] == expected, (win, expected)
    return win["last_t"] - win["first_t"], t1 - t0, win["fake_cpu_last"] - win["fake_cpu_first"]


def start_exporter(kind, fake, port, outdir, tag, interval, timeout, concurrency=4, gated=False):
    """Starts an exporter. gated: through `sh -c 'read _ && exec ...'` (same PID), so that the
    fake can be armed with the PID before the exporter's first request; call p._go() then."""
    log = open(f"{outdir}/{tag}.log", "w")
    if kind == "rust":
        env = dict(os.environ, HONCHO_EXPORTER_HONCHO_MAX_REQUESTS_PER_SECOND=MAX_RPS)
        prefix = [part.replace("{tag}", tag) for part in PREFIX]
        cmd = prefix + [RUST, "--honcho.url", fake.url, "--web.listen-address", f"127.0.0.1:{port}",
                        "--poll.interval", interval, "--poll.timeout", timeout,
                        "--poll.concurrency", str(concurrency), "--log.level", "info"]
    else:
        env = dict(os.environ)
        cmd = [PY, PEER, "--honcho-url", fake.url, "--listen-address", "127.0.0.1", "--port", str(port),
               "--interval", interval, "--concurrency", "4", "--page-size", "100"]
    if gated:
        cmd = ["sh", "-c", 'read _ && exec "$@"', "sh"] + cmd
    # Ours in its own process group: a wrapper that exits on SIGTERM without its child (strace)
    # leaves nothing behind, see stop_group().
    p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                         stdin=subprocess.PIPE if gated else subprocess.DEVNULL, start_new_session=(kind == "rust"))
    p._log = log
    if gated:
        def go():
            p.stdin.write(b"\n"); p.stdin.close()
        p._go = go
    return p


def measure_loop(kind, fake, outdir, tag, warmup, n):
    """The peer, polling back to back: cycles from one LIST to the next."""
    port = free_port()
    p = start_exporter(kind, fake, port, outdir, tag, "0.001", None)
    fake.current = p.pid
    need = warmup + n + 1
    deadline = time.monotonic() + 900
    while len(fake.events_for(p.pid)) < need:
        if p.poll() is not None:
            raise RuntimeError(f"{tag} exited rc={p.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{tag}: timeout")
        time.sleep(0.02)
    ev = fake.events_for(p.pid)[:need]
    hwm = status_kib(p.pid, "VmHWM"); rss = status_kib(p.pid, "VmRSS")
    a, b = ev[warmup], ev[warmup + n]
    res = {"kind": kind, "cycles": n, "warmup": warmup,
           "wall_per_cycle": (b[0] - a[0]) / n,
           "cpu_per_cycle": (b[3] - a[3]) / n,
           "fake_cpu_per_cycle": (b[4] - a[4]) / n,
           "requests_per_cycle": (b[1] - a[1]) / n,
           "per_cycle_wall": [ev[i + 1][0] - ev[i][0] for i in range(warmup, warmup + n)],
           "per_cycle_requests": [ev[i + 1][1] - ev[i][1] for i in range(warmup, warmup + n)],
           "vmhwm_kib": hwm, "vmrss_kib": rss}
    fake.current = None
    stop(p); p._log.close()
    polls = [l for l in open(f"{outdir}/{tag}.log") if " done: " in l]
    res["log_polls"] = [l.split(": ", 1)[1].strip() for l in polls[warmup:warmup + n]]
    return res


SELF_METRICS = re.compile(r"^honcho_exporter_(upstream_requests_total|poll_errors_total|poll_cycles_total|"
                          r"poll_duration_seconds|series_capped_total|walk_truncated|walk_duration_seconds|up)\b")


def check_cycle(body, w, pages):
    """Problems with one full cycle as ours' /metrics reports it (empty: every workspace's walk
    complete, every request answered 200, exactly once)."""
    problems = []
    walks = re.findall(r"^honcho_exporter_walk_duration_seconds\{[^}]*\} ", body, re.M)
    if len(walks) != w:
        problems.append(f"{len(walks)} of {w} walks published")
    want = {"discovery": 1, "status": w, "work_units": w * pages}
    for m in re.finditer(r'^honcho_exporter_upstream_requests_total\{upstream="(\w+)",code="(\w+)"\} (\S+)', body, re.M):
        upstream, code, n = m.group(1), m.group(2), float(m.group(3))
        if code != "200" or want.get(upstream) != n:
            problems.append(f"{upstream} {code}: {n:g} requests (want {want.get(upstream)} x 200)")
    return problems


def wait_quiet(pid, after, quiet=0.5, every=0.02, limit=30.0):
    """Returns the process's CPU once it has not changed for `quiet` s, and not before the
    monotonic instant `after` + `quiet` (ours publishes at most every 250 ms: the last
    publication is in by then)."""
    deadline = time.monotonic() + limit
    last, since = cpu_s(pid), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(every)
        now, cpu = time.monotonic(), cpu_s(pid)
        if cpu != last:
            last, since = cpu, now
        elif now - since >= quiet and now >= after + quiet:
            return last
    return last


def measure_cycle(fake, outdir, tag, w, pages, concurrency, interval, timeout):
    """Ours: one process, one full cycle (see the module doc). Returns the cycle's figures."""
    expected = 1 + w + w * pages
    port = free_port()
    p = start_exporter("rust", fake, port, outdir, tag, interval, timeout, concurrency, gated=True)
    try:
        fake.arm(p.pid)
        p._go()
        deadline = time.monotonic() + 900
        while True:
            win = fake.window()
            if win["responses"] >= expected:
                break
            if p.poll() is not None:
                raise RuntimeError(f"{tag} exited rc={p.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{tag}: timeout, window {win}")
            time.sleep(0.05)
        cpu_end = wait_quiet(p.pid, win["last_t"])
        threads_end = threads_ns(p.pid)
        url = f"http://127.0.0.1:{port}/metrics"
        for attempt in range(50):  # the publication is normally in already
            with LOCAL.open(url, timeout=30) as r:
                body = r.read().decode()
            problems = check_cycle(body, w, pages)
            if not problems:
                break
            time.sleep(0.1)
        win = fake.window()  # again: anything sent after the cycle shows here
        hwm = status_kib(p.pid, "VmHWM"); rss = status_kib(p.pid, "VmRSS")
    finally:
        stop_group(p); p._log.close()
    # CPU: per-thread nanoseconds when every thread lived through the cycle, else clock ticks.
    cpu_ticks = cpu_end - win["pid_cpu_first"]
    cpu_ns = cpu_between(win["pid_threads_ns_first"], threads_end)
    res = {"kind": "rust", "concurrency": concurrency,
           "wall": win["last_t"] - win["first_t"],
           "cpu": cpu_ns if cpu_ns is not None else cpu_ticks,
           "cpu_ticks": cpu_ticks, "cpu_from": "threads_ns" if cpu_ns is not None else "ticks",
           "threads": len(threads_end),
           "startup_cpu": (sum(win["pid_threads_ns_first"].values()) / 1e9 if win["pid_threads_ns_first"]
                           else win["pid_cpu_first"]),
           "fake_cpu": win["fake_cpu_last"] - win["fake_cpu_first"],
           "requests": win["requests"], "late_publication": attempt > 0,
           "problems": problems, "vmhwm_kib": hwm, "vmrss_kib": rss,
           "self_metrics": [l for l in body.splitlines() if SELF_METRICS.match(l) and "walk_" not in l]}
    if win["requests"] != expected:
        res["problems"].append(f"{win['requests']} requests at the fake, want {expected}")
    res["log_warn_error"] = [l.strip() for l in open(f"{outdir}/{tag}.log") if re.search(r"\b(WARN|ERROR)\b", l)][:10]
    return res


def measure_rust(fake, outdir, rep, w, pages, concs, warmup, n, interval, timeout, raw):
    """Ours, interleaved with the raw fetches so both see the same load: `warmup` + `n` rounds
    of [each raw fetch, then one single-cycle process of ours per concurrency]; means over the
    last n rounds. raw: [(name, curl configs, expected requests)]."""
    rounds = []
    for i in range(warmup + n):
        one = {}
        for name, cfgs, expected in raw:
            one[name], one[name + "_curl"], one[name + "_fake_cpu"] = raw_fetch(fake, cfgs, expected)
        for c in concs:
            one[c] = measure_cycle(fake, outdir, f"cycle_rust_c{c}_{rep}_{i}", w, pages, c, interval, timeout)
        rounds.append(one)
    rounds = rounds[warmup:]
    mean = statistics.fmean
    out = {}
    for name, _, _ in raw:
        out[f"{name}_wall"] = mean(r[name] for r in rounds)
        out[f"{name}_curl_wall"] = mean(r[name + "_curl"] for r in rounds)
        out[f"{name}_fake_cpu"] = mean(r[name + "_fake_cpu"] for r in rounds)
        out[f"{name}_walls"] = [r[name] for r in rounds]
    for c in concs:
        runs = [r[c] for r in rounds]
        out[f"rust_c{c}"] = {
            "kind": "rust", "concurrency": c, "cycles": n, "warmup": warmup,
            "wall_per_cycle": mean(r["wall"] for r in runs),
            "cpu_per_cycle": mean(r["cpu"] for r in runs),
            "cpu_ticks_per_cycle": mean(r["cpu_ticks"] for r in runs),
            "cpu_from": sorted({r["cpu_from"] for r in runs}),
            "startup_cpu": mean(r["startup_cpu"] for r in runs),
            "fake_cpu_per_cycle": mean(r["fake_cpu"] for r in runs),
            "requests_per_cycle": mean(r["requests"] for r in runs),
            "per_cycle_wall": [r["wall"] for r in runs],
            "per_cycle_cpu": [r["cpu"] for r in runs],
            "vmhwm_kib": max(r["vmhwm_kib"] for r in runs),
            "vmrss_kib": runs[-1]["vmrss_kib"],
            "late_publications": sum(r["late_publication"] for r in runs),
            "problems": [q for r in runs for q in r["problems"]][:10],
            "self_metrics": runs[-1]["self_metrics"],
            "log_warn_error": [l for r in runs for l in r["log_warn_error"]][:10]}
    return out


def scrape_test(fake, outdir, scrapes):
    """Both exporters idle (long interval) after their first poll; scrapes alternate R, P, R, P..."""
    pr, pp = free_port(), free_port()
    r = start_exporter("rust", fake, pr, outdir, "idle_rust", "1h", "10s")
    p = start_exporter("python", fake, pp, outdir, "idle_python", "3600", None)
    try:
        ur, up_ = f"http://127.0.0.1:{pr}", f"http://127.0.0.1:{pp}"
        wait_http(ur + "/metrics", lambda b: re.search(r"^honcho_exporter_poll_cycles_total [1-9]", b, re.M), 1200, 0.5)
        deadline = time.monotonic() + 1200
        while not any(" done: " in l for l in open(f"{outdir}/idle_python.log")):
            if time.monotonic() > deadline:
                raise RuntimeError("python idle: no first poll")
            time.sleep(0.5)
        time.sleep(1)
        out = {}
        for kind, url in (("rust", ur), ("python", up_)):
            t, size, code = curl(url + "/metrics", out=f"{outdir}/body_{kind}.txt")
            with open(f"{outdir}/body_{kind}.txt") as f:
                samples = sum(1 for l in f if l.strip() and not l.startswith("#"))
            out[kind] = {"series": samples, "body_bytes": size, "plain": [], "gzip": [], "gzip_bytes": None}
        for mode in ("plain", "gzip"):
            for _ in range(scrapes):
                for kind, url in (("rust", ur), ("python", up_)):
                    t, size, code = curl(url + "/metrics", compressed=(mode == "gzip"))
                    assert code == "200", (kind, code)
                    out[kind][mode].append(t)
                    if mode == "gzip":
                        out[kind]["gzip_bytes"] = size
        out["rust"]["vmhwm_kib"] = status_kib(r.pid, "VmHWM"); out["rust"]["vmrss_kib"] = status_kib(r.pid, "VmRSS")
        out["python"]["vmhwm_kib"] = status_kib(p.pid, "VmHWM"); out["python"]["vmrss_kib"] = status_kib(p.pid, "VmRSS")
        for k in ("rust", "python"):
            out[k]["plain_median"] = statistics.median(out[k]["plain"])
            out[k]["gzip_median"] = statistics.median(out[k]["gzip"])
    finally:
        stop_group(r); r._log.close(); stop(p); p._log.close()
    return out


def summary(res):
    """Medians over the repetitions, and the ratios the issue asks for (wall ratios: the median of
    each repetition's ratio). `rust_*` without a
    concurrency is ours at the peer's concurrency (4) when measured, else at the highest."""
    reps = res["reps"]
    med = statistics.median
    concs = res["args"]["rust_concurrency"]
    main_c = 4 if 4 in concs else max(concs)
    out = {"case": res["case"], "reps": len(reps), "cycles": res["args"]["cycles"],
           "loadavg_start": res["loadavg_start"], "loadavg_end": res.get("loadavg_end"),
           "raw_requests": res["raw_requests"], "rust_method": "one process per full cycle",
           "rust_concurrency": concs, "rust_main_concurrency": main_c,
           "rust_max_requests_per_second": res["args"]["rust_max_rps"],
           "raw_seq_wall": med([r["raw_seq_wall"] for r in reps]),
           "raw_seq_curl_wall": med([r["raw_seq_curl_wall"] for r in reps]),
           "raw_seq_fake_cpu": med([r["raw_seq_fake_cpu"] for r in reps])}
    if "raw_par4_wall" in reps[0]:
        out["raw_par4_wall"] = med([r["raw_par4_wall"] for r in reps])
        out["raw_par4_curl_wall"] = med([r["raw_par4_curl_wall"] for r in reps])
        out["raw_par4_fake_cpu"] = med([r["raw_par4_fake_cpu"] for r in reps])
    # Under load the fastest of all cycles is the least disturbed one: minima as well.
    for raw in ("raw_seq", "raw_par4"):
        if f"{raw}_walls" in reps[0]:
            out[f"{raw}_wall_min"] = min(x for r in reps for x in r[f"{raw}_walls"])
    keys = ("wall_per_cycle", "cpu_per_cycle", "fake_cpu_per_cycle", "requests_per_cycle", "vmhwm_kib")
    for c in concs:
        k = f"rust_c{c}"
        for key in keys + ("startup_cpu",):
            out[f"{k}_{key}"] = med([r[k][key] for r in reps])
        out[f"{k}_cpu_reps"] = [r[k]["cpu_per_cycle"] for r in reps]
        out[f"{k}_wall_reps"] = [r[k]["wall_per_cycle"] for r in reps]
        out[f"{k}_wall_min"] = min(x for r in reps for x in r[k]["per_cycle_wall"])
        for raw in ("raw_seq", "raw_par4"):
            if f"{raw}_wall_min" in out:
                out[f"{k}_wall_min_over_{raw}_min"] = out[f"{k}_wall_min"] / out[f"{raw}_wall_min"]
        # Ratios per repetition (ours and the raw fetch interleaved, same load), then the median.
        for raw in ("raw_seq", "raw_par4"):
            if f"{raw}_wall" in out:
                ratios = [r[k]["wall_per_cycle"] / r[f"{raw}_wall"] for r in reps]
                out[f"{k}_wall_over_{raw}"] = med(ratios)
                out[f"{k}_wall_over_{raw}_reps"] = ratios
    for key in keys + ("cpu_reps", "wall_reps", "startup_cpu"):
        out[f"rust_{key}"] = out[f"rust_c{main_c}_{key}"]
    for key in keys:
        out[f"python_{key}"] = med([r["python"][key] for r in reps])
    out["python_cpu_reps"] = [r["python"]["cpu_per_cycle"] for r in reps]
    # utime + stime count clock ticks (10 ms): a tiny case can round ours down to 0.
    out["cpu_ratio"] = (out["python_cpu_per_cycle"] / out["rust_cpu_per_cycle"]
                        if out["rust_cpu_per_cycle"] > 0 else None)
    # The wall targets, like for like: ours at concurrency 1 against the sequential
    # fetch (<= 1.1), ours at 4 against 4 parallel curls (< 1).
    if 1 in concs:
        out["rust_wall_over_raw_seq"] = out["rust_c1_wall_over_raw_seq"]
    if "raw_par4_wall" in out:
        out["rust_wall_over_raw_par4"] = out[f"rust_c{main_c}_wall_over_raw_par4"]
    s = res.get("scrape")
    if s:
        for kind in ("rust", "python"):
            out[f"{kind}_series"] = s[kind]["series"]
            out[f"{kind}_scrape_plain_ms"] = s[kind]["plain_median"] * 1e3
            out[f"{kind}_scrape_gzip_ms"] = s[kind]["gzip_median"] * 1e3
            out[f"{kind}_scrape_vmhwm_kib"] = s[kind]["vmhwm_kib"]
    errors = [f"c{c}: {q}" for r in reps for c in concs for q in r[f"rust_c{c}"]["problems"]]
    out["rust_errors"] = errors[:5]
    out["rust_late_publications"] = sum(r[f"rust_c{c}"]["late_publications"] for r in reps for c in concs)
    return out


def find_peer_dir(given):
    candidates = [given] if given else [
        os.environ.get("HONCHO_PEER_DIR"),
        os.path.join(HERE, "..", "..", "..", "shared", "peers", "python_exporter"),
        os.path.join(HERE, "..", "..", "..", "..", "shared", "peers", "python_exporter"),
    ]
    for c in candidates:
        if c and os.path.isfile(os.path.join(c, "exporter.py")) and os.path.isfile(os.path.join(c, "fake_honcho.py")):
            return os.path.abspath(c)
    sys.exit(f"bench_pair: no peer exporter (exporter.py + fake_honcho.py) in {candidates}; pass --peer-dir")


def main():
    global PY, RUST, PREFIX, MAX_RPS, PEER_DIR, PEER, encode_cursor, workspace_name
    ap = argparse.ArgumentParser()
    ap.add_argument("w", type=int); ap.add_argument("u", type=int)
    ap.add_argument("--peer-dir", default=None, help="the peer's directory (exporter.py, fake_honcho.py)")
    ap.add_argument("--python", default=sys.executable, help="a Python with prometheus-client and httpx")
    ap.add_argument("--exporter", default=RUST)
    ap.add_argument("--exporter-prefix", default="",
                    help="command wrapping ours, e.g. 'perf record -g -o perf-{tag}.data --' ({tag}: the "
                         "run's name; ours runs one process per cycle). CPU figures are then the wrapper's")
    ap.add_argument("--only", choices=("rust", "python"), default=None, help="measure one exporter only")
    ap.add_argument("--rust-concurrency", default="1,4",
                    help="ours' --poll.concurrency values, each measured (default 1,4; the peer uses 4)")
    ap.add_argument("--rust-max-rps", default="100000",
                    help="ours' honcho.max_requests_per_second (raised: the limiter is not what is measured)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--cycles", type=int, default=5, help="cycles measured per repetition (ours: processes)")
    ap.add_argument("--warmup", type=int, default=1, help="cycles run first and not counted")
    ap.add_argument("--scrapes", type=int, default=20)
    # Ours runs one round per process: the interval only has to outlast a full cycle.
    ap.add_argument("--rust-interval", default="10m", help="ours' --poll.interval (longer than a cycle)")
    ap.add_argument("--rust-timeout", default="10s", help="ours' --poll.timeout (per request)")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    PY, RUST, PREFIX, MAX_RPS = a.python, a.exporter, a.exporter_prefix.split(), a.rust_max_rps
    try:
        a.rust_concurrency = sorted({int(c) for c in a.rust_concurrency.split(",")})
    except ValueError:
        ap.error(f"--rust-concurrency: expected numbers separated by commas, got {a.rust_concurrency!r}")
    if not a.rust_concurrency or min(a.rust_concurrency) < 1:
        ap.error("--rust-concurrency: each value must be at least 1")
    PEER_DIR = find_peer_dir(a.peer_dir)
    PEER = os.path.join(PEER_DIR, "exporter.py")
    sys.path.insert(0, PEER_DIR)
    import fake_honcho  # stdlib-only module of the peer
    encode_cursor, workspace_name = fake_honcho.encode_cursor, fake_honcho.workspace_name
    outdir = a.out or os.path.join("target", "bench", "pair", f"{a.w}x{a.u}")
    os.makedirs(outdir, exist_ok=True)
    pages = max(1, -(-a.u // 100))
    res = {"case": f"{a.w}x{a.u}", "args": vars(a), "loadavg_start": open("/proc/loadavg").read().strip()}
    t0 = time.monotonic()
    fake = Fake(a.w, a.u, outdir)
    res["fake_banner"] = fake.banner
    try:
        seq = f"{outdir}/raw_seq.curl"
        res["raw_requests"] = raw_fetch_config(fake, a.w, a.u, seq)
        par, par_requests = [], 0
        if a.w >= 4:  # the workspaces round robin over 4 curls (no list request)
            for k in range(4):
                path = f"{outdir}/raw_par{k}.curl"
                par_requests += raw_fetch_config(fake, a.w, a.u, path, workspaces=range(k, a.w, 4))
                par.append(path)
        raw_fetch(fake, [seq], res["raw_requests"])  # warm the fake once
        raw = [("raw_seq", [seq], res["raw_requests"])] + ([("raw_par4", par, par_requests)] if par else [])
        res["reps"] = []
        for rep in range(a.reps):
            order = ("rust", "python") if rep % 2 == 0 else ("python", "rust")
            if a.only:
                order = (a.only,)
            r = {"order": order, "loadavg": open("/proc/loadavg").read().strip()}
            for kind in order:
                if kind == "python":
                    r[kind] = measure_loop(kind, fake, outdir, f"loop_{kind}_{rep}", a.warmup, a.cycles)
                    q = r[kind]
                    print(f"rep {rep} python: wall {q['wall_per_cycle']:.4f}s cpu {q['cpu_per_cycle']:.4f}s "
                          f"fake {q['fake_cpu_per_cycle']:.4f}s req {q['requests_per_cycle']:.1f} "
                          f"hwm {q['vmhwm_kib']/1024:.1f}MiB load {open('/proc/loadavg').read().split()[0]}", flush=True)
                    continue
                r.update(measure_rust(fake, outdir, rep, a.w, pages, a.rust_concurrency, a.warmup, a.cycles,
                                      a.rust_interval, a.rust_timeout, raw))
                print(f"rep {rep} raw seq {r['raw_seq_wall']:.4f}s (curl {r['raw_seq_curl_wall']:.4f}s)"
                      + (f" par4 {r['raw_par4_wall']:.4f}s (curl {r['raw_par4_curl_wall']:.4f}s)" if par else ""),
                      flush=True)
                for c in a.rust_concurrency:
                    q = r[f"rust_c{c}"]
                    print(f"rep {rep} rust c{c}: wall {q['wall_per_cycle']:.4f}s cpu {q['cpu_per_cycle']:.4f}s "
                          f"(ticks {q['cpu_ticks_per_cycle']:.4f}s, start-up {q['startup_cpu']:.4f}s) fake {q['fake_cpu_per_cycle']:.4f}s "
                          f"req {q['requests_per_cycle']:.1f} hwm {q['vmhwm_kib']/1024:.1f}MiB "
                          f"load {open('/proc/loadavg').read().split()[0]}"
                          + (f" PROBLEMS {q['problems']}" if q["problems"] else ""), flush=True)
            res["reps"].append(r)
        if a.scrapes and not a.only:
            res["scrape"] = scrape_test(fake, outdir, a.scrapes)
            for k in ("rust", "python"):
                s = res["scrape"][k]
                print(f"scrape {k}: series {s['series']} bytes {s['body_bytes']} gz {s['gzip_bytes']} "
                      f"plain {s['plain_median']*1000:.2f}ms gzip {s['gzip_median']*1000:.2f}ms hwm {s['vmhwm_kib']/1024:.1f}MiB",
                      flush=True)
        res["fake_vmhwm_kib"] = status_kib(fake.pid, "VmHWM")
    finally:
        fake.close()
    res["loadavg_end"] = open("/proc/loadavg").read().strip()
    res["elapsed_s"] = time.monotonic() - t0
    with open(f"{outdir}/result.json", "w") as f:
        json.dump(res, f, indent=1)
    print("wrote", f"{outdir}/result.json", flush=True)
    if not a.only:
        print("SUMMARY " + json.dumps(summary(res)), flush=True)


if __name__ == "__main__":
    main()
