#!/usr/bin/env bash
# Start a real single-node SLURM 22.05 cluster on THIS machine, for the SLURM tests (`pytest -m slurm`) and for
# trying `snakemake --profile slurm` on one machine. Not for a real cluster: there, SLURM is already running.
# Debian 12, as root, no systemd needed: installs the Debian packages if missing, then starts munge, MariaDB +
# slurmdbd (so that `sacct` works), slurmctld and slurmd, with FAKE_GPUS fake `gres/gpu` devices (clones of
# /dev/null: jobs get CUDA_VISIBLE_DEVICES, but there is no CUDA behind it, so the code runs on the CPU).
# Stop it with slurm/cluster-down.sh (every daemon by its PID file).
#
# Env knobs: FAKE_GPUS=2 (number of fake GPUs), WITH_DBD=1 (slurmdbd + MariaDB; 0 = no accounting, then the
#            profile needs `slurm-status-command: squeue`), FAKEDEV_DIR (where the fake device nodes go),
#            APT_OPTS (extra apt-get options),
#            MEM_ENFORCE=auto (how a job's --mem is enforced, so that a job over it is killed and ends
#            OUT_OF_MEMORY: `cgroup` = the kernel's memory cgroup (task/cgroup + proctrack/cgroup, cgroup v1,
#            ConstrainRAMSpace), `poll` = slurmstepd samples each step's memory every second and kills a step
#            over its limit (JobAcctGatherParams=OverMemoryKill; works without any cgroup, but SLURM 22.05 then
#            records the job FAILED, its batch step "CANCELLED by 0", not OUT_OF_MEMORY), `none` = not
#            enforced; `auto` = cgroup where a v1 memory cgroup can be created here, else poll, and poll again
#            if slurmd does not come up with cgroup).
# Exit codes: 0 up, 2 not root or not Debian/apt, 3 the packages could not be installed, 1 anything else.
set -euo pipefail
WITH_DBD=${WITH_DBD:-1}
FAKE_GPUS=${FAKE_GPUS:-2}
FAKEDEV_DIR=${FAKEDEV_DIR:-/tmp/fake-gpu-devices}
APT_OPTS=${APT_OPTS:-}
MEM_ENFORCE=${MEM_ENFORCE:-auto}
case "$MEM_ENFORCE" in auto|cgroup|poll|none) ;; *)
  echo "cluster-up.sh: MEM_ENFORCE=$MEM_ENFORCE: use auto, cgroup, poll or none" >&2; exit 1;; esac
HERE=$(cd "$(dirname "$0")" && pwd)
export DEBIAN_FRONTEND=noninteractive
ms() { echo $(( $(date +%s%N) / 1000000 )); }
T0=$(ms); lap() { t=$(( $(ms) - T0 )); printf '[%4d.%ds] %s\n' $((t / 1000)) $((t % 1000 / 100)) "$*"; }

[ "$(id -u)" = 0 ] || { echo "cluster-up.sh: needs root (installs packages, starts daemons)" >&2; exit 2; }
command -v dpkg-query >/dev/null && command -v apt-get >/dev/null \
  || { echo "cluster-up.sh: needs a Debian system with apt-get" >&2; exit 2; }

# --- 0. a cluster left running (or half-started) by an earlier call: stop it first, by PID file
"$HERE/cluster-down.sh" >/dev/null 2>&1 || true

# --- 1. packages (only when missing: apt-get update alone takes seconds)
PKGS="munge slurmctld slurmd slurm-client"
[ "$WITH_DBD" = 1 ] && PKGS="$PKGS slurmdbd mariadb-server"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  # never let apt try to start the services (there is no systemd); harmless if it already exists
  [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; }
  { apt-get $APT_OPTS update -q >/dev/null && apt-get $APT_OPTS install -y -q --no-install-recommends $missing >/dev/null; } \
    || { echo "cluster-up.sh: could not install:$missing" >&2; exit 3; }
  lap "apt-get install$missing"
else
  lap "packages already installed"
fi

HOST=$(hostname -s); NCPU=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)  # nproc obeys OMP_NUM_THREADS
MEM=$(( $(awk '/MemTotal/{print int($2/1024)}' /proc/meminfo) - 1024 ))

# --- 2. munge
[ -s /etc/munge/munge.key ] || runuser -u munge -- mungekey --create
install -d -o munge -g munge -m 0755 /run/munge
runuser -u munge -- /usr/sbin/munged          # forks; pid in /run/munge/munged.pid
munge -n | unmunge >/dev/null
lap "munged up"

