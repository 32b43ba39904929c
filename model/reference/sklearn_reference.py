#!/usr/bin/env python3
"""Reference fit for the fedcredit-model exactness test.

Reads data/german_credit.csv, encodes it exactly as the Rust schema does,
and fits scikit-learn's LogisticRegression(C = 1/l2) on the pooled,
globally standardized rows, which is the objective in DESIGN.md:

    sum_i logloss_i + (l2/2) * ||w||^2,   intercept unpenalized.

Encoding (must match model/tests/it/sklearn_reference.rs):
  * columns in CSV order, the label column `creditability` excluded;
  * the 7 numeric columns are kept as they are;
  * each of the 13 categorical columns is one-hot encoded against
    categories = sorted unique values (Python str order = Unicode code point
    order = Rust `String` order), the FIRST sorted value is the reference
    level and is dropped; encoded names are "column=value";
  * label = 1.0 if creditability == "bad" else 0.0;
  * every encoded column is standardized with the global mean and the
    population standard deviation (ddof = 0).

Usage (from the workspace root):
    python3 model/reference/sklearn_reference.py [--l2 1.0] \
        > model/reference/german_credit_l2_1.json
"""

import argparse
import csv
import json
import sys

import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression

NUMERIC = {
    "duration_in_month",
    "credit_amount",
    "installment_rate_in_percentage_of_disposable_income",
    "present_residence_since",
    "age_in_years",
    "number_of_existing_credits_at_this_bank",
    "number_of_people_being_liable_to_provide_maintenance_for",
}
LABEL = "creditability"
POSITIVE = "bad"


def g17(x: float) -> str:
    return format(float(x), ".17g")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--csv", default="data/german_credit.csv")
    ap.add_argument("--l2", type=float, default=1.0)
    args = ap.parse_args()

    with open(args.csv, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    label_idx = header.index(LABEL)
    features = [c for c in header if c != LABEL]
    assert len(features) == 20
    assert NUMERIC <= set(features)

    columns, names, schema = [], [], []
    for name in features:
        j = header.index(name)
        values = [r[j] for r in body]
        if name in NUMERIC:
            columns.append(np.array([float(v) for v in values]))
            names.append(name)
            schema.append({"kind": "numeric", "name": name})
        else:
            cats = sorted(set(values))
            schema.append({"kind": "categorical", "name": name, "categories": cats})
            for c in cats[1:]:  # first sorted value is the dropped reference
                columns.append(np.array([1.0 if v == c else 0.0 for v in values]))
                names.append(f"{name}={c}")
    x = np.column_stack(columns)
    y = np.array([1.0 if r[label_idx] == POSITIVE else 0.0 for r in body])

    mean = x.mean(axis=0)
    std = x.std(axis=0, ddof=0)
    assert np.all(std > 0)
    z = (x - mean) / std

    clf = LogisticRegression(C=1.0 / args.l2, solver="newton-cg", tol=1e-12, max_iter=10000)
    clf.fit(z, y)
    b = float(clf.intercept_[0])
    w = clf.coef_[0]

    # Check the optimum independently: gradient of the objective at the fit.
    eta = b + z @ w
    p = 1.0 / (1.0 + np.exp(-eta))
    grad_w = z.T @ (p - y) + args.l2 * w
    grad_b = float(np.sum(p - y))
    grad_max = max(abs(grad_b), float(np.max(np.abs(grad_w))))
    logloss = float(np.sum(np.logaddexp(0.0, eta) - y * eta))
    objective = logloss + 0.5 * args.l2 * float(w @ w)
    print(f"gradient max-norm at the sklearn optimum: {grad_max:.3e}", file=sys.stderr)

    out = [
        "{",
        f'  "sklearn_version": {json.dumps(sklearn.__version__)},',
        f'  "numpy_version": {json.dumps(np.__version__)},',
        '  "solver": "newton-cg",',
        '  "tol": 1e-12,',
        f'  "l2": {g17(args.l2)},',
        f'  "C": {g17(1.0 / args.l2)},',
        f'  "n_rows": {len(y)},',
        f'  "n_positive": {int(y.sum())},',
        f'  "label": {json.dumps(LABEL)},',
        f'  "positive": {json.dumps(POSITIVE)},',
        f'  "gradient_max_norm": {g17(grad_max)},',
        f'  "objective": {g17(objective)},',
        f'  "intercept": {g17(b)},',
        '  "features": ' + json.dumps(schema) + ",",
        '  "coefficients": [',
    ]
    for i, (n, c, m, s) in enumerate(zip(names, w, mean, std)):
        comma = "," if i + 1 < len(names) else ""
        out.append(
            f'    {{"name": {json.dumps(n)}, "coef": {g17(c)}, '
            f'"mean": {g17(m)}, "std": {g17(s)}}}{comma}'
        )
    out += ["  ]", "}"]
    sys.stdout.write("\n".join(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
