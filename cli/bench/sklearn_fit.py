#!/usr/bin/env python3
"""Reference fit for `fedcredit bench-credit`.

Loads the pooled, already standardized rows (X.npy, n x d float64) and
labels (y.npy, n float64 0/1), fits scikit-learn's
LogisticRegression(C = 1/l2) -- the same objective as fedcredit's federated
Newton fit, sum(logloss) + (l2/2)*||w||^2 with an unpenalized intercept --
and prints one JSON object on stdout:

    {"solver": ..., "fit_seconds": ..., "fit_cpu_seconds": ..., "n_iter": ...,
     "intercept": ..., "coef": [...], "sklearn": ..., "numpy": ...}

Only the .fit call is timed (wall clock, and CPU time of all threads, since
numpy's BLAS may use several). Usage:

    python3 sklearn_fit.py X.npy y.npy L2 TOL
"""

import json
import sys
import time


def main() -> int:
    if len(sys.argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    x_path, y_path, l2, tol = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])

    import numpy as np
    import sklearn
    from sklearn.linear_model import LogisticRegression

    x = np.load(x_path)
    y = np.load(y_path)
    if x.ndim != 2 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        print(f"bad shapes: X {x.shape}, y {y.shape}", file=sys.stderr)
        return 2

    # newton-cholesky appeared in scikit-learn 1.2; fall back to lbfgs.
    solver = "newton-cholesky"
    try:
        model = LogisticRegression(C=1.0 / l2, tol=tol, solver=solver, max_iter=1000)
        model._validate_params()
    except Exception:
        solver = "lbfgs"
        model = LogisticRegression(C=1.0 / l2, tol=tol, solver=solver, max_iter=1000)

    start, cpu_start = time.perf_counter(), time.process_time()
    model.fit(x, y)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start

    print(
        json.dumps(
            {
                "solver": solver,
                "fit_seconds": seconds,
                "fit_cpu_seconds": cpu_seconds,
                "n_iter": int(np.max(model.n_iter_)),
                "intercept": float(model.intercept_[0]),
                "coef": [float(c) for c in model.coef_[0]],
                "sklearn": sklearn.__version__,
                "numpy": np.__version__,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
