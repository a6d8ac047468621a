#!/usr/bin/env python3
"""Prints an FNV-1a 64 checksum of a preset as the reference generator
(bench/workload/gen.py) makes it, so the Rust generator can prove it is
bit-identical without the data set in the repo.

    python3 bench/gen_checksum.py --preset tiny > bench/expected/tiny/generator.fnv

Per row, time-major: time, then the bits of temperature, pressure, vibration,
power_kw, voltage (IEEE 754), then rpm, status, and the device's model index,
each as 8 little-endian bytes.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "workload"))
import gen  # noqa: E402

FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
MASK = (1 << 64) - 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", required=True, choices=gen.PRESETS)
    a = ap.parse_args()
    devices, steps = gen.PRESETS[a.preset]
    model = (gen.splitmix64(np.arange(devices, dtype=np.uint64) ^ np.uint64(0xABCDEF)) % np.uint64(6)).astype(np.int64)
    h = FNV_OFFSET
    for k0 in range(0, steps, 360):
        b = gen.block(devices, k0, min(steps, k0 + 360), 10)
        cols = [b["time"].astype("<i8")]
        cols += [b[f].astype("<f8").view("<i8") for f in ["temperature", "pressure", "vibration", "power_kw", "voltage"]]
        cols += [b["rpm"].astype("<i8"), b["status"].astype("<i8"), model[b["d"]].astype("<i8")]
        rows = np.stack(cols, axis=1).astype("<i8").tobytes()
        for byte in rows:
            h = ((h ^ byte) * FNV_PRIME) & MASK
    print(f"{h:016x}")


if __name__ == "__main__":
    main()
