# Sourced by scripts/bench-peer with BENCH_WORKLOADS=repl: classic master/slave of Apache
# RocketMQ 4.9.7 beside Saturn's, same saturn-bench workloads, same placement.
#
# For each round, each role in BENCH_REPL_ROLES [ASYNC_MASTER SYNC_MASTER] and each of
# BENCH_SYSTEMS that is saturn or java-4.9.7 (in that order): a fresh master (one core, as in the
# other workloads; flush BENCH_FLUSH) in the root namespace and a fresh slave (not pinned, same
# flush mode) in its own network namespace behind a veth pair (scripts/lib-netns.sh), the slave
# given the master's HA address (haMasterAddress, a key both brokers read). Then the warm-up
# (not counted), W1 and W2 as in the other workloads, each once the slave is level with its
# master again (the figures say how long that took), with scripts/repl-probe sampling the
# slave's lag behind the master during each (both brokers' runtime info). Writes
# bench/results/<date>-peer-repl.md and .json.
. scripts/lib-netns.sh
REPL_ROLES="${BENCH_REPL_ROLES:-ASYNC_MASTER SYNC_MASTER}"
SLAVE_ADDR="$NS_SLAVE_IP:10911"
: >"$RUN/repl.tsv"

# repl_workloads SYS ROLE ROUND NS BPID MASTER_ADDR: warm-up, then W1 and W2 with lag sampling.
repl_workloads() {
    local sys=$1 role=$2 round=$3 ns=$4 bpid=$5 maddr=$6 id label="$1+$2"
    local common=(--namesrv "$ns" --create-topic "$QUEUES" --broker-pid "$bpid" --core "$BENCH_CORE" --json)
    local send=(--size 1024 --connections 4 --in-flight 64)
    log "$label round $round: warm-up, ${WARMUP} s of single sends and ${WARMUP} s of batches (not counted)"
    timeout $((WARMUP + 90)) "$BENCH" produce --topic BenchWarm "${common[@]}" "${send[@]}" --duration "$WARMUP" \
        >"$RUN/$label-$round-warmup1.json" 2>&1 || true
    timeout $((WARMUP + 90)) "$BENCH" produce --topic BenchWarm "${common[@]}" "${send[@]}" --batch 64 \
        --duration "$WARMUP" >"$RUN/$label-$round-warmup2.json" 2>&1 || true
    for id in W1 W2; do
        local extra=()
        [ "$id" = W1 ] || extra=(--batch 64)
        # The slave first catches up with what the warm-up (or W1) wrote: lag is measured from a
        # slave that was level with its master when the run started.
        timeout 400 python3 scripts/repl-probe catchup "$maddr" "$SLAVE_ADDR" 360 \
            "$RUN/$label-$round-$id.level.json" >/dev/null || true
        log "$label round $round: $id, ${SECS} s, slave in $NETNS"
        cut -d' ' -f1-3 /proc/loadavg >"$RUN/$label-$round-$id.load"
        timeout $((SECS + 30)) python3 scripts/repl-probe lag "$maddr" "$SLAVE_ADDR" "$SECS" \
            "$RUN/$label-$round-$id.lag.json" &
        local lag_pid=$!
        run_bench "$label" "$round" "$id" $((SECS + 90)) produce --topic "Bench$id" "${common[@]}" "${send[@]}" \
            "${extra[@]}" --duration "$SECS"
        wait "$lag_pid" || true
        printf '%s\t%s\t%s\t%s\n' "$sys" "$role" "$round" "$id" >>"$RUN/repl.tsv"
    done
}

