"""Runs a program under `faketime` after lifting libfaketime's shared lock out of reach of SIGKILL.

libfaketime (0.9.10, Debian's and PyPI's) keeps the faked start time in shared memory guarded by a
named semaphore that the `faketime` wrapper creates with the value 1. Every process of the tree
takes it in its start-up (and in each stat()). A process killed with SIGKILL while holding it never
gives it back, and every later process of the tree then blocks in its start-up forever: the
supervisor tests kill children right after spawning them, and a CI run under the faked clock hung
so (four tests waiting on children that never started). Posting the semaphore many times first
makes it a counter that leaks cannot drain; the only thing it guarded, the first write of the shared
start time, was done in this process's own start-up (the first of the tree) before any child.

Usage (as scripts/faketime-tests runs it): faketime -f '@AT' python3 faketime-exec.py PROGRAM ARGS
"""

import ctypes
import os
import sys

POSTS = 100_000


def lift(name: str) -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.sem_open.restype = ctypes.c_void_p
    libc.sem_open.argtypes = [ctypes.c_char_p, ctypes.c_int]
    libc.sem_post.argtypes = [ctypes.c_void_p]
    libc.sem_close.argtypes = [ctypes.c_void_p]
    sem = libc.sem_open(name.encode(), 0)
    if sem is None or sem == ctypes.c_void_p(-1).value:
        sys.exit(f"faketime-exec: cannot open libfaketime's semaphore {name}: {os.strerror(ctypes.get_errno())}")
    for _ in range(POSTS):
        if libc.sem_post(sem) != 0:
            sys.exit(f"faketime-exec: sem_post on {name}: {os.strerror(ctypes.get_errno())}")
    libc.sem_close(sem)


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: faketime -f '@AT' python3 faketime-exec.py PROGRAM [ARGS...]")
    if "faketime" not in os.environ.get("LD_PRELOAD", ""):
        sys.exit("faketime-exec: libfaketime is not preloaded (run it under the faketime wrapper)")
    # A libfaketime built without the shared state (FAKE_STATELESS, or FAKETIME_DISABLE_SHM in
    # later versions) names no semaphore: there is nothing to lift.
    shared = os.environ.get("FAKETIME_SHARED")
    if shared:
        lift(shared.split()[0])
    os.execv(sys.argv[1], sys.argv[1:])


if __name__ == "__main__":
    main()
