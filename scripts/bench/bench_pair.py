#!/usr/bin/env python3
"""Side by side: honcho_exporter against the hand-written peer exporter (Python,
prometheus_client + httpx; it lives outside this repository, in `../shared/peers/`), both polling
one upstream: the peer's own fake Honcho (`fake_honcho.py`, wrapped by counting_fake.py, which
marks every poll cycle's first request). Per repetition, in alternating order: a raw fetch of
the same pages with curl (sequential, and 4 curls in parallel when there are >= 4 workspaces),
then each exporter polling back to back; cycles are timed between consecutive
`POST /v3/workspaces/list` arrivals, and CPU is the exporter's utime + stime (/proc/PID/stat)
read at those instants. Then both exporters idle and their /metrics are scraped alternately.

usage: bench_pair.py W U --peer-dir DIR [--python PY] [--exporter BIN] [--reps 3] [--cycles 5]
                     [--warmup 1] [--scrapes 20] [--out DIR]
Prints one line per measurement and, last, `SUMMARY <json>` (medians over the repetitions).
Only processes started here are stopped, by PID. Everything binds to 127.0.0.1.
"""
import argparse, json, os, re, signal, socket, statistics, subprocess, sys, threading, time

HERE = os.path.dirname(os.path.abspath(__file__))
PY = sys.executable        # set from --python: a Python with prometheus-client and httpx
RUST = "target/release/honcho_exporter"
PREFIX = []                # --exporter-prefix: e.g. a profiler wrapping the exporter
PEER_DIR = None
PEER = None
encode_cursor = workspace_name = None

TCK = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TCK  # utime + stime


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


def raw_fetch(fake, cfgs):
    """Runs one curl per config concurrently (1 config = sequential); returns wall, fake cpu."""
    fake.current = None
    c0, t0 = cpu_s(fake.pid), time.monotonic()
    procs = [subprocess.Popen(["curl", "-s", "--fail", "-K", c], stdout=subprocess.DEVNULL) for c in cfgs]
    rcs = [p.wait() for p in procs]
    t1, c1 = time.monotonic(), cpu_s(fake.pid)
    assert all(rc == 0 for rc in rcs), rcs
    return t1 - t0, c1 - c0


def start_exporter(kind, fake, port, outdir, tag, interval, timeout):
    log = open(f"{outdir}/{tag}.log", "w")
    if kind == "rust":
        env = dict(os.environ, HONCHO_EXPORTER_HONCHO_MAX_REQUESTS_PER_SECOND="100000")
        cmd = PREFIX + [RUST, "--honcho.url", fake.url, "--web.listen-address", f"127.0.0.1:{port}",
               "--poll.interval", interval, "--poll.timeout", timeout, "--poll.concurrency", "4",
               "--log.level", "info"]
    else:
        env = dict(os.environ)
        cmd = [PY, PEER, "--honcho-url", fake.url, "--listen-address", "127.0.0.1", "--port", str(port),
               "--interval", interval, "--concurrency", "4", "--page-size", "100"]
    p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    p._log = log
    return p


def measure_loop(kind, fake, outdir, tag, warmup, n, rust_interval, rust_timeout):
    port = free_port()
    interval = rust_interval if kind == "rust" else "0.001"
    p = start_exporter(kind, fake, port, outdir, tag, interval, rust_timeout)
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
    if kind == "rust":  # one gzip scrape after the window: the exporter's own counters
        body = subprocess.run(["curl", "-s", "--compressed", f"http://127.0.0.1:{port}/metrics"],
                              capture_output=True, text=True).stdout
        keep = re.compile(r"^honcho_exporter_(upstream_requests_total|poll_errors_total|poll_cycles_total|"
                          r"poll_duration_seconds|series_capped_total|walk_truncated|up)\b")
        res["self_metrics"] = [l for l in body.splitlines() if keep.match(l)]
    fake.current = None
    stop(p); p._log.close()
    if kind == "python":
        polls = [l for l in open(f"{outdir}/{tag}.log") if " done: " in l]
        res["log_polls"] = [l.split(": ", 1)[1].strip() for l in polls[warmup:warmup + n]]
    else:
        res["log_warn_error"] = [l.strip() for l in open(f"{outdir}/{tag}.log") if re.search(r"\b(WARN|ERROR)\b", l)][:10]
    return res


def scrape_test(fake, outdir, scrapes):
    """Both exporters idle (long interval) after their first poll; scrapes alternate R, P, R, P..."""
    pr, pp = free_port(), free_port()
    r = start_exporter("rust", fake, pr, outdir, "idle_rust", "1h", "10s")
    p = start_exporter("python", fake, pp, outdir, "idle_python", "3600", None)
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
    stop(r); r._log.close(); stop(p); p._log.close()
    return out


