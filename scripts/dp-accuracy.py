#!/usr/bin/env python3
"""Accuracy of private jobs: repeated runs per epsilon (the noise is drawn
from a CSPRNG, so every run differs), with the pooled (noisy) AUC/KS the job
publishes and the exact AUC/KS of the written model on the held-out rows
(`fedcredit score`). Prints one JSON line per run, then a markdown table.

  python3 scripts/dp-accuracy.py german 10 run1 0.5,1,2,4,8,inf
  python3 scripts/dp-accuracy.py syn 10 run1 0.5,1,2,4,8,inf   # after dp-small-set.py

`german` runs `fedcredit demo --epsilon E --delta 1e-6` (`--exact` for inf);
`syn` runs `fedcredit local` on the four files dp-small-set.py writes. The
binary is $FC, default target/release/fedcredit; runs go to /tmp/fcmeas.
"""
import sys, json, subprocess, os, csv, statistics, glob, time
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get('FC', os.path.join(ROOT, 'target', 'release', 'fedcredit'))
HERE = '/tmp/fcmeas/small-set'

def auc_ks(scores, labels):
    pairs = sorted(zip(scores, labels))
    tp = sum(labels); tn = len(labels) - tp
    u = 0.0; cp = cn = 0.0; ks = 0.0; i = 0
    while i < len(pairs):
        j = i; p = n = 0
        while j < len(pairs) and pairs[j][0] == pairs[i][0]:
            if pairs[j][1]: p += 1
            else: n += 1
            j += 1
        u += p * (cn + 0.5 * n); cp += p; cn += n
        ks = max(ks, abs(cp / tp - cn / tn)); i = j
    return u / (tp * tn), ks

def labels_of(path, col, pos):
    with open(path) as f:
        return [1 if r[col] == pos else 0 for r in csv.DictReader(f)]

def exact(model, test, col, pos, work):
    out = os.path.join(work, 'scores.csv')
    subprocess.run([BIN, 'score', '--model', model, '--data', test, '--out', out], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(out) as f:
        s = [float(r['probability']) for r in csv.DictReader(f)]
    return auc_ks(s, labels_of(test, col, pos))

def one(kind, eps, work):
    os.makedirs(work, exist_ok=True)
    if kind == 'german':
        cmd = [BIN, 'demo', '--dir', work] + (['--exact'] if eps == 'inf' else ['--epsilon', eps, '--delta', '1e-6'])
        model = os.path.join(work, 'out', 'model.json')
        test = os.path.join(work, 'test.csv')
        col, pos = 'creditability', 'bad'
    else:
        data = sorted(glob.glob(os.path.join(HERE, 'syn_train*.csv')))
        cmd = [BIN, 'local'] + sum([['--data', d] for d in data], []) + ['--label', 'default', '--positive', 'bad', '--negative', 'good', '--test', os.path.join(HERE, 'syn_test.csv'), '--out', work]
        if eps != 'inf': cmd += ['--epsilon', eps, '--delta', '1e-6']
        model = os.path.join(work, 'model.json'); test = os.path.join(HERE, 'syn_test.csv')
        col, pos = 'default', 'bad'
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        return {'eps': eps, 'error': (r.stderr + r.stdout)[-400:]}
    if kind == 'german':
        hs = sorted(glob.glob(os.path.join(work, '*-holdout.csv')))
        with open(test, 'w') as f:
            for k, h in enumerate(hs):
                lines = open(h).read().splitlines(True)
                f.writelines(lines if k == 0 else lines[1:])
    m = json.load(open(model))
    met = m.get('metrics') or {}
    a, k = exact(model, test, col, pos, work)
    return {'eps': eps, 'pooled_auc': met.get('auc'), 'pooled_ks': met.get('ks'), 'auc': a, 'ks': k}

if __name__ == '__main__':
    kind, reps, tag = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    epss = sys.argv[4].split(',')
    res = []
    for eps in epss:
        for i in range(reps):
            t = time.time()
            r = one(kind, eps, os.path.join('/tmp/fcmeas', tag, kind, eps, str(i)))
            r['t'] = round(time.time() - t, 1)
            print(json.dumps(r), flush=True); res.append(r)
    print('| ε | runs | pooled AUC | pooled KS | exact AUC | exact KS |')
    print('|---|---|---|---|---|---|')
    f = lambda xs: (f'{statistics.mean(xs):.3f} ± {statistics.stdev(xs):.3f}' if len(xs) > 1 else (f'{xs[0]:.3f}' if xs else 'n/a'))
    for eps in epss:
        rs = [r for r in res if r['eps'] == eps and 'error' not in r]
        errs = sum(1 for r in res if r['eps'] == eps and 'error' in r)
        col = lambda k: f([r[k] for r in rs if r.get(k) is not None])
        print(f"| {eps if eps != 'inf' else '∞'} | {len(rs)}{f' ({errs} failed)' if errs else ''} | {col('pooled_auc')} | {col('pooled_ks')} | {col('auc')} | {col('ks')} |")
