#!/bin/bash
# A one-node Slurm cluster on localhost, for the tests: munged, slurmctld and slurmd from
# Debian's slurm-wlm and munge, all under DIR (their keys, sockets, state, logs), on ports of
# their own, so that nothing of the machine's own Slurm (if any) is touched.
#   tests/slurm/cluster.sh start DIR [CPUS]   -> prints `export SLURM_CONF=DIR/slurm.conf`
#   tests/slurm/cluster.sh stop DIR
# Root runs the daemons as root (SlurmUser=root); another user runs them as itself.
set -euo pipefail
cmd="${1:?usage: cluster.sh start|stop DIR [CPUS]}"
dir="${2:?usage: cluster.sh start|stop DIR [CPUS]}"
cpus="${3:-2}"

stop() {
  for pidfile in "$dir/slurmd.pid" "$dir/slurmctld.pid" "$dir/munged.pid"; do
    [ -f "$pidfile" ] || continue
    pid="$(cat "$pidfile" 2>/dev/null || true)"
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
  sleep 1
  for pidfile in "$dir/slurmd.pid" "$dir/slurmctld.pid" "$dir/munged.pid"; do
    [ -f "$pidfile" ] || continue
    pid="$(cat "$pidfile" 2>/dev/null || true)"
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
    rm -f "$pidfile"
  done
}

if [ "$cmd" = stop ]; then
  stop
  exit 0
fi
[ "$cmd" = start ] || { echo "cluster.sh: unknown command $cmd" >&2; exit 2; }
for tool in munged slurmctld slurmd sbatch; do
  command -v "$tool" > /dev/null || {
    echo "cluster.sh: $tool is missing; install Debian's slurmctld slurmd slurm-client munge" >&2
    exit 3
  }
done

mkdir -p "$dir"/{state,spool,munge}
chmod 700 "$dir/munge"
user="$(id -un)"
# A free port pair above 20000 (slurmctld, slurmd).
port=$((20000 + RANDOM % 20000))
while ss -ltn 2>/dev/null | grep -q ":$port \|:$((port + 1)) "; do port=$((port + 2)); done

# munge: its own key and socket (munged refuses root unless forced).
dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$dir/munge/munge.key"
force=()
[ "$(id -u)" = 0 ] && force=(--force)
munged "${force[@]}" --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
  --pid-file="$dir/munged.pid" --log-file="$dir/munged.log" --seed-file="$dir/munge/seed"

memory="$(awk '/MemTotal/ {print int($2 / 1024 / 2)}' /proc/meminfo)"
cat > "$dir/slurm.conf" << EOF
ClusterName=gemeltest
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=$user
SlurmdUser=$user
SlurmctldPort=$port
SlurmdPort=$((port + 1))
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobRequeue=1
MinJobAge=600
InactiveLimit=0
KillWait=10
SlurmctldTimeout=30
SlurmdTimeout=60
NodeName=gemelnode NodeAddr=127.0.0.1 NodeHostname=$(hostname -s) CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=gemelnode Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$dir/slurm.conf"
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF" -N gemelnode
# Up when the node is idle.
for _ in $(seq 1 60); do
  state="$(sinfo -h -n gemelnode -o %T 2>/dev/null || true)"
  [ "$state" = idle ] && break
  sleep 1
done
if [ "${state:-}" != idle ]; then
  echo "cluster.sh: the node did not come up (state '${state:-none}'); logs in $dir" >&2
  tail -n 20 "$dir/slurmctld.log" "$dir/slurmd.log" >&2 || true
  stop
  exit 1
fi
echo "export SLURM_CONF=$SLURM_CONF"
