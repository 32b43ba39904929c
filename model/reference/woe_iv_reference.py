#!/usr/bin/env python3
"""Reference WOE/IV for the fedcredit-model scorecard test.

Given bins (numeric edges or category groups) per feature, computes each
bin's good/bad counts, WOE and IV of every feature of
data/german_credit.csv straight from the pooled rows, with numpy, so that
model/tests/it/woe_iv_reference.rs can check that fedcredit's values, which
come only from summed per-party histograms, agree to 1e-9.

Conventions (must match model/src/scorecard/woe.rs):
  * bad = label `bad` in `creditability`, good = every other row;
  * WOE_k = ln((g_k / G) / (b_k / B)), IV = sum_k (g_k/G - b_k/B) * WOE_k;
  * if any bin of a feature has no good or no bad rows, 0.5 is added to
    every cell of that feature before the shares are taken;
  * a numeric bin [low, high) holds low <= v < high (null = unbounded):
    np.searchsorted(interior_edges, v, side="right");
  * cells are trimmed of surrounding whitespace, as fedcredit reads them.

Input: a JSON file whose "features" list holds {"name", "bins"} with each
bin {"edges": [low, high]} or {"categories": [...]}; the output (stdout)
is the same with "good", "bad", "woe" per bin and "iv" per feature added.
The committed reference regenerates from itself (from the workspace root):

    python3 model/reference/woe_iv_reference.py \
        model/reference/german_credit_woe_iv.json > /tmp/ref.json \
      && mv /tmp/ref.json model/reference/german_credit_woe_iv.json

(its bins come from fedcredit's binning; to take them afresh, run the Rust
test with FEDCREDIT_WRITE_WOE_BINS=FILE and give FILE to this script.)
"""

import csv
import json
import sys

import numpy as np

DATA = "data/german_credit.csv"
LABEL = "creditability"
SMOOTHING = 0.5


def woe_iv(good, bad):
    good = np.asarray(good, dtype=np.float64)
    bad = np.asarray(bad, dtype=np.float64)
    eps = SMOOTHING if (np.any(good == 0) or np.any(bad == 0)) else 0.0
    p = (good + eps) / np.sum(good + eps)
    q = (bad + eps) / np.sum(bad + eps)
    woe = np.log(p / q)
    return woe, float(np.sum((p - q) * woe))


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    with open(DATA, newline="") as f:
        rows = list(csv.DictReader(f))
    is_bad = np.array([r[LABEL].strip() == "bad" for r in rows])
    features = []
    for feat in spec["features"]:
        name, bins = feat["name"], feat["bins"]
        cells = [r[name].strip() for r in rows]
        if "edges" in bins[0]:
            values = np.array([float(c) for c in cells])
            interior = np.array([b["edges"][1] for b in bins[:-1]], dtype=np.float64)
            index = np.searchsorted(interior, values, side="right")
        else:
            where = {c: k for k, b in enumerate(bins) for c in b["categories"]}
            index = np.array([where[c] for c in cells])
        good = np.bincount(index[~is_bad], minlength=len(bins)).astype(np.float64)
        bad = np.bincount(index[is_bad], minlength=len(bins)).astype(np.float64)
        woe, iv = woe_iv(good, bad)
        out = []
        for k, b in enumerate(bins):
            kept = {key: b[key] for key in ("edges", "categories") if key in b}
            kept.update(good=float(good[k]), bad=float(bad[k]), woe=float(woe[k]))
            out.append(kept)
        features.append({"name": name, "bins": out, "iv": iv})
    json.dump(
        {"data": DATA, "numpy": np.__version__, "features": features},
        sys.stdout,
        indent=1,
    )
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
