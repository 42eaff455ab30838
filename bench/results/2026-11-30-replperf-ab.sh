#!/bin/bash
# A/B: ASYNC_MASTER + loopback slave, W1 (perf stat task-clock of both) then a 512 MiB catch-up.
# usage: ab.sh LABEL BINARY OUTDIR
set -u
label=$1; BIN=$2; OUT=$3
ROOT=/work/wt/replnet; cd $ROOT
BENCH=$ROOT/target/release/saturn-bench
W=$ROOT/target/ab/work-$label; rm -rf $W; mkdir -p $W/m $W/s
NSP=24010; PORT=24011; SPORT=24021
printf 'diskMaxUsedSpaceRatio=95\nbrokerRole=ASYNC_MASTER\n' >$W/m.conf
slave_conf() { cat >$W/s.conf <<CONF
brokerName=saturn
brokerId=1
brokerRole=SLAVE
flushDiskType=ASYNC_FLUSH
namesrvAddr=127.0.0.1:$NSP
haMasterAddress=127.0.0.1:$((PORT + 1))
brokerIP1=127.0.0.1
listenPort=$SPORT
storePathRootDir=$W/s
diskMaxUsedSpaceRatio=95
CONF
}
ready() { for _ in $(seq 1 300); do grep -q "saturn-broker ready" $1 && return 0; sleep 0.1; done; return 1; }
$BIN standalone --shards 1 --no-pin --port $PORT --namesrv-port $NSP --data-dir $W/m --flush ASYNC_FLUSH -c $W/m.conf >$W/m.log 2>&1 &
MP=$!; ready $W/m.log || { echo master failed; kill $MP; exit 1; }
slave_conf
$BIN -c $W/s.conf --shards 1 --no-pin >$W/s.log 2>&1 &
SP=$!; ready $W/s.log || echo slave not ready
for _ in $(seq 1 100); do grep -q "slave connected" $W/m.log && break; sleep 0.1; done
sleep 3
common=(--namesrv 127.0.0.1:$NSP --create-topic 8 --broker-pid $MP --json --size 1024 --connections 4 --in-flight 64)
perf stat -e task-clock -p $MP -o $OUT/$label-W1-master.perf & PM=$!
perf stat -e task-clock -p $SP -o $OUT/$label-W1-slave.perf & PS=$!
cut -d" " -f1-3 /proc/loadavg >$OUT/$label-W1.load
timeout 60 $BENCH produce --topic BenchW1 "${common[@]}" --duration 10 >$OUT/$label-W1.json 2>$OUT/$label-W1.err
kill -INT $PM $PS; wait $PM $PS
cut -d" " -f1-3 /proc/loadavg >>$OUT/$label-W1.load
# catch-up: slave stopped, master's log grown to 512 MiB, fresh slave
kill $SP; wait $SP
timeout 300 $BENCH produce --topic BenchCatchup "${common[@]}" --batch 64 --count 524288 >$OUT/$label-fill.json 2>&1
rm -rf $W/s; mkdir -p $W/s
timeout 300 python3 scripts/repl-probe catchup 127.0.0.1:$PORT 127.0.0.1:$SPORT 240 $OUT/$label-catchup.json >/dev/null &
PR=$!
cut -d" " -f1-3 /proc/loadavg >$OUT/$label-catchup.load
perf stat -e task-clock -p $MP -o $OUT/$label-catchup-master.perf & PM=$!
perf stat -e task-clock -o $OUT/$label-catchup-slave.perf -- $BIN -c $W/s.conf --shards 1 --no-pin >$W/s2.log 2>&1 &
PS=$!
wait $PR
kill -INT $PM; wait $PM
for _ in $(seq 1 50); do SP=$(pgrep -P $PS) && break; sleep 0.1; done
kill $SP; wait $PS
cut -d" " -f1-3 /proc/loadavg >>$OUT/$label-catchup.load
kill $MP; wait $MP
du -sh $W/m
rm -rf $W