# --- 3. slurm.conf (+ gres.conf)
install -d -o slurm -g slurm /var/lib/slurm/slurmctld /var/lib/slurm/slurmd /var/log/slurm
GRES_NODE=""; GRES_GLOBAL=""
rm -f /etc/slurm/gres.conf
if [ "$FAKE_GPUS" -gt 0 ]; then
  install -d "$FAKEDEV_DIR"
  for i in $(seq 0 $((FAKE_GPUS-1))); do [ -c "$FAKEDEV_DIR/nvidia$i" ] || mknod "$FAKEDEV_DIR/nvidia$i" c 1 3; done
  GRES_NODE="Gres=gpu:${FAKE_GPUS}"; GRES_GLOBAL="GresTypes=gpu"
  printf 'AutoDetect=off\nNodeName=%s Name=gpu File=%s/nvidia[0-%d]\n' "$HOST" "$FAKEDEV_DIR" $((FAKE_GPUS-1)) > /etc/slurm/gres.conf
fi
if [ "$WITH_DBD" = 1 ]; then
  ACCT="JobAcctGatherType=jobacct_gather/linux
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageTRES=gres/gpu
AccountingStoreFlags=job_comment"
else
  ACCT="AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/linux"     # still samples memory, for MEM_ENFORCE=poll
fi
# memory enforcement (MEM_ENFORCE above): a cgroup v1 memory controller we can write to, or polling
cgroup_v1_ok() {
  local d=/sys/fs/cgroup/memory/coop-cluster-up-probe.$$
  [ "$(stat -fc %T /sys/fs/cgroup 2>/dev/null)" = tmpfs ] && mkdir "$d" 2>/dev/null && rmdir "$d"
}
if [ "$MEM_ENFORCE" = auto ]; then
  if cgroup_v1_ok; then MEM_ENFORCE=cgroup; MEM_FALLBACK=poll; else MEM_ENFORCE=poll; fi
fi
write_slurm_conf() {   # $1 = cgroup | poll | none
  rm -f /etc/slurm/cgroup.conf
  case "$1" in
    cgroup) MEMCONF="ProctrackType=proctrack/cgroup
TaskPlugin=task/cgroup
# memory use is sampled for sacct's MaxRSS; the kernel enforces the limit
JobAcctGatherFrequency=task=5"
      printf 'CgroupPlugin=cgroup/v1\nCgroupMountpoint=/sys/fs/cgroup\nConstrainRAMSpace=yes\nConstrainSwapSpace=yes\nAllowedSwapSpace=0\nConstrainCores=no\nConstrainDevices=no\n' \
        > /etc/slurm/cgroup.conf ;;
    poll) MEMCONF="ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# every second, slurmstepd sums each step's processes' memory and kills a step over its --mem (sacct: the job
# FAILED, its step "CANCELLED by 0"); a burst shorter than a second may pass unseen
JobAcctGatherFrequency=task=1
JobAcctGatherParams=OverMemoryKill" ;;
    none) MEMCONF="ProctrackType=proctrack/linuxproc
TaskPlugin=task/none" ;;
  esac
cat > /etc/slurm/slurm.conf <<EOF
# Written by coop-bench's slurm/cluster-up.sh: a single-node test cluster.
ClusterName=ci
SlurmctldHost=${HOST}(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
${MEMCONF}
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# without it, a job that asks no memory takes the whole node
DefMemPerCPU=1000
# >= 3 * the plugin's slurm-init-seconds-before-status-checks (default 40 s), so 'squeue' polling is safe too
MinJobAge=600
${GRES_GLOBAL}
${ACCT}
NodeName=${HOST} NodeAddr=127.0.0.1 CPUs=${NCPU} RealMemory=${MEM} ${GRES_NODE} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}
write_slurm_conf "$MEM_ENFORCE"

# --- 4. accounting: MariaDB + slurmdbd
if [ "$WITH_DBD" = 1 ]; then
  install -d -o mysql -g root -m 0755 /run/mysqld
  nohup /usr/sbin/mariadbd --user=mysql --pid-file=/run/mysqld/mysqld.pid \
        --socket=/run/mysqld/mysqld.sock --bind-address=127.0.0.1 >/var/log/slurm/mariadb.out 2>&1 &
  for i in $(seq 60); do mariadb-admin ping >/dev/null 2>&1 && break; sleep 0.5; done
  mariadb -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
              CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurmdbpass';
              GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
  lap "mariadb up"
  cat > /etc/slurm/slurmdbd.conf <<EOF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=slurm
