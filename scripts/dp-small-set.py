#!/usr/bin/env python3
"""The second small set for scripts/dp-accuracy.py: 2,000 training rows x 10
standard-normal features (4 files of 500) and 1,000 held-out rows, labels
from the bench generator's known_beta(10) logistic model; written to
/tmp/fcmeas/small-set."""
import os
os.makedirs('/tmp/fcmeas/small-set', exist_ok=True)
os.chdir('/tmp/fcmeas/small-set')
# second small set: 2,000 training rows x 10 standard-normal features (4 files of 500)
# + 1,000 held-out rows; labels from the generator's known_beta(10) logistic model.
import random, math, csv
random.seed(20261129)
d = 10
beta = [-1.0] + [(1 if j % 2 == 0 else -1) * 1.5 / (1 + j / 2) for j in range(d)]
def rows(n):
    out = []
    for _ in range(n):
        x = [random.gauss(0, 1) for _ in range(d)]
        z = beta[0] + sum(a * b for a, b in zip(x, beta[1:]))
        y = 'bad' if random.random() < 1 / (1 + math.exp(-z)) else 'good'
        out.append([f'{v:.6f}' for v in x] + [y])
    return out
hdr = [f'x{j+1}' for j in range(d)] + ['default']
for i in range(4):
    with open(f'syn_train{i+1}.csv', 'w', newline='') as f:
        w = csv.writer(f); w.writerow(hdr); w.writerows(rows(500))
with open('syn_test.csv', 'w', newline='') as f:
    w = csv.writer(f); w.writerow(hdr); w.writerows(rows(1000))
