#!/bin/bash
# New UDP flows/s through serve2d with workers 1 vs 2, alternating, a fresh
# daemon per burst of 19,000 flows; serve2d CPU ticks (1/100 s) per burst.
# Build: cargo build --release -p serve2 -p serve2-bench --bins
# Run as root: unshare -n experiments/udp-workers/ab.sh
set -u
B=${B:-target/release}
T=$(mktemp -d)
ip link set lo up
ulimit -n 20000
$B/serve2-load udp-echo --listen 127.0.0.1:7000 > $T/echo.out 2>&1 &
ECHO=$!
sleep 0.5
for rep in 1 2 3 4; do
  for w in 1 2; do
    rm -f $T/log.txt
    cat > $T/conf.json <<J
{"control": "", "workers": $w, "udpAddress": "127.0.0.1:7001", "logFile": "$T/log.txt", "udp": {"forward": {"target": "127.0.0.1:7000"}}}
J
    $B/serve2d $T/conf.json > $T/d.out 2>&1 &
    D=$!
    for i in $(seq 100); do grep -q serving $T/log.txt $T/d.out 2>/dev/null && break; sleep 0.05; done
    t0=$(awk '{print $14+$15}' /proc/$D/stat)
    out=$($B/serve2-load udp-flows --target 127.0.0.1:7001 --seconds 5 --max-flows 19000 2>&1 | tail -1)
    t1=$(awk '{print $14+$15}' /proc/$D/stat)
    threads=$(ls /proc/$D/task | wc -l)
    echo "rep=$rep workers=$w cpu_ticks=$((t1-t0)) threads=$threads $out"
    kill $D; wait $D 2>/dev/null
  done
done
cat /proc/loadavg
kill $ECHO