LogFile=/var/log/slurm/slurmdbd.log
PidFile=/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=slurm_acct_db
StorageUser=slurm
StoragePass=slurmdbpass
EOF
  chown slurm:slurm /etc/slurm/slurmdbd.conf; chmod 600 /etc/slurm/slurmdbd.conf
  /usr/sbin/slurmdbd                            # forks; pid in /run/slurmdbd.pid
  for i in $(seq 60); do sacctmgr -n show cluster >/dev/null 2>&1 && break; sleep 0.5; done
  lap "slurmdbd up"
fi

# --- 5. controller + compute daemon
/usr/sbin/slurmctld -c     # forks; pid in /run/slurmctld.pid; -c: forget the jobs of an earlier cluster
/usr/sbin/slurmd                                # forks; pid in /run/slurmd.pid
for i in $(seq 60); do sinfo -h -o %T 2>/dev/null | grep -qx idle && break; sleep 0.5; done
if ! sinfo -h -o %T | grep -qx idle && [ -n "${MEM_FALLBACK:-}" ]; then
  lap "slurmd did not come up with MEM_ENFORCE=$MEM_ENFORCE; restarting it with $MEM_FALLBACK"
  "$HERE/cluster-down.sh" >/dev/null 2>&1 || true
  MEM_ENFORCE=$MEM_FALLBACK; write_slurm_conf "$MEM_ENFORCE"
  runuser -u munge -- /usr/sbin/munged
  [ "$WITH_DBD" = 1 ] && { nohup /usr/sbin/mariadbd --user=mysql --pid-file=/run/mysqld/mysqld.pid \
        --socket=/run/mysqld/mysqld.sock --bind-address=127.0.0.1 >>/var/log/slurm/mariadb.out 2>&1 &
    for i in $(seq 60); do mariadb-admin ping >/dev/null 2>&1 && break; sleep 0.5; done; /usr/sbin/slurmdbd
    for i in $(seq 60); do sacctmgr -n show cluster >/dev/null 2>&1 && break; sleep 0.5; done; }
  /usr/sbin/slurmctld -c; /usr/sbin/slurmd
  for i in $(seq 60); do sinfo -h -o %T 2>/dev/null | grep -qx idle && break; sleep 0.5; done
fi
sinfo -h -o %T | grep -qx idle || { tail -n 30 /var/log/slurm/*.log; exit 1; }
lap "slurmctld+slurmd up, node idle ($NCPU CPUs, ${MEM} MB, $FAKE_GPUS fake GPUs, memory enforced: $MEM_ENFORCE)"

# --- 6. smoke test
jid=$(srun -N1 -n1 sh -c 'echo $SLURM_JOB_ID')
if [ "$WITH_DBD" = 1 ]; then
  for i in $(seq 20); do sacct -n -X -j "$jid" -o State | grep -q COMPLETED && break; sleep 0.5; done
  sacct -n -X -j "$jid" -o State | grep -q COMPLETED || { echo "cluster-up.sh: sacct does not show job $jid" >&2; exit 1; }
fi
lap "smoke test ok (srun$( [ "$WITH_DBD" = 1 ] && echo " + sacct"))"
# --- 7. memory enforcement: a job that takes 300 MB under --mem=50M is killed and ends OUT_OF_MEMORY
if [ "$MEM_ENFORCE" != none ] && [ "$WITH_DBD" = 1 ]; then
  jid=$(sbatch --parsable -o /dev/null --mem=50M --wrap 'python3 -c "x = bytearray(300 * 2**20); import time; time.sleep(10)"')
  for i in $(seq 60); do sacct -n -X -j "$jid" -o State | grep -qE 'OUT_OF_ME|COMPLETED|FAILED' && break; sleep 0.5; done
  st=$(sacct -n -X -j "$jid" -o State%20 | tr -d ' ')
  if [ "$st" = OUT_OF_MEMORY ]; then lap "memory enforced ($MEM_ENFORCE): job $jid over --mem=50M ended $st"
  else echo "cluster-up.sh: note: with MEM_ENFORCE=$MEM_ENFORCE, job $jid over --mem=50M ended '$st', not OUT_OF_MEMORY" >&2; fi
fi
