#!/usr/bin/env python3
"""Flower's SecAgg+ seconds per round beside fedcredit's, on N members x d values.

  python3 scripts/flower-secagg.py --setup          # (re)make the venv, then run
  python3 scripts/flower-secagg.py                  # Flower's figures only
  python3 scripts/flower-secagg.py --fedcredit target/release/fedcredit
  python3 scripts/flower-secagg.py --fedcredit-json fc.json --flower-json flower.json
  python3 scripts/flower-secagg.py --members 4,16 --dims 50 --rounds 3 --json out.json

What is measured. For every N in --members and d in --dims, one Flower 1.41
simulation (`flwr.simulation.run_simulation`, Ray backend, in a child process
of this script) runs N virtual SuperNodes. The ServerApp is a `DefaultWorkflow` whose
fit round is `SecAggPlusWorkflow`; the ClientApp carries `secaggplus_mod`, and
each client's fit returns one float32 ndarray of length d (fixed, its own per
client), so every round is one masked sum of N vectors of d values through
SecAgg+'s four stages (setup, share keys, collect masked vectors, unmask),
with FedAvg averaging the unmasked sum. There is no evaluation and no data.
Each fit round is timed around the workflow call (`time.perf_counter`); the
first --warmup rounds (default 1) are left out, since the first one also
waits for Ray to start and its actors to load the ClientApp. The figure
reported is the median of the next --rounds rounds. After every round the
aggregate is checked against the mean the clients' vectors should give, so a
halted or wrong round is an error, not a fast figure. Beside the wall time,
each round's CPU time over the simulation's whole process tree (driver, Ray,
ClientApp actors; from /proc) is reported: on a machine other work shares,
it moves much less than the wall time does.

SecAgg+ parameters. Flower's SecAggPlusWorkflow has no defaults for them; the
"example" graph uses those of Flower's own secure-aggregation example
(num_shares=3, reconstruction_threshold=2: each member masks with 2
neighbours). The "full" graph is Bonawitz's complete graph, the one fedcredit
masks over: num_shares=N, with a majority reconstruction_threshold=N//2+1.
--graph picks one or both.

Polling, patched in Flower's favour. Flower's simulation waits on two polls of
100 ms: the ServerApp's grid sleeps `InMemoryGrid.pull_interval` (0.1 s)
between pulls for replies, and the simulated fleet looks for new messages
every 0.1 s (`add_messages_to_queue` in flwr/server/superlink/fleet/vce/
vce_api.py). Both are set to 5 ms here at run time (nothing in site-packages
is edited), so the stages are not charged up to 0.2 s each of sleeping.
One caveat: each pass of the fleet poll checks every stored message once per
node (N x N checks, each reading the clock and the federation), so at N=64 a
5 ms poll keeps a thread of the driver busy and can cost Flower more than it
saves; --poll-ms 100 runs Flower's polls as shipped, to compare.

Resources. Ray is started with --cpus CPUs (default 2, this machine's cores)
and each ClientApp asks for --client-cpus (default 1), so 2 clients run at
once. Flower's telemetry and Ray's usage stats are switched off: the only
network this script uses is pip's, in --setup.

fedcredit's side. --fedcredit BIN runs `BIN bench-secagg --members ...
--dims ... --jobs 1 --rounds W+R --setup S --json FILE` first: per cell one
fresh consortium of processes runs a series of W+R secure sums (W = --warmup,
R = --rounds), with keys agreed and secrets shared once for the job
(S = epoch, the default of --fedcredit-setup) or every round (S = round).
Its per-round figure is the median of the rounds after the first,
announcement to published sum from the round log; the first round, which
holds the epoch's setup, is shown apart. --fedcredit-json FILE reads such a
file instead. Either gives the table its fedcredit column, the ratio
Flower/fedcredit, and the targets: >= 20x at N=16 and N=64 with d=100,000,
and <= 50 ms per round at N=64, d=50.

Each simulation runs in a child process (its log in target/flower-bench/), so
one that fails (say out of memory) is reported as such and the rest still run.
The venv is target/flower-venv; --setup (or a missing venv) creates it and
pip-installs scripts/flower-requirements.txt, then the script re-runs itself
inside it.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import venv

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(ROOT, 'target', 'flower-venv')
REQUIREMENTS = os.path.join(ROOT, 'scripts', 'flower-requirements.txt')
WORK = os.path.join(ROOT, 'target', 'flower-bench')

POLL_SECONDS = 0.005          # Flower's two 0.1 s polls, patched down to this
                              # (--poll-ms changes it, e.g. 100 for Flower as shipped)
MAX_WEIGHT = 1000.0           # SecAggPlusWorkflow's default max_weight
TOLERANCE = 1e-3              # aggregate vs the true mean (quantization 16/2**22)
TARGET_RATIO = 20.0           # Flower/fedcredit at N=16, 64 and d=100,000
TARGET_SMALL_SECONDS = 0.050  # fedcredit at N=64, d=50

# No telemetry, no usage stats: set before flwr or ray is imported, and
# inherited by the re-run in the venv and by every child.
os.environ['FLWR_TELEMETRY_ENABLED'] = '0'
os.environ['RAY_USAGE_STATS_ENABLED'] = '0'


# ---------------------------------------------------------------- the venv

def venv_python():
    return os.path.join(VENV, 'bin', 'python')


def in_venv():
    return os.path.realpath(sys.prefix) == os.path.realpath(VENV)


def setup_venv():
    print(f'creating {VENV} and installing {os.path.relpath(REQUIREMENTS, ROOT)}',
          file=sys.stderr)
    venv.EnvBuilder(with_pip=True).create(VENV)
    subprocess.run([venv_python(), '-m', 'pip', 'install', '-r', REQUIREMENTS], check=True)


def enter_venv(force_setup):
    """Re-runs this script with the venv's Python, creating the venv first
    when asked to or when it is missing."""
    if in_venv():
        if force_setup:
            subprocess.run([sys.executable, '-m', 'pip', 'install', '-r', REQUIREMENTS],
                           check=True)
        return
    if force_setup or not os.path.exists(venv_python()):
        setup_venv()
    argv = [a for a in sys.argv[1:] if a != '--setup']
    os.execv(venv_python(), [venv_python(), os.path.abspath(__file__)] + argv)


# -------------------------------------------- one simulation (child process)

def patch_polling(vce_api, poll_seconds):
    """Replaces the simulated fleet's 0.1 s look for new messages with one of
    poll_seconds. `run_api` finds `add_messages_to_queue` in its module's
    globals when it starts the thread, so replacing the module attribute is
    enough. The body is Flower 1.41's, with the wait changed."""
    original = vce_api.add_messages_to_queue
    if 'add_messages_to_queue' not in vce_api.run_api.__code__.co_names:
        raise RuntimeError('vce_api.run_api no longer starts add_messages_to_queue: '
                           'the fleet poll cannot be patched here')

    def add_messages_to_queue(state, queue, nodes_mapping, f_stop):
        while not f_stop.is_set():
            for node_id in nodes_mapping.keys():
                for msg in state.get_message_ins(node_id=node_id, limit=1):
                    queue.put(msg)
            f_stop.wait(poll_seconds)

    add_messages_to_queue.__doc__ = original.__doc__
    vce_api.add_messages_to_queue = add_messages_to_queue


