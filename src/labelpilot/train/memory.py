"""Keeping a training process's memory where its work needs it.

A training step on CPU allocates and frees gigabytes of activations. With glibc's malloc
the freed blocks stay in the process: the allocator raises its mmap threshold after the
first large free, so later activations come from the heap, and with input widths that
change from batch to batch the heap fragments and is never given back. Measured on the
OCR recognizer (32 lines, widths 320-800 px): 10.8 GB resident after 30 steps without
trimming, 0.8 GB with `malloc_trim` after each step, at the same step time
(benchmarks/ocr_finetune.py reports the peak of every run).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import resource
import sys


@functools.cache
def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c")
    try:
        lib = ctypes.CDLL(name or "libc.so.6")
        lib.malloc_trim  # noqa: B018 - musl has no malloc_trim; fall back to nothing
    except (OSError, AttributeError):
        return None
    return lib


def release_freed_memory() -> bool:
    """Give the memory freed since the last call back to the operating system (glibc's
    `malloc_trim`). False where the C library cannot (not glibc): nothing to do there."""
    lib = _libc()
    if lib is None:
        return False
    lib.malloc_trim(0)
    return True


def resident_mb() -> float:
    """This process's resident memory now, in MiB (0 where /proc is not there)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0.0
    return pages * resource.getpagesize() / 2**20


def reset_peak() -> bool:
    """Start measuring the peak resident memory afresh (Linux: writing 5 to
    /proc/self/clear_refs resets VmHWM). False where it cannot be reset."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
    except OSError:
        return False
    return True


def peak_resident_mb() -> float:
    """The most resident memory this process has had since `reset_peak()` (or since it
    started), in MiB."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024
