#!/bin/bash
# Peak resident memory (GNU time -v, "Maximum resident set size") of the
# coordinator and each participant of one secure-sum job, N members x D
# values: `bench-secagg --keep` writes a kit and runs the job once (which
# also checks the sum), then that kit's coordinator and participants run
# again, each under /usr/bin/time -v.
#
#   scripts/secagg-peak-memory.sh target/release/fedcredit /tmp/mem 4 10000000
set -euo pipefail
BIN=$1; DIR=$2; N=${3:-4}; D=${4:-10000000}
rm -rf "$DIR"; mkdir -p "$DIR"
"$BIN" bench-secagg --members $N --dims $D --jobs 1 --keep "$DIR" >"$DIR/bench.out" 2>"$DIR/bench.err"
K=$(ls -d "$DIR"/n$N-d$D-job0)
cd "$K"
rm -rf out *.rounds.log* *.journal* *.lock
/usr/bin/time -v -o coordinator.time "$BIN" coordinator --config consortium.toml --out out >/dev/null 2>coordinator.rerun.log &
C=$!
sleep 0.5
PIDS=()
for i in $(seq 0 $((N-1))); do
  id=$(printf 'm%03d' $i)
  /usr/bin/time -v -o $id.time "$BIN" participant --config $id.toml >/dev/null 2>$id.rerun.log &
  PIDS+=($!)
done
for p in "${PIDS[@]}"; do wait $p; done
wait $C
for f in coordinator.time m*.time; do
  echo "$f: $(grep -E 'Maximum resident' $f) ; $(grep -E 'Elapsed' $f) ; exit $(grep 'Exit status' $f)"
done
