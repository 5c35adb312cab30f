"""keep_freed_memory: large tensors stop coming from mmap, children inherit it, a user's choice wins."""

import subprocess
import sys

import pytest

from semibench import allocator
from semibench.allocator import SETTINGS, keep_freed_memory, user_chose_allocator

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")

# Counts glibc's live mmapped blocks (mallinfo2().hblks) while a 256 MiB tensor is held.
PROBE = """
import ctypes, sys, torch
from semibench.allocator import keep_freed_memory
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6"); libc.mallinfo2.restype = Info
applied = keep_freed_memory() if sys.argv[1] == "keep" else False
before = libc.mallinfo2().hblks
x = torch.empty(64 << 20, dtype=torch.float32)
print(applied, libc.mallinfo2().hblks - before)
"""


def probe(mode: str, env: dict) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], env=env, capture_output=True, text=True, check=True).stdout.split()
    return out[0], int(out[1])


def test_a_large_tensor_comes_from_the_heap_once_applied():
    env = {"PATH": "/usr/bin:/bin"}
    assert probe("default", env) == ("False", 1)  # glibc's default: mmapped, unmapped again on free
    assert probe("keep", env) == ("True", 0)


def test_children_inherit_it_and_a_users_allocator_is_left_alone(monkeypatch):
    # This process's allocator stays glibc's default: mallopt is recorded, not called (the real call
    # is the subprocess test above).
    calls = []
    monkeypatch.setattr(allocator, "_glibc", lambda: type("Libc", (), {"mallopt": staticmethod(lambda p, v: calls.append((p, v)) or 1)})())
    environ: dict[str, str] = {}
    assert keep_freed_memory(environ) is True
    assert calls == [(-4, 0), (-1, -1)]  # M_MMAP_MAX = 0, M_TRIM_THRESHOLD = SIZE_MAX
    assert environ == SETTINGS
    assert probe("default", {"PATH": "/usr/bin:/bin", **environ}) == ("False", 0)  # read by the child's glibc at start
    for chosen in ({"LD_PRELOAD": "/usr/lib/libjemalloc.so.2"}, {"MALLOC_ARENA_MAX": "2"}, {"GLIBC_TUNABLES": "glibc.malloc.mmap_max=1"}):
        assert user_chose_allocator(chosen)
        assert keep_freed_memory(dict(chosen)) is False
