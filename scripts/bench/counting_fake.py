#!/usr/bin/env python3
"""The hand-written peer's fake Honcho (`fake_honcho.py` from the peer directory), unchanged,
plus what bench_pair.py needs to time poll cycles without polling the exporters:

- one stdout line `LIST <requests so far>` per `POST /v3/workspaces/list` (the first request of
  every poll cycle of both exporters): the back-to-back cycles of the peer are timed between them;
- a measurement window over the Honcho routes, for one full cycle of ours (or a raw fetch):
  `POST /_bench/arm[?pid=PID]` opens a new window; its first request stamps the time
  (time.monotonic(), CLOCK_MONOTONIC: the same clock as the harness's) and PID's utime + stime
  (/proc/PID/stat, read before that request is served) and, to the nanosecond, the CPU time of
  each of its threads (/proc/PID/task/TID/schedstat); every response stamps the time it was
  written. `GET /_bench/window` returns the window as JSON: requests, responses, first_t,
  last_t, pid_cpu_first, pid_threads_ns_first ({TID: ns}), fake_cpu_first and fake_cpu_last
  (this process's CPU, at the first request and the last response). Neither route is counted.

usage: counting_fake.py PEER_DIR [fake_honcho.py arguments...]
"""
import json
import os
import sys
import threading
import time
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, os.path.abspath(sys.argv.pop(1)))
import fake_honcho as fh  # noqa: E402  (stdlib only)

TCK = os.sysconf("SC_CLK_TCK")
_lock = threading.Lock()
_count = [0]
_window = {}
_orig_get, _orig_post = fh.Handler.do_GET, fh.Handler.do_POST


def _cpu_s(pid):
    """utime + stime of PID in seconds, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return (int(fields[11]) + int(fields[12])) / TCK


def threads_ns(pid):
    """{TID: CPU ns} of PID's live threads (/proc/PID/task/TID/schedstat), or None."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except (FileNotFoundError, ProcessLookupError):
        return None
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                out[tid] = int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass  # exited meanwhile
    return out


def _arm(pid):
    with _lock:
        _window.clear()
        _window.update(pid=pid, requests=0, responses=0, first_t=None, last_t=None,
                       pid_cpu_first=None, pid_threads_ns_first=None, fake_cpu_first=None,
                       fake_cpu_last=None)


def _request():
    """Counts a Honcho request; returns the running total."""
    with _lock:
        _count[0] += 1
        if _window:
            _window["requests"] += 1
            if _window["first_t"] is None:
                _window["first_t"] = time.monotonic()
                _window["fake_cpu_first"] = time.process_time()
                if _window["pid"]:
                    _window["pid_cpu_first"] = _cpu_s(_window["pid"])
                    _window["pid_threads_ns_first"] = threads_ns(_window["pid"])
        return _count[0]


def _responded():
    with _lock:
        if _window:
            _window["responses"] += 1
            _window["last_t"] = time.monotonic()
            _window["fake_cpu_last"] = time.process_time()


def _control(self):
    """The /_bench/ routes; True when the request was one of them."""
    url = urlsplit(self.path)
    if not url.path.startswith("/_bench/"):
        return False
    if self.command == "POST" and url.path == "/_bench/arm":
        self._read_body()
        pid = parse_qs(url.query).get("pid", [""])[0]
        _arm(int(pid) if pid else None)
        self._json(200, {"armed": pid or None})
    elif self.command == "GET" and url.path == "/_bench/window":
        with _lock:
            body = json.dumps(_window)
        self._send(200, body.encode())
    else:
        self._detail(404, "Not Found")
    return True


def do_GET(self):
    if _control(self):
        return
    _request()
    _orig_get(self)
    _responded()


def do_POST(self):
    if _control(self):
        return
    n = _request()
    if self.path.startswith("/v3/workspaces/list"):
        sys.stdout.write(f"LIST {n}\n")
        sys.stdout.flush()
    _orig_post(self)
    _responded()


fh.Handler.do_GET, fh.Handler.do_POST = do_GET, do_POST
sys.exit(fh.main())
