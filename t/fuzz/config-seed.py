#!/usr/bin/env python3
"""config-seed.py: writes inputs for the config fuzz target from readable
declarations, encoded the way decode() in t/fuzz/config.c reads them.
Usage: t/fuzz/config-seed.py  (rewrites t/fuzz/corpus/config/*)
To add a regression case, add a declaration here (or keep the crashing
input itself) in t/fuzz/regress/config/."""
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
src = open(os.path.join(HERE, "config.c")).read()
block = src[src.index("words[] = {"):src.index("};", src.index("words[] = {"))]
WORDS = re.findall(r'"((?:[^"\\]|\\.)*)"', block)
KINDS = {"pool": 0, "settings": 3, "plugin": 4, "pool-only": 5}


def s(v):
    """a string: a word of the list, or raw bytes"""
    if v in WORDS:
        return bytes([WORDS.index(v)])
    b = v.encode()
    return bytes([200, len(b)]) + b


def val(v):
    if isinstance(v, bool):
        return bytes([0, int(v)])
    if isinstance(v, int) and -16 <= v < 240:
        return bytes([1, 0, v + 16])
    if isinstance(v, float):
        import struct
        return bytes([1, 3]) + struct.pack(">d", v)
    if v is len:		# stands for a function
        return bytes([2, 0])
    if isinstance(v, (dict, list)):
        return bytes([3]) + table(v)
    return bytes([5]) + s(v)


def table(t):
    items = list(enumerate(t, 1)) if isinstance(t, list) else list(t.items())
    assert len(items) < 32
    out = bytes([len(items)])
    for i, (k, v) in enumerate(items):
        if isinstance(k, int):
            assert k == i + 1, "list items come first, in order"
            out += bytes([4])
        else:
            out += bytes([0]) + s(k)
        out += val(v)
    return out


def decl(kind, name=None, options=None):
    out = bytes([KINDS[kind], 1]) + s(name if name is not None else "web")
    return out + bytes([1]) + table(options or {})


SEEDS = {
    "minimal": [decl("pool", "web", {"command": "/bin/true"})],
    "argv-list": [decl("pool", "web", {"command": ["/bin/sleep", "10"], "workers": 4})],
    "everything": [decl("pool", "web", {
        "command": "/bin/true", "workers": 2, "restart": "on-failure", "stop_signal": "SIGKILL",
        "stop_timeout": "1m30s", "ready": "notify", "watchdog": "250ms", "ready_timeout": 30,
        "directory": "/tmp", "output": "journal", "env": {"PATH": "/bin", "HOME": False},
        "env_inherit": ["PATH"], "backoff": {"initial": "250ms", "max": "1m30s", "reset": 10},
        "crash_limit": {"failures": 5, "interval": "1m30s"}})],
    "limits": [decl("pool", "web", {"command": "/bin/true", "limits": {
        "memory_max": "512M", "memory_high": "1.5G", "cpu_max": "150%", "pids_max": "max",
        "cpu_weight": 100, "io_weight": 100, "cgroup": {"memory.low": "64KiB"}},
        "worker_limits": {"memory_max": "infinity", "cpu_max": "1000 100000"}})],
    "listen": [decl("pool", "web", {"command": "/bin/true", "listen": {
        "http": "tcp::8080", "v6": "tcp:[::1]:80", "sock": "unix:/run/x.sock", "sd": "systemd"}})],
    "hooks": [decl("pool", "web", {"start": len, "prefork": len, "setup": len, "ready": "lua"})],
    "user": [decl("pool", "web", {"command": "/bin/true", "user": "nobody", "group": "daemon"})],
    "settings": [decl("settings", None, {"log_level": "debug", "cgroup": "/sys/fs/cgroup/x",
                                         "control": "/tmp", "limits_required": True}),
                 decl("pool", "web", {"command": "/bin/true"})],
    "plugin": [decl("plugin", "pool-stats", {"interval": "1m30s"}),
               decl("pool", "web", {"command": "/bin/true"})],
    "two-pools": [decl("pool", "web", {"command": "/bin/true"}), decl("pool", "db", {"command": "/bin/true"})],
    "duplicate": [decl("pool", "web", {"command": "/bin/true"}), decl("pool", "web", {"command": "/bin/true"})],
    "no-options": [decl("pool-only", "web")],
    "typo": [decl("pool", "web", {"command": "/bin/true", "worker": 3})],
}

if __name__ == "__main__":
    d = os.path.join(HERE, "corpus", "config")
    os.makedirs(d, exist_ok=True)
    for name, decls in SEEDS.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(b"".join(decls))
