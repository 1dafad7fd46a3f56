"""Process settings shared by every training or simulation process, whatever the task: the device, denormal
flushing and the allocator (a leaf module: it imports nothing from the library)."""

from __future__ import annotations

import ctypes
import sys

import torch


def fast_cpu_math() -> None:
    """CPU settings of a training or MD process: flush denormal floats to zero on this thread, and
    :func:`keep_freed_memory`.

    The tails of the Gaussian basis and their products in the double backward land
    in the denormal range, where x86 arithmetic is ~16x slower (measured: exp of
    arguments below -87 in float32). Flushing them changes values below 1e-38 only.
    """
    torch.set_flush_denormal(True)
    keep_freed_memory()


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc <malloc.h>


def keep_freed_memory(largest_heap_block: int = 32 << 20, keep: int = 1 << 30) -> bool:
    """Let glibc's malloc serve blocks up to ``largest_heap_block`` bytes (its maximum, 32 MiB) from the heap
    and keep up to ``keep`` bytes of freed memory there. True where it took effect (glibc only).

    By default glibc maps a large block anew (mmap) and unmaps it on free, adapting its threshold only
    partly, so a training step's (pairs x filters) temporaries (0.5-2 MB each) are page-faulted and zeroed
    by the kernel again every step: 6e5 page faults in one 12-epoch demo training, 10-15 % of its CPU time;
    with this, 8e4 (the allocator tuning that PyTorch's CPU guides do with jemalloc or tcmalloc). Values
    are unchanged; a process keeps its peak heap instead of returning it between steps.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, int(largest_heap_block))) and bool(
            libc.mallopt(_M_TRIM_THRESHOLD, int(keep)))
    except (OSError, AttributeError):  # not glibc (e.g. musl): its allocator as it is
        return False


def resolve_device(name: str, setting: str = "device") -> torch.device:
    """``auto`` -> the GPU when there is one, else the CPU; ``cuda`` without a GPU is refused naming ``setting``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"{setting} is 'cuda' but no CUDA device is available; use 'auto' or 'cpu'")
    return torch.device(name)