repl_saturn() {
    local role=$1 round=$2
    local ns_port=$((22100 + PORT_OFFSET + round)) port=$((22200 + PORT_OFFSET + 10 * round))
    local data="$WORK/saturn-data" sdata="$WORK/saturn-slave-data" label="saturn+$role"
    rm -rf "$data" "$sdata"
    mkdir -p "$data" "$sdata"
    printf 'brokerRole=%s\n' "$role" >"$WORK/saturn-master.conf"
    cat >"$WORK/saturn-slave.conf" <<CONF
brokerName=saturn
brokerId=1
brokerRole=SLAVE
flushDiskType=$FLUSH
namesrvAddr=$NS_HOST_IP:$ns_port
haMasterAddress=$NS_HOST_IP:$((port + 1))
brokerIP1=$NS_SLAVE_IP
listenPort=10911
storePathRootDir=$ROOT/$sdata
CONF
    local bcmd=("$BROKER" standalone --shards 1 --port "$port" --namesrv-port "$ns_port" --data-dir "$data"
        --flush "$FLUSH" -c "$WORK/saturn-master.conf")
    local scmd=(ip netns exec "$NETNS" "$BROKER" -c "$WORK/saturn-slave.conf" --shards 1 --no-pin)
    echo "${bcmd[*]#"$ROOT/"}  # master.conf: brokerRole=$role" >>"$RUN/commands.txt"
    echo "${scmd[*]}" | sed "s|$ROOT/||g" >>"$RUN/commands.txt"
    log "$label round $round: Saturn master :$port (core $BROKER_CORE), slave $SLAVE_ADDR in $NETNS"
    "${bcmd[@]}" >"$RUN/$label-$round.log" 2>&1 &
    local bpid=$!
    PIDS+=("$bpid")
    "${scmd[@]}" >"$RUN/$label-slave-$round.log" 2>&1 &
    local spid=$!
    PIDS+=("$spid")
    if wait_registered "127.0.0.1:$ns_port" "127.0.0.1:$port" 30 &&
        wait_registered "127.0.0.1:$ns_port" "$SLAVE_ADDR" 30; then
        repl_workloads saturn "$role" "$round" "127.0.0.1:$ns_port" "$bpid" "127.0.0.1:$port"
    else
        fail_note "$label did not start in round $round: $(tail -c 400 "$RUN/$label-$round.log") / $(tail -c 400 "$RUN/$label-slave-$round.log")"
    fi
    stop_pid "$spid"
    stop_pid "$bpid"
    rm -rf "$data" "$sdata"
}

# The slave's broker.conf next to the master's (java_conf), name server on every address.
java_slave_conf() {
    local v=$1 home=$2 shome=$3 ns_port=$4 port=$5
    printf 'listenPort=%s\n' "$ns_port" >"$home/conf/namesrv.conf"
    sed -i -e '/^bindAddress=/d' -e "s/^brokerRole=.*/brokerRole=$ROLE_NOW/" "$home/conf/broker.conf"
    cat >"$shome/conf/broker.conf" <<CONF
brokerClusterName=DefaultCluster
brokerName=ref-$v
brokerId=1
brokerRole=SLAVE
flushDiskType=$FLUSH
namesrvAddr=$NS_HOST_IP:$ns_port
brokerIP1=$NS_SLAVE_IP
listenPort=10911
haListenPort=10912
haMasterAddress=$NS_HOST_IP:$((port + 1))
storePathRootDir=$shome/store
storePathCommitLog=$shome/store/commitlog
CONF
}

