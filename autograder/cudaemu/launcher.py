"""ctypes front end of the CUDA emulator runtime (``runtime.cpp``): memory and launches.

STDLIB ONLY and self-contained: the parity tests import it (tests/cudaemu), and the grading
driver (``sandbox_driver.py``) sends its source text into the sandbox, where a student's kernel
is compiled and launched; the ``autograder`` package is not importable there.
"""
from __future__ import annotations

import ctypes
from typing import Any, Sequence

#: ctypes type of each scalar argument code (the prepared-call codes dlkit's cuda backend uses).
SCALAR_CTYPES = {"q": ctypes.c_longlong, "i": ctypes.c_int, "f": ctypes.c_float,
                 "d": ctypes.c_double, "B": ctypes.c_ubyte}

#: Launch result codes of ``dlkit_emu_launch``.
OK, UNKNOWN_KERNEL, BAD_LAUNCH, BARRIER_MISUSE, MEMORY_FAULT = 0, 1, 2, 3, 4


class Emulator:
    """A loaded emulator library: device memory with guard pages, and kernel launches."""

    def __init__(self, path: str) -> None:
        self.lib = lib = ctypes.CDLL(str(path))
        for name in ("dlkit_emu_alloc", "dlkit_emu_alloc_low"):
            fn = getattr(lib, name)
            fn.restype = ctypes.c_void_p
            fn.argtypes = [ctypes.c_size_t]
        lib.dlkit_emu_free.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        lib.dlkit_emu_has_kernel.argtypes = [ctypes.c_char_p]
        lib.dlkit_emu_launch.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_uint),
                                         ctypes.POINTER(ctypes.c_uint), ctypes.POINTER(ctypes.c_void_p),
                                         ctypes.c_char_p, ctypes.c_size_t,
                                         ctypes.POINTER(ctypes.c_void_p)]

    def alloc(self, nbytes: int, *, at_end: bool = True) -> int:
        """Address of ``nbytes`` of fresh memory that ends right at a guard page (``at_end``), or
        starts right after one (``at_end=False``)."""
        fn = self.lib.dlkit_emu_alloc if at_end else self.lib.dlkit_emu_alloc_low
        address = fn(nbytes)
        if not address:
            raise MemoryError(f"cuda emulator: cannot allocate {nbytes} bytes")
        return address

    def free(self, address: int, nbytes: int) -> None:
        self.lib.dlkit_emu_free(address, nbytes)

    def has_kernel(self, name: str) -> bool:
        return bool(self.lib.dlkit_emu_has_kernel(name.encode()))

    def launch_items(self, name: str, grid: Sequence[int], block: Sequence[int],
                     items: Sequence[tuple[str, Any]]) -> tuple[int, str, int]:
        """Run kernel ``name`` over the grid; ``items`` are ``(code, value)`` per argument: a
        scalar code of :data:`SCALAR_CTYPES`, ``"P"`` (an address) or ``"s"`` (a struct passed
        by value, as bytes).

        Returns (code, message, fault address); code 0 (:data:`OK`) means the launch ran to the end.
        """
        holders = []
        for code, value in items:
            if code == "s":
                if not isinstance(value, bytes):
                    raise TypeError(f"{name}: a struct argument must be bytes, got {type(value).__name__}")
                holders.append(ctypes.create_string_buffer(value, len(value)))
            elif code == "P":
                holders.append(ctypes.c_void_p(int(value) or None))
            else:
                holders.append(SCALAR_CTYPES[code](value))
        argv = (ctypes.c_void_p * max(1, len(holders)))(
            *[ctypes.cast(ctypes.pointer(h), ctypes.c_void_p) for h in holders])
        g = (ctypes.c_uint * 3)(*grid)
        b = (ctypes.c_uint * 3)(*block)
        err = ctypes.create_string_buffer(1024)
        fault = ctypes.c_void_p()
        code = self.lib.dlkit_emu_launch(name.encode(), g, b, argv, err, len(err), ctypes.byref(fault))
        return code, err.value.decode("utf-8", "replace"), fault.value or 0
