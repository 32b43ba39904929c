#!/usr/bin/env python3
"""Central pipeline for `fedcredit bench-credit --from DIR`.

What a central team would run if the banks pooled their files: read every
party's file with pandas (`read_csv`, C engine; `read_parquet`, pyarrow),
concatenate them (the pooling), standardize each feature with the pooled
mean and population std (as fedcredit does), and fit scikit-learn's
LogisticRegression(C = 1/l2) -- the same objective and solver as
`sklearn_fit.py`. Every column but LABEL is a feature; LABEL is 1 or 0.
Prints one JSON object on stdout:

    {"read_seconds": ..., "pool_seconds": ..., "standardize_seconds": ...,
     "fit_seconds": ..., "seconds": ..., "cpu_seconds": ..., "rows": ...,
     "solver": ..., "n_iter": ..., "intercept": ..., "coef": [...],
     "pandas": ..., "pyarrow": ..., "sklearn": ..., "numpy": ...}

`seconds` is wall time from the first read to the fitted model (imports
and interpreter start excluded), `cpu_seconds` the CPU time of all threads
over the same span. The caller limits BLAS to one thread (as for
`sklearn_fit.py`); pyarrow keeps a thread per core for reading, its default
when OMP_NUM_THREADS is unset. Usage:

    python3 pandas_pipeline.py L2 TOL LABEL FILE...
"""

import json
import os
import sys
import time


def main() -> int:
    if len(sys.argv) < 5:
        print(__doc__, file=sys.stderr)
        return 2
    l2, tol, label, paths = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4:]

    import numpy as np
    import pandas as pd
    import sklearn
    from sklearn.linear_model import LogisticRegression

    pyarrow_version = None
    if any(p.endswith((".parquet", ".pq")) for p in paths):
        import pyarrow

        # OMP_NUM_THREADS=1 (set for BLAS) also shrinks Arrow's pool; give
        # the reader its default, a thread per core.
        pyarrow.set_cpu_count(os.cpu_count() or 1)
        pyarrow_version = pyarrow.__version__

    # newton-cholesky appeared in scikit-learn 1.2; fall back to lbfgs.
    solver = "newton-cholesky"
    try:
        model = LogisticRegression(C=1.0 / l2, tol=tol, solver=solver, max_iter=1000)
        model._validate_params()
    except Exception:
        solver = "lbfgs"
        model = LogisticRegression(C=1.0 / l2, tol=tol, solver=solver, max_iter=1000)

    start, cpu_start = time.perf_counter(), time.process_time()
    frames = []
    for path in paths:
        if path.endswith((".parquet", ".pq")):
            frames.append(pd.read_parquet(path, engine="pyarrow"))
        else:
            frames.append(pd.read_csv(path, engine="c"))
        if label not in frames[-1].columns:
            print(f"{path}: no column {label!r}", file=sys.stderr)
            return 2
    t_read = time.perf_counter()
    pooled = pd.concat(frames, ignore_index=True)
    del frames
    y = (pooled[label].to_numpy() == 1).astype(np.float64)
    x = pooled.drop(columns=[label]).to_numpy(dtype=np.float64)
    del pooled
    # pandas' copy-on-write may hand out a read-only view; copy only then.
    x = np.require(x, requirements=["W"])
    t_pool = time.perf_counter()
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    std[std == 0.0] = 1.0
    x -= mean
    x /= std
    t_std = time.perf_counter()
    model.fit(x, y)
    end, cpu_end = time.perf_counter(), time.process_time()

    print(
        json.dumps(
            {
                "read_seconds": t_read - start,
                "pool_seconds": t_pool - t_read,
                "standardize_seconds": t_std - t_pool,
                "fit_seconds": end - t_std,
                "seconds": end - start,
                "cpu_seconds": cpu_end - cpu_start,
                "rows": int(x.shape[0]),
                "solver": solver,
                "n_iter": int(np.max(model.n_iter_)),
                "intercept": float(model.intercept_[0]),
                "coef": [float(c) for c in model.coef_[0]],
                "pandas": pd.__version__,
                "pyarrow": pyarrow_version,
                "sklearn": sklearn.__version__,
                "numpy": np.__version__,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
