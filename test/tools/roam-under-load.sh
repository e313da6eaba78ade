#!/bin/bash
# The roam test of test/netns/nat-traversal.test.ts, repeated while CPU burners run (the
# upgrade race of docs/PROTOCOL.md 8b; figures in docs/PERFORMANCE.md). As root, in a built tree:
#   test/tools/roam-under-load.sh DIR TAG RUNS BURNERS BURNER_NICE [DELAY_MS]
# Each run: BURNERS `node -e` busy loops (bounded: 240 s, killed by PID after the run) at
# nice BURNER_NICE, the test at nice 10; one line per run in /tmp/TAG.summary (exit code,
# "direct again ... after the roam" or "still relayed", load averages before -> after).
set -u
DIR=$1; TAG=$2; N=$3; NB=$4; BN=$5; DL=${6:-25}
cd "$DIR"
for i in $(seq 1 "$N"); do
  B=()
  for _ in $(seq 1 "$NB"); do nice -n "$BN" node -e 'const e=Date.now()+240000;while(Date.now()<e){}' & B+=($!); done
  l0=$(cut -d' ' -f1-3 /proc/loadavg)
  MINTUN_NAT_DELAY_MS=$DL nice -n 10 npx vitest run test/netns/nat-traversal.test.ts -t 'roams' > "/tmp/$TAG.$i.log" 2>&1
  rc=$?
  for p in "${B[@]}"; do kill "$p" 2>/dev/null; done
  wait "${B[@]}" 2>/dev/null
  echo "run $i rc=$rc $(grep -o 'NAT roam: [a-z].*after the roam[^;]*' "/tmp/$TAG.$i.log" | head -1) load $l0 -> $(cut -d' ' -f1-3 /proc/loadavg)" >> "/tmp/$TAG.summary"
done
