# Sourced by scripts/bench-modes and scripts/bench-peer: a network namespace for a slave broker,
# behind a veth pair, so that replication crosses a real TCP path (traffic stays on this machine).
# Names srn-b<pid> (the namespace), srn-b<pid>h (root side of the pair, 10.213.250.1/30, or
# 251-254 when taken), srn-b<pid>s (slave side, .2). netns_up first deletes what a killed earlier run
# left (names whose pid is gone); the caller runs netns_down on exit. Needs `log`.
NETNS="srn-b$$"
NS_HOST_IF="srn-b$$h"
# The first of 10.213.250-254.0/30 no interface uses yet (two runs at once do not share a subnet).
NS_NET=10.213.250
for n in 250 251 252 253 254; do
    ip -o addr show 2>/dev/null | grep -q " 10\.213\.$n\." || { NS_NET=10.213.$n; break; }
done
NS_HOST_IP=$NS_NET.1
NS_SLAVE_IP=$NS_NET.2
NETNS_MADE=0
netns_sweep() {
    local n pid
    for n in $(ip netns list 2>/dev/null | awk '{print $1}' | grep '^srn-b' || true); do
        pid=${n#srn-b}
        [ -d "/proc/$pid" ] || { log "deleting leftover namespace $n"; ip netns del "$n" || true; }
    done
    for n in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep '^srn-b' || true); do
        pid=${n#srn-b}
        pid=${pid%h}
        [ -d "/proc/$pid" ] || { log "deleting leftover link $n"; ip link del "$n" || true; }
    done
}
netns_up() {
    netns_sweep
    ip netns add "$NETNS" || return 1
    NETNS_MADE=1
    ip link add "$NS_HOST_IF" type veth peer name "${NETNS}s" &&
        ip link set "${NETNS}s" netns "$NETNS" &&
        ip addr add "$NS_HOST_IP/30" dev "$NS_HOST_IF" &&
        ip link set "$NS_HOST_IF" up &&
        ip netns exec "$NETNS" ip addr add "$NS_SLAVE_IP/30" dev "${NETNS}s" &&
        ip netns exec "$NETNS" ip link set "${NETNS}s" up &&
        ip netns exec "$NETNS" ip link set lo up
}
netns_down() {
    [ "$NETNS_MADE" = 1 ] || return 0
    ip link del "$NS_HOST_IF" 2>/dev/null || true
    ip netns del "$NETNS" 2>/dev/null || true
}
