#!/bin/bash
# Rehearse tools/slurm/sweep.sbatch for real on a one-host SLURM cluster: a tiny sweep submitted with a 5-minute
# time limit must be stopped by SIGUSR1, requeued, resumed, and finish with every trial complete and no MLflow
# run duplicated. Needs root and the Debian packages: apt-get install -y slurm-wlm munge
#
#   tools/slurm/rehearse.sh [FOLDER]        (run from the project's virtual environment; FOLDER: a new temp folder)
#
# It starts munged, slurmctld and slurmd only when they are not running (writing /etc/slurm/slurm.conf when there
# is none) and stops, by PID, only the daemons it started. Every wait has a time limit.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=${1:-$(mktemp -d /tmp/srloss-slurm.XXXXXX)}
mkdir -p "$work"
work=$(cd "$work" && pwd)
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
started=()
job=""
cleanup() {
    [ -n "$job" ] && timeout 30 scancel "$job" 2> /dev/null || true
    for pid in "${started[@]}"; do kill "$pid" 2> /dev/null || true; done
}
trap cleanup EXIT
fail() { echo "rehearsal FAILED: $*"; exit 1; }
for tool in slurmctld slurmd sbatch munged; do
    command -v "$tool" > /dev/null || { echo "$tool is missing: apt-get install -y slurm-wlm munge"; exit 2; }
done

if ! timeout 10 munge -n > /dev/null 2>&1; then
    mkdir -p /run/munge /var/log/munge && chown munge: /run/munge /var/log/munge
    [ -f /etc/munge/munge.key ] || mungekey -c
    su -s /bin/sh munge -c /usr/sbin/munged
    started+=($(cat /run/munge/munged.pid))
fi
if [ ! -f /etc/slurm/slurm.conf ]; then
    memory=$(( $(free -m | awk '/^Mem:/ {print $7}') * 8 / 10 ))
    mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
    cat > /etc/slurm/slurm.conf << CONF
ClusterName=local
SlurmctldHost=$(hostname)
SlurmUser=root
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=$(hostname) CPUs=$(nproc) RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=$(hostname) Default=YES MaxTime=INFINITE State=UP
CONF
fi
if ! timeout 10 scontrol ping 2> /dev/null | grep -q "is UP"; then
    slurmctld
    timeout 30 bash -c 'until [ -s /run/slurmctld.pid ]; do sleep 0.5; done'
    started+=($(cat /run/slurmctld.pid))
fi
if ! timeout 10 sinfo -h -o %T 2> /dev/null | grep -qE "idle|mix|alloc"; then
    slurmd
    timeout 30 bash -c 'until [ -s /run/slurmd.pid ]; do sleep 0.5; done'
    started+=($(cat /run/slurmd.pid))
fi
timeout 60 bash -c 'until sinfo -h -o %T | grep -qE "idle|mix"; do sleep 1; done' || fail "the node is not idle: $(sinfo)"

python - "$work" "$root" << 'PY'
import subprocess, sys
from pathlib import Path
import yaml
sys.path.insert(0, f"{sys.argv[2]}/tools")
from tiny_study import tiny_params
import numpy as np
from pipeline.imageio import write_png

folder = Path(sys.argv[1])
rng = np.random.default_rng(0)
for index in range(2):
    write_png(folder / "benchmark" / f"img{index}.png", rng.integers(0, 256, (48, 40, 3), dtype=np.uint8))
params = tiny_params(folder)
params["train"].update(iterations=200, val_every=20, checkpoint_every=20)
params["sweep"].update(reports=10)
(folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
for command in ("prepare", "degrade"):
    subprocess.run([sys.executable, "-m", "pipeline", "-q", command, "--params", str(folder / "params.yaml")],
                   check=True, stdout=subprocess.DEVNULL)
PY

begin=$(date +%s)
cd "$work"
job=$(timeout 30 sbatch --parsable --time=5 --signal=B:USR1@60 --output="$work/slurm-%j.out" \
      "$root/tools/slurm/sweep.sbatch" python -m pipeline -q sweep --params "$work/params.yaml" --resume auto)
echo "submitted job $job (time limit 5 min, SIGUSR1 60 s before it)"
state=""
deadline=$((begin + 2400))
while [ "$(date +%s)" -lt "$deadline" ]; do
    info=$(timeout 10 scontrol show job "$job" 2> /dev/null || true)
    state=$(grep -o "JobState=[A-Z_]*" <<< "$info" | cut -d= -f2)
    restarts=$(grep -o "Restarts=[0-9]*" <<< "$info" | cut -d= -f2)
    case "$state" in COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY) break ;; esac
    sleep 5
done
seconds=$(( $(date +%s) - begin ))
grep "^srloss:" "$work/slurm-$job.out" || true
[ "$state" = COMPLETED ] || fail "job $job ended $state after $seconds s; see $work/slurm-$job.out"
[ "${restarts:-0}" -ge 1 ] || fail "job $job was never requeued (its time limit came after the sweep finished)"
python - "$work" << 'PY'
import csv, sys
from pathlib import Path
import mlflow
folder = Path(sys.argv[1])
rows = list(csv.DictReader((folder / "results" / "sweep" / "trials.csv").open()))
assert rows and {row["status"] for row in rows} == {"COMPLETED"}, [(r["trial_id"], r["status"]) for r in rows]
client = mlflow.MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
assert len(parents) == 1 and parents[0].info.status == "FINISHED", [(r.info.run_id, r.info.status) for r in parents]
ids = [r.data.tags["sweep.trial_id"] for r in children]
assert sorted(ids) == sorted(row["trial_id"] for row in rows), (ids, rows)  # one run per trial: none duplicated
assert {r.info.status for r in children} == {"FINISHED"}
resumed = [r for r in children if int(r.data.tags.get("resumed_from_iteration", 0)) > 0]
print(f"trials complete: {len(rows)} of {len(rows)}; MLflow: 1 parent run, {len(children)} child runs (none "
      f"duplicated), {len(resumed)} continued from a checkpoint "
      f"({', '.join(r.data.tags['resumed_from_iteration'] for r in resumed)})")
PY
echo "rehearsal passed: job $job COMPLETED after $restarts requeue(s) in $seconds s"
