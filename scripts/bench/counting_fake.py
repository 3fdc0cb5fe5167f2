#!/usr/bin/env python3
"""The hand-written peer's fake Honcho (`fake_honcho.py` from the peer directory), unchanged,
plus a request counter and one stdout line `LIST <requests so far>` per
`POST /v3/workspaces/list` (the first request of every poll cycle of both exporters), so that
bench_pair.py can mark cycle boundaries without polling the server.

usage: counting_fake.py PEER_DIR [fake_honcho.py arguments...]
"""
import os
import sys
import threading

sys.path.insert(0, os.path.abspath(sys.argv.pop(1)))
import fake_honcho as fh  # noqa: E402  (stdlib only)

_lock = threading.Lock()
_count = [0]
_orig_get, _orig_post = fh.Handler.do_GET, fh.Handler.do_POST


def do_GET(self):
    with _lock:
        _count[0] += 1
    return _orig_get(self)


def do_POST(self):
    with _lock:
        _count[0] += 1
        n = _count[0]
    if self.path.startswith("/v3/workspaces/list"):
        sys.stdout.write(f"LIST {n}\n")
        sys.stdout.flush()
    return _orig_post(self)


fh.Handler.do_GET, fh.Handler.do_POST = do_GET, do_POST
sys.exit(fh.main())