def tree_cpu_seconds(root_pid):
    """User + system CPU seconds of root_pid and all its descendants so far
    (the driver with its ServerApp thread, Ray's own processes and the
    ClientApp actors), read from /proc."""
    children, ticks = {}, {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open(f'/proc/{entry}/stat') as f:
                fields = f.read().rsplit(')', 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        children.setdefault(int(fields[1]), []).append(int(entry))
        ticks[int(entry)] = int(fields[11]) + int(fields[12])  # utime + stime
    total, stack = 0, [root_pid]
    while stack:
        pid = stack.pop()
        total += ticks.get(pid, 0)
        stack.extend(children.get(pid, ()))
    return total / os.sysconf('SC_CLK_TCK')


def client_vector(partition, dim):
    import numpy as np
    return np.random.default_rng(partition).uniform(-1.0, 1.0, dim).astype(np.float32)


def run_point(members, dim, graph, rounds, warmup, cpus, client_cpus, poll_seconds):
    """One simulation; returns its result as a dict (raises on failure)."""
    import numpy as np
    from flwr.client import NumPyClient
    from flwr.client.mod import secaggplus_mod
    from flwr.clientapp import ClientApp
    from flwr.common import ndarrays_to_parameters, parameters_to_ndarrays
    from flwr.compat.common import recorddict_compat as compat
    from flwr.server import LegacyContext, ServerConfig
    from flwr.server.strategy import FedAvg
    from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
    from flwr.server.workflow.constant import MAIN_PARAMS_RECORD
    from flwr.server.superlink.fleet.vce import vce_api
    from flwr.serverapp import ServerApp
    from flwr.simulation import run_simulation

    patch_polling(vce_api, poll_seconds)

    if graph == 'example':
        num_shares, threshold = 3, 2
    else:
        num_shares, threshold = members, members // 2 + 1

    class Member(NumPyClient):
        def __init__(self, partition):
            self.partition = partition

        def fit(self, parameters, config):
            # The weight is max_weight, so SecAgg+ quantizes the vector with
            # its full 22 bits (a weight of 1 would leave ~12).
            return [client_vector(self.partition, dim)], int(MAX_WEIGHT), {}

    def client_fn(context):
        return Member(int(context.node_config['partition-id'])).to_client()

    client_app = ClientApp(client_fn=client_fn, mods=[secaggplus_mod])

    expected = np.mean([client_vector(p, dim).astype(np.float64) for p in range(members)], axis=0)
    zeros = ndarrays_to_parameters([np.zeros(dim, dtype=np.float32)])
    round_seconds = []
    cpu_seconds = []
    errors = []
    max_error = [0.0]

    class TimedSecAggPlus:
        """The fit round: SecAggPlusWorkflow, timed, its aggregate checked."""

        def __init__(self):
            self.inner = SecAggPlusWorkflow(num_shares=num_shares,
                                            reconstruction_threshold=threshold)

        def __call__(self, grid, context):
            # Every round starts from zeros, so a round that halts leaves
            # zeros behind instead of the last round's (correct) mean.
            context.state.array_records[MAIN_PARAMS_RECORD] = \
                compat.parameters_to_arrayrecord(zeros, keep_input=True)
            cpu_start = tree_cpu_seconds(os.getpid())
            start = time.perf_counter()
            self.inner(grid, context)
            round_seconds.append(time.perf_counter() - start)
            cpu_seconds.append(tree_cpu_seconds(os.getpid()) - cpu_start)
            got = parameters_to_ndarrays(compat.arrayrecord_to_parameters(
                context.state.array_records[MAIN_PARAMS_RECORD], keep_input=True))
            err = float(np.max(np.abs(got[0].astype(np.float64) - expected)))
            max_error[0] = max(max_error[0], err)
            if err > TOLERANCE:
                errors.append(f'round {len(round_seconds)}: aggregate off by {err:.3g}')

    server_app = ServerApp()

    @server_app.main()
    def main(grid, context):
        # The ServerApp's poll for replies (InMemoryGrid.send_and_receive).
        if not hasattr(grid, 'pull_interval'):
            raise RuntimeError(f'{type(grid).__name__} has no pull_interval to patch')
        grid.pull_interval = poll_seconds
        strategy = FedAvg(fraction_fit=1.0, fraction_evaluate=0.0,
                          min_fit_clients=members, min_available_clients=members,
                          initial_parameters=zeros)
        legacy = LegacyContext(context=context,
                               config=ServerConfig(num_rounds=warmup + rounds),
                               strategy=strategy)
        DefaultWorkflow(fit_workflow=TimedSecAggPlus())(grid, legacy)

    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    run_simulation(server_app=server_app, client_app=client_app, num_supernodes=members,
                   backend_config={
                       'init_args': {'num_cpus': cpus, 'num_gpus': 0},
                       'client_resources': {'num_cpus': client_cpus, 'num_gpus': 0.0},
                   })
    job_seconds = time.perf_counter() - start

    if errors:
        raise RuntimeError('; '.join(errors))
    if len(round_seconds) != warmup + rounds:
        raise RuntimeError(f'{len(round_seconds)} of {warmup + rounds} rounds ran')
    measured = round_seconds[warmup:]
    return {
        'members': members, 'dim': dim, 'graph': graph,
        'num_shares': num_shares, 'reconstruction_threshold': threshold,
        'rounds': rounds, 'warmup_rounds': warmup,
        'round_seconds': statistics.median(measured),
        'round_seconds_each': measured,
        'warmup_round_seconds': round_seconds[:warmup],
        'cpu_seconds': statistics.median(cpu_seconds[warmup:]),
        'cpu_seconds_each': cpu_seconds[warmup:],
        'job_seconds': job_seconds,
        'max_abs_error': max_error[0],
        'load_average': [load_before, os.getloadavg()[0]],
        'poll_seconds': poll_seconds, 'cpus': cpus, 'client_cpus': client_cpus,
        'flwr': __import__('flwr').__version__,
    }


def child_main(args):
    members, dim, graph = args.child.split(',')
    result = run_point(int(members), int(dim), graph, args.rounds, args.warmup,
                       args.cpus, args.client_cpus, args.poll_ms / 1000)
    with open(args.child_out, 'w') as f:
        json.dump(result, f)


# ------------------------------------------------------------ orchestration

def run_flower(args):
    """Every (N, d, graph) in its own child; a failure becomes an 'error' row."""
    os.makedirs(WORK, exist_ok=True)
    results = []
    for members in args.members:
        for dim in args.dims:
            for graph in args.graphs:
                tag = f'N{members}-d{dim}-{graph}'
                log_path = os.path.join(WORK, tag + '.log')
                out_path = os.path.join(WORK, tag + '.json')
                if os.path.exists(out_path):
                    os.remove(out_path)
                cmd = [sys.executable, os.path.abspath(__file__), '--child',
                       f'{members},{dim},{graph}', '--child-out', out_path,
                       '--rounds', str(args.rounds), '--warmup', str(args.warmup),
                       '--cpus', str(args.cpus), '--client-cpus', str(args.client_cpus),
                       '--poll-ms', str(args.poll_ms)]
                print(f'Flower N={members:<3} d={dim:<7} {graph:<7} ...', end=' ',
                      file=sys.stderr, flush=True)
                start = time.perf_counter()
                error = None
                with open(log_path, 'w') as log:
                    try:
                        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT,
                                              timeout=args.timeout)
                        if proc.returncode != 0:
                            error = exit_reason(proc.returncode, log_path)
                    except subprocess.TimeoutExpired:
                        error = f'timed out after {args.timeout:.0f} s'
                wall = time.perf_counter() - start
                if error is None and os.path.exists(out_path):
                    with open(out_path) as f:
                        row = json.load(f)
                    print(f'{row["round_seconds"]:.3f} s/round ({wall:.0f} s)',
                          file=sys.stderr)
                else:
                    error = error or 'no result written'
                    row = {'members': members, 'dim': dim, 'graph': graph, 'error': error}
                    print(f'FAILED: {error} (log: {os.path.relpath(log_path, ROOT)})',
                          file=sys.stderr)
                results.append(row)
    return results


def exit_reason(code, log_path):
    if code < 0:
        name = {9: 'SIGKILL (out of memory?)', 11: 'SIGSEGV', 6: 'SIGABRT'}.get(-code, '')
        return f'killed by signal {-code} {name}'.strip()
    with open(log_path, errors='replace') as f:
        lines = [l.strip() for l in f if l.strip()]
    last = next((l for l in reversed(lines) if 'Error' in l or 'error' in l),
                lines[-1] if lines else '')
    return f'exit {code}: {last[-300:]}'


def run_fedcredit(args):
    os.makedirs(WORK, exist_ok=True)
    out = os.path.join(WORK, 'fedcredit.json')
    cmd = [args.fedcredit, 'bench-secagg',
           '--members', ','.join(map(str, args.members)),
           '--dims', ','.join(map(str, args.dims)),
           # One job per cell, a series of warm-up + measured sums; the
           # figure is the median of the rounds after the first.
           '--jobs', '1', '--rounds', str(max(args.warmup, 1) + args.rounds),
           '--setup', args.fedcredit_setup, '--json', out]
    print('fedcredit: ' + ' '.join(cmd), file=sys.stderr, flush=True)
    try:
        code = subprocess.run(cmd).returncode
    except OSError as e:
        sys.exit(f'cannot run {args.fedcredit}: {e}')
    if code != 0:
        sys.exit(f'fedcredit bench-secagg failed (exit {code}); Flower not run')
    return read_fedcredit(out)


def read_fedcredit(path):
    """fedcredit's rows: a list of {members, dim, rounds, setup_seconds,
    round_seconds, job_seconds}."""
    with open(path) as f:
        rows = json.load(f)
    if not isinstance(rows, list) or not all(
            isinstance(r, dict) and {'members', 'dim', 'round_seconds'} <= r.keys()
            for r in rows):
        sys.exit(f'{path}: expected a list of {{"members", "dim", "round_seconds", ...}}')
    return rows


# ------------------------------------------------------------------ output

def fmt_s(x):
    if x is None:
        return '-'
    return f'{x * 1000:.1f} ms' if x < 1 else f'{x:.2f} s'


def print_table(flower, fedcredit, graphs):
    fc = {(r['members'], r['dim']): r for r in fedcredit or []}
    fl = {(r['members'], r['dim'], r['graph']): r for r in flower}
    keys = sorted({(r['members'], r['dim']) for r in flower} | set(fc))

    some = next((r for r in flower if 'error' not in r), None)
    print()
    if some is None:
        print('Flower: no simulation succeeded.')
    else:
        poll_ms = some['poll_seconds'] * 1000
        polls = (f'patched to {poll_ms:g} ms in its favour' if poll_ms < 100
                 else f'left at {poll_ms:g} ms')
        print(f'Flower {some["flwr"]} SecAgg+ in simulation (Ray, {some["cpus"]:g} CPUs, '
              f'{some["client_cpus"]:g} per client); its two 0.1 s polls {polls}.')
        print(f'  seconds per round: median of {some["rounds"]} rounds after '
              f'{some["warmup_rounds"]} warm-up round(s) (Ray start-up) left out')
    for g in graphs:
        print(f'  graph "{g}": ' + {
            'example': 'num_shares=3, reconstruction_threshold=2 '
                       "(Flower's secure-aggregation example; the workflow has no defaults)",
            'full': 'num_shares=N, reconstruction_threshold=N//2+1 (complete graph)',
        }[g])
    with_cpu = any('cpu_seconds' in r for r in flower)
    if with_cpu:
        print('  CPU s/round: CPU time of the whole simulation (driver, Ray, ClientApp '
              'actors) per round, median;')
        print('  other load on the machine moves it much less than wall time, and on '
              'idle CPUs a round takes at least CPU / CPUs')
    print()

    head = ['N', 'd']
    if fedcredit is not None:
        setups = sorted({r.get('setup', 'round') for r in fedcredit})
        print(f'fedcredit: setup = {"/".join(setups)}; s/round is the median of the rounds '
              'after the first; "1st" is the first round (with epochs it holds the setup)')
        print()
        head.append('fedcredit 1st')
        head.append('fedcredit s/round')
    for g in graphs:
        head.append(f'Flower[{g}] s/round')
        if fedcredit is not None:
            head.append(f'ratio[{g}]')
        if with_cpu:
            head.append(f'Flower[{g}] CPU s/round')
    rows = []
    for key in keys:
        row = [str(key[0]), f'{key[1]:,}']
        f = fc.get(key)
        if fedcredit is not None:
            row.append(fmt_s(f.get('first_round_seconds')) if f else 'missing')
            row.append(fmt_s(f['round_seconds']) if f else 'missing')
        for g in graphs:
            r = fl.get(key + (g,))
            if r is None:
                row.append('-')
            elif 'error' in r:
                row.append('FAILED')
            else:
                row.append(fmt_s(r['round_seconds']))
            if fedcredit is not None:
                ok = f and r and 'error' not in r and f['round_seconds'] > 0
                row.append(f'{r["round_seconds"] / f["round_seconds"]:.1f}x' if ok else '-')
            if with_cpu:
                row.append(fmt_s(r.get('cpu_seconds')) if r else '-')
        rows.append(row)
    widths = [max(len(x) for x in col) for col in zip(head, *rows)]
    print('| ' + ' | '.join(h.ljust(w) for h, w in zip(head, widths)) + ' |')
    print('|' + '|'.join('-' * (w + 2) for w in widths) + '|')
    for row in rows:
        print('| ' + ' | '.join(x.rjust(w) for x, w in zip(row, widths)) + ' |')

    loads = [x for r in flower for x in r.get('load_average', [])]
    if loads:
        print()
        print(f'1-minute load average around the Flower runs: {min(loads):.1f} to '
              f'{max(loads):.1f} on {os.cpu_count()} CPUs'
              + (' (other work shared the CPUs: Flower figures are slower than on an idle machine)'
                 if max(loads) > (os.cpu_count() or 1) + 0.5 else ''))

    failed = [r for r in flower if 'error' in r]
    if failed:
        print()
        for r in failed:
            print(f'Flower N={r["members"]} d={r["dim"]} [{r["graph"]}] failed: {r["error"]}')

    if fedcredit is not None:
        print()
        print('Targets:')
        for members in (16, 64):
            f = fc.get((members, 100000))
            for g in graphs:
                r = fl.get((members, 100000, g))
                if f and r and 'error' not in r:
                    ratio = r['round_seconds'] / f['round_seconds']
                    verdict = 'met' if ratio >= TARGET_RATIO else 'NOT met'
                    print(f'  N={members}, d=100,000, Flower[{g}]/fedcredit >= '
                          f'{TARGET_RATIO:.0f}x: {ratio:.1f}x, {verdict}')
                else:
                    print(f'  N={members}, d=100,000, Flower[{g}]/fedcredit >= '
                          f'{TARGET_RATIO:.0f}x: not measured')
        f = fc.get((64, 50))
        if f:
            verdict = 'met' if f['round_seconds'] <= TARGET_SMALL_SECONDS else 'NOT met'
            print(f'  N=64, d=50, fedcredit <= {TARGET_SMALL_SECONDS * 1000:.0f} ms/round: '
                  f'{fmt_s(f["round_seconds"])}, {verdict}')
        else:
            print(f'  N=64, d=50, fedcredit <= {TARGET_SMALL_SECONDS * 1000:.0f} ms/round: '
                  'not measured')


# -------------------------------------------------------------------- main

def int_list(text):
    return [int(x) for x in text.split(',') if x.strip()]


def parse_args():
    p = argparse.ArgumentParser(
        description="Flower SecAgg+ seconds per round, beside fedcredit's.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='See the docstring at the top of this file for what is measured.')
    p.add_argument('--setup', action='store_true',
                   help='(re)create target/flower-venv and install the pinned requirements')
    p.add_argument('--members', type=int_list, default=[4, 16, 64], help='N list (4,16,64)')
    p.add_argument('--dims', type=int_list, default=[50, 10000, 100000],
                   help='d list (50,10000,100000)')
    p.add_argument('--rounds', type=int, default=5,
                   help='measured rounds per point, after the warm-up (5)')
    p.add_argument('--warmup', type=int, default=1,
                   help='first rounds left out (1: the one that waits for Ray)')
    p.add_argument('--graph', choices=['example', 'full', 'both'], default='both',
                   help="SecAgg+ graph: Flower example's num_shares=3/threshold=2, "
                        'complete (num_shares=N), or both (both)')
    p.add_argument('--cpus', type=float, default=2, help='CPUs given to Ray (2)')
    p.add_argument('--client-cpus', type=float, default=1, help='CPUs per ClientApp (1)')
    p.add_argument('--poll-ms', type=float, default=POLL_SECONDS * 1000,
                   help="Flower's two polls, in ms (5; Flower ships 100)")
    p.add_argument('--timeout', type=float, default=3600,
                   help='seconds one simulation may take before it is stopped (3600)')
    p.add_argument('--json', metavar='OUT', help="save Flower's results here")
    p.add_argument('--flower-json', metavar='FILE',
                   help="read Flower's results from an earlier --json instead of running")
    src = p.add_mutually_exclusive_group()
    src.add_argument('--fedcredit', metavar='BIN',
                     help='run BIN bench-secagg on the same grid')
    src.add_argument('--fedcredit-json', metavar='FILE', help="read fedcredit's results")
    p.add_argument('--fedcredit-setup', choices=['epoch', 'round'], default='epoch',
                   help='--fedcredit: keys and shares once for the job (epoch) or every round')
    p.add_argument('--child', help=argparse.SUPPRESS)
    p.add_argument('--child-out', help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.rounds < 3:
        p.error('--rounds must be at least 3')
    if args.warmup < 0:
        p.error('--warmup must be 0 or more')
    if min(args.members, default=0) < 3:
        p.error('--members: SecAgg+ here needs at least 3 members')
    if min(args.dims, default=0) < 1:
        p.error('--dims: each d must be at least 1')
    args.graphs = ['example', 'full'] if args.graph == 'both' else [args.graph]
    return args


def main():
    args = parse_args()
    if args.child:
        child_main(args)
        return
    if args.flower_json:
        with open(args.flower_json) as f:
            flower = json.load(f)
        graphs = [g for g in ('example', 'full') if any(r['graph'] == g for r in flower)]
    else:
        enter_venv(args.setup)
        graphs = args.graphs
    fedcredit = None
    if args.fedcredit:
        fedcredit = run_fedcredit(args)
    elif args.fedcredit_json:
        fedcredit = read_fedcredit(args.fedcredit_json)
    if not args.flower_json:
        flower = run_flower(args)
        if args.json:
            with open(args.json, 'w') as f:
                json.dump(flower, f, indent=1)
            print(f'Flower results written to {args.json}', file=sys.stderr)
    print_table(flower, fedcredit, graphs)


if __name__ == '__main__':
    main()