def summary(res):
    """Medians over the repetitions, and the ratios the issue asks for."""
    reps = res["reps"]
    med = statistics.median

    def m(kind, key):
        return med([r[kind][key] for r in reps])

    out = {"case": res["case"], "reps": len(reps), "cycles": res["args"]["cycles"],
           "loadavg_start": res["loadavg_start"], "loadavg_end": res.get("loadavg_end"),
           "raw_requests": res["raw_requests"],
           "rust_interval_s": {"100ms": 0.1, "1s": 1.0}.get(res["args"]["rust_interval"]),
           "raw_seq_wall": med([r["raw_seq_wall"] for r in reps])}
    if "raw_par4_wall" in reps[0]:
        out["raw_par4_wall"] = med([r["raw_par4_wall"] for r in reps])
    for kind in ("rust", "python"):
        for key in ("wall_per_cycle", "cpu_per_cycle", "fake_cpu_per_cycle", "requests_per_cycle", "vmhwm_kib"):
            out[f"{kind}_{key}"] = m(kind, key)
        out[f"{kind}_cpu_reps"] = [r[kind]["cpu_per_cycle"] for r in reps]
    out["cpu_ratio"] = out["python_cpu_per_cycle"] / out["rust_cpu_per_cycle"]
    out["rust_wall_over_raw_seq"] = out["rust_wall_per_cycle"] / out["raw_seq_wall"]
    if "raw_par4_wall" in out:
        out["rust_wall_over_raw_par4"] = out["rust_wall_per_cycle"] / out["raw_par4_wall"]
    s = res.get("scrape")
    if s:
        for kind in ("rust", "python"):
            out[f"{kind}_series"] = s[kind]["series"]
            out[f"{kind}_scrape_plain_ms"] = s[kind]["plain_median"] * 1e3
            out[f"{kind}_scrape_gzip_ms"] = s[kind]["gzip_median"] * 1e3
            out[f"{kind}_scrape_vmhwm_kib"] = s[kind]["vmhwm_kib"]
    errors = [l for r in reps for l in r["rust"].get("self_metrics", [])
              if ("poll_errors_total" in l and not l.rstrip().endswith(" 0")) or 'code="error"' in l]
    out["rust_errors"] = errors[:5]
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
    global PY, RUST, PREFIX, PEER_DIR, PEER, encode_cursor, workspace_name
    ap = argparse.ArgumentParser()
    ap.add_argument("w", type=int); ap.add_argument("u", type=int)
    ap.add_argument("--peer-dir", default=None, help="the peer's directory (exporter.py, fake_honcho.py)")
    ap.add_argument("--python", default=sys.executable, help="a Python with prometheus-client and httpx")
    ap.add_argument("--exporter", default=RUST)
    ap.add_argument("--exporter-prefix", default="",
                    help="command wrapping the exporter, e.g. 'perf record -g -o perf.data --' (profiling; "
                         "CPU figures are then the wrapper's)")
    ap.add_argument("--only", choices=("rust", "python"), default=None, help="measure one exporter only")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--cycles", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--scrapes", type=int, default=20)
    # Ours polls back to back when a cycle outlasts its interval. Its per-request budget
    # (poll.timeout) must stay below the interval: 95 ms is too short for the fake under load at
    # the larger cases (timeouts drop pages), so cases of >= 100 k units use 1 s / 900 ms.
    ap.add_argument("--rust-interval", default=None, help="default: 100ms, or 1s from 100 k units")
    ap.add_argument("--rust-timeout", default=None, help="default: 95ms, or 900ms from 100 k units")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    PY, RUST, PREFIX = a.python, a.exporter, a.exporter_prefix.split()
    large = a.w * a.u >= 100_000
    a.rust_interval = a.rust_interval or ("1s" if large else "100ms")
    a.rust_timeout = a.rust_timeout or ("900ms" if large else "95ms")
    PEER_DIR = find_peer_dir(a.peer_dir)
    PEER = os.path.join(PEER_DIR, "exporter.py")
    sys.path.insert(0, PEER_DIR)
    import fake_honcho  # stdlib-only module of the peer
    encode_cursor, workspace_name = fake_honcho.encode_cursor, fake_honcho.workspace_name
    outdir = a.out or os.path.join("target", "bench", "pair", f"{a.w}x{a.u}")
    os.makedirs(outdir, exist_ok=True)
    res = {"case": f"{a.w}x{a.u}", "args": vars(a), "loadavg_start": open("/proc/loadavg").read().strip()}
    t0 = time.monotonic()
    fake = Fake(a.w, a.u, outdir)
    res["fake_banner"] = fake.banner
    try:
        seq = f"{outdir}/raw_seq.curl"
        res["raw_requests"] = raw_fetch_config(fake, a.w, a.u, seq)
        par = []
        if a.w >= 4:
            for k in range(4):
                path = f"{outdir}/raw_par{k}.curl"
                raw_fetch_config(fake, a.w, a.u, path, workspaces=range(k, a.w, 4))
                par.append(path)
        raw_fetch(fake, [seq])  # warm the fake once
        res["reps"] = []
        for rep in range(a.reps):
            order = ("rust", "python") if rep % 2 == 0 else ("python", "rust")
            if a.only:
                order = (a.only,)
            r = {"order": order, "loadavg": open("/proc/loadavg").read().strip()}
            r["raw_seq_wall"], r["raw_seq_fake_cpu"] = raw_fetch(fake, [seq])
            if par:
                r["raw_par4_wall"], r["raw_par4_fake_cpu"] = raw_fetch(fake, par)
            for kind in order:
                r[kind] = measure_loop(kind, fake, outdir, f"loop_{kind}_{rep}", a.warmup, a.cycles,
                                       a.rust_interval, a.rust_timeout)
                print(f"rep {rep} {kind}: wall {r[kind]['wall_per_cycle']:.4f}s cpu {r[kind]['cpu_per_cycle']:.4f}s "
                      f"fake {r[kind]['fake_cpu_per_cycle']:.4f}s req {r[kind]['requests_per_cycle']:.1f} "
                      f"hwm {r[kind]['vmhwm_kib']/1024:.1f}MiB", flush=True)
            print(f"rep {rep} raw seq {r['raw_seq_wall']:.4f}s par4 {r.get('raw_par4_wall')}", flush=True)
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
