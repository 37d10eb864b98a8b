#!/usr/bin/env bash
# Stop the single-node test cluster that slurm/cluster-up.sh started (for the SLURM tests and for trying the
# profile on one machine): every daemon by its own PID file, never by name, waiting until each has exited.
# Safe to run when nothing is running. Run as root.
# Then it moves aside the slurm.conf that cluster-up.sh wrote (cluster-up.sh writes a new one): while SLURM is
# installed but down, `scontrol` waits ~10 s for the controller, and the Snakemake SLURM plugin runs it when it
# is loaded, i.e. on every `snakemake` call, local ones too; without a slurm.conf it fails at once.
ms() { echo $(( $(date +%s%N) / 1000000 )); }
# jobs still queued or running (e.g. a test interrupted mid-run) are cancelled first, so that slurmd ends
# their processes instead of leaving them orphaned
if [ -s /run/slurmctld.pid ] && kill -0 "$(cat /run/slurmctld.pid)" 2>/dev/null; then
  jobs=$(squeue -h -o %A 2>/dev/null)
  if [ -n "$jobs" ]; then
    scancel $jobs && echo "cancelled jobs:" $jobs
    for i in $(seq 60); do [ -z "$(squeue -h -o %A 2>/dev/null)" ] && break; sleep 0.5; done
  fi
fi
for entry in slurmd:/run/slurmd.pid slurmctld:/run/slurmctld.pid slurmdbd:/run/slurmdbd.pid \
             mariadbd:/run/mysqld/mysqld.pid munged:/run/munge/munged.pid; do
  name=${entry%%:*}; f=${entry#*:}
  [ -s "$f" ] || continue
  p=$(cat "$f")
  # a stale PID file whose number now belongs to another program: leave that program alone
  if [ "$(cat "/proc/$p/comm" 2>/dev/null)" != "$name" ]; then rm -f "$f"; continue; fi
  t0=$(ms)
  kill "$p" 2>/dev/null
  for i in $(seq 120); do kill -0 "$p" 2>/dev/null || break; sleep 0.25; done
  if kill -0 "$p" 2>/dev/null; then
    kill -9 "$p" 2>/dev/null; echo "killed $name ($p) after 30 s"
  else
    t=$(( $(ms) - t0 )); printf 'stopped %s (%s) in %d.%d s\n' "$name" "$p" $((t / 1000)) $((t % 1000 / 100))
  fi
  rm -f "$f"   # a stale /run/slurmctld.pid makes 'apt-get purge slurmctld' fail (prerm runs scancel)
done
if grep -qs "Written by coop-bench's slurm/cluster-up.sh" /etc/slurm/slurm.conf; then
  mv /etc/slurm/slurm.conf /etc/slurm/slurm.conf.down
fi
exit 0
