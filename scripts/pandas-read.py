#!/usr/bin/env python3
"""The pandas yardstick for `fedcredit bench-read`: read the same files
with pandas' C CSV reader (or pyarrow's Parquet reader for .parquet files)
into one float64 matrix per file, and print the time and the rows.

    target/py/bin/python scripts/pandas-read.py /tmp/synth/party-*.csv

Time the whole process from outside (e.g. `/usr/bin/time -v`) to compare
with `fedcredit bench-read --data ...` on the same files.
"""
import sys
import time

import numpy as np
import pandas as pd


def main(paths):
    start = time.perf_counter()
    rows = 0
    for path in paths:
        if path.endswith(".parquet"):
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, engine="c")
        x = frame.drop(columns=["default"]).to_numpy(dtype=np.float64)
        rows += x.shape[0]
    elapsed = time.perf_counter() - start
    print(f"pandas read {len(paths)} files, {rows} rows in {elapsed:.3f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