repl_java() {
    local role=$1 round=$2 v=4.9.7 sys=java-4.9.7
    local ns_port=$((22300 + PORT_OFFSET + round)) port=$((22350 + PORT_OFFSET + 10 * round))
    local home="$ROOT/$WORK/$sys" shome="$ROOT/$WORK/$sys-slave" lib="$JAVA_CACHE/ref-$v/lib" label="$sys+$role"
    rm -rf "$home" "$shome"
    mkdir -p "$home/conf" "$home/store" "$home/logs" "$shome/conf" "$shome/store" "$shome/logs"
    ROLE_NOW=$role
    java_conf "$v" "$home" "$ns_port" "$port"
    java_slave_conf "$v" "$home" "$shome" "$ns_port" "$port"
    java_logback_49 "$home"
    java_logback_49 "$shome"
    local ncmd=(taskset -c "$BROKER_CORE" java -server -Xms256m -Xmx256m "${JDK17[@]}" -Duser.home="$home"
        -cp "$lib/*" org.apache.rocketmq.namesrv.NamesrvStartup -c "$home/conf/namesrv.conf")
    local jvm=(-XX:+UseG1GC -XX:G1HeapRegionSize=16m -XX:G1ReservePercent=25 -XX:InitiatingHeapOccupancyPercent=30
        -XX:SoftRefLRUPolicyMSPerMB=0 "${JDK17[@]}")
    local bcmd=(taskset -c "$BROKER_CORE" java -server -Xms2g -Xmx2g -XX:MaxDirectMemorySize=2g "${jvm[@]}"
        -Duser.home="$home" -cp "$lib/*" org.apache.rocketmq.broker.BrokerStartup -c "$home/conf/broker.conf")
    local scmd=(ip netns exec "$NETNS" java -server -Xms1g -Xmx1g -XX:MaxDirectMemorySize=1g "${jvm[@]}"
        -Duser.home="$shome" -cp "$lib/*" org.apache.rocketmq.broker.BrokerStartup -c "$shome/conf/broker.conf")
    {
        echo "cat $WORK/$sys/conf/broker.conf $WORK/$sys-slave/conf/broker.conf  # shown in the report"
        for c in ncmd bcmd scmd; do
            local -n arr=$c
            echo "ROCKETMQ_HOME=... ${arr[*]}" | sed "s|$ROOT/||g"
        done
    } >>"$RUN/commands.txt"
    [ "$round" != 1 ] || cat "$home/conf/broker.conf" "$shome/conf/broker.conf" >"$RUN/$label-broker.conf"
    log "$label round $round: RocketMQ $v name server :$ns_port, master :$port (core $BROKER_CORE), slave $SLAVE_ADDR in $NETNS"
    ROCKETMQ_HOME="$home" timeout 3600 "${ncmd[@]}" >"$RUN/$label-namesrv-$round.log" 2>&1 &
    local npid=$!
    PIDS+=("$npid")
    sleep 3
    ROCKETMQ_HOME="$home" timeout 3600 "${bcmd[@]}" >"$RUN/$label-broker-$round.log" 2>&1 &
    local bpid=$!
    PIDS+=("$bpid")
    ROCKETMQ_HOME="$shome" timeout 3600 "${scmd[@]}" >"$RUN/$label-slave-$round.log" 2>&1 &
    local spid=$!
    PIDS+=("$spid")
    local jpid=""
    if wait_registered "127.0.0.1:$ns_port" "127.0.0.1:$port" 90 && wait_registered "127.0.0.1:$ns_port" "$SLAVE_ADDR" 90 &&
        jpid=$(pgrep -P "$bpid" java); then
        PIDS+=("$jpid")
        repl_workloads "$sys" "$role" "$round" "127.0.0.1:$ns_port" "$jpid" "127.0.0.1:$port"
    else
        fail_note "$label did not start in round $round: $(tail -n 10 "$RUN/$label-broker-$round.log") / $(tail -n 10 "$RUN/$label-slave-$round.log")"
    fi
    tree_stop "$spid"
    tree_stop "$bpid"
    tree_stop "$npid"
    rm -rf "$home/store" "$shome/store"
}

repl_report() {
    python3 - "$RUN" "$OUT" "$TAG" "$SECS" "$QUEUES" "$FLUSH" <<'PY'
import json, os, sys
run, out, tag, secs, queues, flush = sys.argv[1:7]

def load(p):
    try:
        return json.load(open(p))
    except (OSError, ValueError):
        return None

def text(p):
    return open(p).read().strip() if os.path.exists(p) else ""

NAME = {"saturn": "Saturn", "java-4.9.7": "RocketMQ 4.9.7"}
rows, raw = [], []
for line in text(f"{run}/repl.tsv").splitlines():
    sys_, role, rnd, wid = line.split("\t")
    base = f"{run}/{sys_}+{role}-{rnd}-{wid}"
    reps = load(base + ".json") or []
    rep = reps[0] if reps else None
    lag = load(base + ".lag.json") or {}
    level = load(base + ".level.json") or {}
    r = {"system": sys_, "role": role, "round": int(rnd), "id": wid, "report": rep, "lag": lag, "level": level,
         "load": text(base + ".load"), "command": "saturn-bench " + text(base + ".cmd"),
         "stderr_tail": text(base + ".err")[-400:]}
    raw.append(r)
json.dump({"runs": raw, "commands": text(f"{run}/commands.txt").splitlines(),
           "failures": text(f"{run}/failures.txt"), "machine": load(f"{run}/machine.json")},
          open(f"{out}/{tag}-peer-repl.json", "w"), indent=1)
m = load(f"{run}/machine.json") or {}
md = [f"# Master/slave replication: Saturn beside Apache RocketMQ 4.9.7 ({tag})\n",
      f"Written by `BENCH_WORKLOADS=repl scripts/bench-peer`. {flush} on both brokers of every pair; the master "
      "on core 0 (Saturn: one shard; RocketMQ: name server and broker under `taskset -c 0`), saturn-bench on "
      "core 1, the slave not pinned, in its own network namespace behind a veth pair (10.213.250.1 ↔ .2), "
      "given the master's HA address with `haMasterAddress`. Each pair starts fresh and gets the warm-up "
      f"(not counted), then W1 (single 1 KiB sends) and W2 (batches of 64 × 1 KiB), 4 connections × 64 in "
      f"flight, {secs} s each, {queues} queues. *lag*: `scripts/repl-probe lag`, every 20 ms the time from "
      "reading the master's commitLogMaxOffset until the slave's reaches it. *load*: load average at the "
      "start of the run (the machine is shared).\n",
      f"Machine: {m.get('nproc')} cores, {m.get('cpu', '')}, Saturn {m.get('saturn_commit', '')}, "
      f"{m.get('java', '')}, {m.get('date_utc', '')}.\n",
      "*before*: the bytes the slave was behind when the run was due (what the warm-up or W1 left), "
      "and the seconds it took to be level (MB/s).\n",
      "| system | role | round | workload | msg/s | MB/s | p50 ms | p99 ms | errors | lag p50 / p99 / max ms | before | load |",
      "|---|---|---:|---|---:|---:|---:|---:|---|---|---|---|"]
for r in raw:
    rep, lag = r["report"], r["lag"]
    lags = (f"{lag['p50_ms']:.2f} / {lag['p99_ms']:.2f} / {lag['max_ms']:.2f}" if lag.get("samples") else "–")
    if lag.get("answer_p50_ms") is not None:
        lags += f"; from the master's answer {lag['answer_p50_ms']:.2f} / {lag['answer_p99_ms']:.2f}"
    lv = r["level"]
    before = "–"
    if lv.get("bytes") is not None and lv.get("seconds") is not None:
        before = f"{lv['bytes'] / 1e6:,.0f} MB in {lv['seconds']:.1f} s"
        if lv["bytes"] > 50e6:
            before += f" ({lv['mb_per_sec']:,.0f} MB/s)"
    if not rep:
        md.append(f"| {NAME[r['system']]} | {r['role']} | {r['round']} | {r['id']} | failed | | | | "
                  f"{r['stderr_tail'][-120:].replace('|', '/').replace(chr(10), ' ')} | {lags} | {before} | {r['load']} |")
        continue
    lat = rep["latency"]
    errs = ", ".join(f"{k}: {v}" for k, v in rep.get("errors", {}).items()) or "none"
    md.append(f"| {NAME[r['system']]} | {r['role']} | {r['round']} | {r['id']} | {rep['messages_per_sec']:,.0f} | "
              f"{rep['mb_per_sec']:,.1f} | {lat['p50_us'] / 1000:.2f} | {lat['p99_us'] / 1000:.2f} | {errs} | "
              f"{lags} | {before} | {r['load']} |")
md.append("")
md.append("SYNC_MASTER as a fraction of ASYNC_MASTER (same system, same round):\n")
md.append("| system | round | W1 | W2 |")
md.append("|---|---:|---:|---:|")
def get(s, role, rnd, wid):
    for r in raw:
        if (r["system"], r["role"], r["round"], r["id"]) == (s, role, rnd, wid) and r["report"]:
            return r["report"]["messages_per_sec"]
for s in NAME:
    for rnd in sorted({r["round"] for r in raw}):
        cells = []
        for wid in ("W1", "W2"):
            a, b = get(s, "ASYNC_MASTER", rnd, wid), get(s, "SYNC_MASTER", rnd, wid)
            cells.append(f"{100 * b / a:.0f} %" if a and b else "–")
        md.append(f"| {NAME[s]} | {rnd} | {cells[0]} | {cells[1]} |")
md.append("")
if text(f"{run}/failures.txt"):
    md += ["## Failures\n", "```", text(f"{run}/failures.txt"), "```\n"]
md += ["## Commands\n", "```"] + text(f"{run}/commands.txt").splitlines() + ["```\n"]
for f in sorted(os.listdir(run)):
    if f.endswith("-broker.conf"):
        md += [f"`{f}` (master, then slave):\n", "```", text(f"{run}/{f}"), "```\n"]
open(f"{out}/{tag}-peer-repl.md", "w").write("\n".join(md))
print(f"{out}/{tag}-peer-repl.md")
PY
}

if ! netns_up; then
    fail_note "network namespaces are not permitted here: no master/slave runs"
    exit 1
fi
trap 'cleanup; netns_down' EXIT
for round in $(seq 1 "$ROUNDS"); do
    for role in $REPL_ROLES; do
        for sys in $SYSTEMS; do
            case "$sys" in
                saturn) repl_saturn "$role" "$round" ;;
                java-4.9.7) repl_java "$role" "$round" ;;
                *) log "$sys: no master/slave run (saturn and java-4.9.7 only)" ;;
            esac
        done
    done
done
repl_report
exit 0
