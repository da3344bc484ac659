#!/usr/bin/env bash
# `clvp batch` under a real Slurm: brings up a single-node Slurm on this machine (munged, slurmctld and slurmd as
# root, every file in one temporary folder), checks it with a stand-in 4-task job array, then runs
# `clvp batch encodec-encode` as a 4-task array on 60 generated clips (3 of them broken) and checks:
#   a. the single-process reference (--shard 0 --num-shards 1) exits 2 with the 3 broken items as errors;
#   b. the array (shard and count from SLURM_ARRAY_TASK_*) gives, over its 4 shards, the reference's rows, row for
#      row, and the same error ids; every task's stderr lines, record counts and exit status agree;
#   c. an array task cancelled mid-way (scancel) and resubmitted alone (--array=I, --num-shards 4) resumes from its
#      checkpoint (its stderr says D already done with D > 0); the output again equals the reference, and each
#      shard's results and errors files are byte for byte b's.
#
#   scripts/test-slurm.sh                 # CLVP=path/to/clvp, default target/debug/clvp (not built here)
#   scripts/test-slurm.sh --slurm-only    # only bring Slurm up and run the stand-in array
#
# Installs what it lacks with apt-get (slurmctld slurmd slurm-client munge, Debian 12's Slurm 22.05); when that
# cannot be done it prints SKIP and exits 0. Any other failure exits non-zero after printing the daemons' log tails
# and the tasks' output. The daemons are stopped at exit whatever happens; the temporary folder is removed after a
# pass and kept after a failure (or always, with KEEP_WORK=1).
#
# The row comparisons use target/pyexamples/bin/python (scripts/test-python-examples.sh makes it; it has pyarrow),
# else python3 (CLVP_TEST_PYTHON overrides); without pyarrow they alone print SKIP.
# Other knobs: CLVP_TEST_ITEM_DELAY_MS (300: the per-item sleep, via CLVP_BATCH_ITEM_DELAY_MS, that lets step c
# catch a task mid-way), CLVP_TEST_JOB_TIMEOUT (900: seconds any one wait for Slurm may take).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

STANDIN_ONLY=0
case "${1:-}" in
  "") ;;
  --slurm-only) STANDIN_ONLY=1 ;;
  *)
    sed -n '2,22p' "$0" >&2
    exit 1
    ;;
esac

CLVP=${CLVP:-target/debug/clvp}
MODEL=$ROOT/fixtures/encodec/tiny_24k  # its bandwidths: 0.9, 1.8, 3.6 kbps
ITEM_DELAY_MS=${CLVP_TEST_ITEM_DELAY_MS:-300}
JOB_TIMEOUT=${CLVP_TEST_JOB_TIMEOUT:-900}
CHECK=$ROOT/scripts/slurm_check.py
NODE=$(hostname -s)
NTASKS=4
mapfile -t TASKS < <(seq 0 $((NTASKS - 1)))

# Slurm and sbatch read SLURM_*/SBATCH_* from the environment: none of an outer job's may leak into ours.
for v in $(compgen -e); do
  case $v in SLURM_* | SBATCH_*) unset "$v" ;; esac
done

log() { printf '[%s] %s\n' "$(date +%T)" "$*"; }
die() {
  log "FAIL: $*" >&2
  exit 1
}
skip() {
  log "SKIP: $*"
  SKIPPED=1
  exit 0
}

if [ -n "${CLVP_TEST_PYTHON:-}" ]; then
  PY=$CLVP_TEST_PYTHON
elif [ -x target/pyexamples/bin/python ]; then
  PY=$ROOT/target/pyexamples/bin/python
else
  PY=python3
fi

if [ "$STANDIN_ONLY" = 0 ]; then
  [ -x "$CLVP" ] || die "no clvp binary at $CLVP: build it (cargo build -p clvp-cli --bin clvp) or set CLVP"
  CLVP=$(realpath "$CLVP")
fi

# munged insists that every folder above its socket be searchable by all.
WORK=$(mktemp -d "${TMPDIR:-/tmp}/clvp-slurm.XXXXXX")
chmod 755 "$WORK"
MUNGE_DIR=$WORK/munge
SLURM_DIR=$WORK/slurm
export SLURM_CONF=$SLURM_DIR/slurm.conf
MANIFEST=$WORK/corpus/data/manifest.jsonl # made by slurm_check.py gen
MUNGED_PID="" SLURMCTLD_PID="" SLURMD_PID="" SKIPPED=0

# --- teardown -----------------------------------------------------------------------------------------------------

# Prints the end of every log this run made: the daemons' and each array task's stdout and stderr.
dump_logs() {
  local f
  for f in "$WORK"/apt.log "$MUNGE_DIR"/munged.log "$SLURM_DIR"/log/*.log "$WORK"/run-*/*.out "$WORK"/run-*/*.err; do
    [ -s "$f" ] || continue
    echo "----- ${f#"$WORK"/} (last 40 lines) -----"
    tail -n 40 "$f"
  done
  echo "-----"
}

alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

# Sends TERM to one daemon we started, by its pid, and KILL if it is still there after 10 s.
stop_pid() {
  local pid=$1 i
  alive "$pid" || return 0
  kill "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    alive "$pid" || return 0
    sleep 0.2
  done
  kill -9 "$pid" 2>/dev/null || true
}

# Cancels what is still queued or running (its processes belong to slurmstepd, which outlives slurmd), then stops
# slurmd, slurmctld and munged.
stop_daemons() {
  local jobs i
  if alive "$SLURMCTLD_PID"; then
    jobs=$(squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ')
    if [ -n "${jobs// /}" ]; then
      # shellcheck disable=SC2086 # one argument per job id
      scancel $jobs 2>/dev/null || true
      for ((i = 0; i < 75; i++)); do
        [ -z "$(squeue -h -o %A 2>/dev/null)" ] && break
        sleep 0.2
      done
    fi
  fi
  stop_pid "$SLURMD_PID"
  stop_pid "$SLURMCTLD_PID"
  stop_pid "$MUNGED_PID"
}

on_exit() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  if [ "$rc" != 0 ]; then
    dump_logs
  fi
  stop_daemons
  if [ "$rc" = 0 ] && [ -z "${KEEP_WORK:-}" ]; then
    rm -rf "$WORK"
  elif [ "$SKIPPED" = 0 ]; then
    log "work folder kept: $WORK"
  fi
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- bring-up -----------------------------------------------------------------------------------------------------

missing_tools() {
  local c
  for c in munged mungekey munge slurmctld slurmd sbatch sinfo squeue scancel scontrol; do
    command -v "$c" >/dev/null || echo "$c"
  done
}

install_slurm() {
  local t0=$SECONDS
  [ -z "$(missing_tools)" ] && return 0
  command -v apt-get >/dev/null || skip "Slurm is not installed and there is no apt-get to install it"
  log "installing slurmctld slurmd slurm-client munge (apt-get)"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    slurmctld slurmd slurm-client munge; } >"$WORK/apt.log" 2>&1; then
    tail -n 20 "$WORK/apt.log"
    skip "could not install Slurm's packages (slurmctld slurmd slurm-client munge) with apt-get"
  fi
  [ -z "$(missing_tools)" ] || skip "installed Slurm's packages but still lack: $(missing_tools | tr '\n' ' ')"
  log "installed in $((SECONDS - t0)) s"
}

# Two TCP ports free on this machine, for slurmctld and slurmd (not 6817/6818: a system Slurm may hold them).
free_ports() {
  python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s:
    x.bind(("127.0.0.1", 0))
print(*(x.getsockname()[1] for x in s))'
}

start_munge() {
  local i
  mkdir -p "$MUNGE_DIR"
  if ! mungekey --create --keyfile="$MUNGE_DIR/munge.key" 2>/dev/null; then
    dd if=/dev/urandom of="$MUNGE_DIR/munge.key" bs=1024 count=1 status=none
  fi
  chmod 600 "$MUNGE_DIR/munge.key"
  munged --foreground --socket="$MUNGE_DIR/munge.sock" --key-file="$MUNGE_DIR/munge.key" \
    --pid-file="$MUNGE_DIR/munged.pid" --seed-file="$MUNGE_DIR/munged.seed" \
    --log-file="$MUNGE_DIR/munged.log" >>"$MUNGE_DIR/munged.log" 2>&1 &
  MUNGED_PID=$!
  for ((i = 0; i < 100; i++)); do
    munge --socket="$MUNGE_DIR/munge.sock" --no-input 2>/dev/null |
      unmunge --socket="$MUNGE_DIR/munge.sock" >/dev/null 2>&1 && return 0
    alive "$MUNGED_PID" || die "munged exited"
    sleep 0.1
  done
  die "munged did not answer within 10 s"
}

# The whole configuration: one node, no cgroups (proctrack/linuxproc, task/none: a container has no cgroup
# delegation), no accounting, and OverSubscribe=FORCE:4 so that the 4 array tasks run at once even on 1 or 2 CPUs.
write_slurm_conf() {
  local ctld_port slurmd_port
  read -r ctld_port slurmd_port < <(free_ports)
  mkdir -p "$SLURM_DIR"/{state,spool,log}
  cat >"$SLURM_CONF" <<EOF
ClusterName=clvptest
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_DIR/munge.sock
StateSaveLocation=$SLURM_DIR/state
SlurmdSpoolDir=$SLURM_DIR/spool
SlurmctldPidFile=$SLURM_DIR/slurmctld.pid
SlurmdPidFile=$SLURM_DIR/slurmd.pid
SlurmctldLogFile=$SLURM_DIR/log/slurmctld.log
SlurmdLogFile=$SLURM_DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
SlurmdParameters=config_overrides
KillWait=5
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=1000 State=UNKNOWN
PartitionName=test Nodes=$NODE Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:$NTASKS
EOF
}

start_slurm() {
  local i state=""
  slurmctld -D >"$SLURM_DIR/log/slurmctld.stdout" 2>&1 &
  SLURMCTLD_PID=$!
  slurmd -D -N "$NODE" >"$SLURM_DIR/log/slurmd.stdout" 2>&1 &
  SLURMD_PID=$!
  for ((i = 0; i < 300; i++)); do
    alive "$SLURMCTLD_PID" || die "slurmctld exited"
    alive "$SLURMD_PID" || die "slurmd exited"
    state=$(sinfo -h -N -n "$NODE" -o %T 2>/dev/null || true)
    [ "$state" = idle ] && return 0
    sleep 0.2
  done
  sinfo -R 2>&1 || true
  die "node $NODE not idle within 60 s (state: ${state:-none})"
}

# --- jobs ---------------------------------------------------------------------------------------------------------

# The batch script of every array task: runs its arguments after the first, then writes their exit status to
# RUN/rc-TASK (RUN being the first argument); stdout and stderr go to RUN/task-TASK.out and .err (sbatch options).
write_task_script() {
  cat >"$WORK/array-task.sh" <<'EOF'
#!/bin/bash
run=$1
shift
echo "task $SLURM_ARRAY_TASK_ID of job $SLURM_ARRAY_JOB_ID on $(hostname):" \
  "count $SLURM_ARRAY_TASK_COUNT, min $SLURM_ARRAY_TASK_MIN"
"$@"
rc=$?
echo "$rc" >"$run/rc-$SLURM_ARRAY_TASK_ID"
exit "$rc"
EOF
  chmod +x "$WORK/array-task.sh"
}

# submit RUN ARRAY [sbatch options] -- COMMAND...: submits COMMAND as the tasks ARRAY (e.g. 0-3) with their logs in
# RUN. Without --wait among the options it prints the job id; with it, it returns (within JOB_TIMEOUT) the highest
# exit status of the tasks, which is sbatch --wait's.
submit() {
  local run=$1 array=$2 opts=() rc=0 id
  shift 2
  while [ "$1" != -- ]; do
    opts+=("$1")
    shift
  done
  shift
  mkdir -p "$run"
  local cmd=(sbatch --parsable --job-name=clvp-test --array="$array" --ntasks=1 --cpus-per-task=1 --time=30
    --chdir="$WORK" --output="$run/task-%a.out" --error="$run/task-%a.err" "${opts[@]}"
    "$WORK/array-task.sh" "$run" "$@")
  if [[ " ${opts[*]} " == *" --wait "* ]]; then
    timeout "$JOB_TIMEOUT" "${cmd[@]}" >"$run/sbatch.out" || rc=$?
    [ "$rc" != 124 ] || die "job array $array did not finish within $JOB_TIMEOUT s"
    return "$rc"
  fi
  id=$("${cmd[@]}") || die "sbatch failed"
  echo "${id%%;*}"
}

queued() { squeue -h -j "$1" -o %i 2>/dev/null | grep -q .; }

wait_gone() {
  local job=$1 deadline=$((SECONDS + JOB_TIMEOUT))
  while queued "$job"; do
    ((SECONDS < deadline)) || die "job $job still queued after $JOB_TIMEOUT s"
    sleep 0.5
  done
}

# check_status RUN TASK...: each task wrote an exit status of 0 or 2 (1 is a fatal error; none, a task killed). The
# highest of them, which is all sbatch --wait reports, would hide a 1 behind a 2.
check_status() {
  local run=$1 i rc
  shift
  for i in "$@"; do
    rc=$(cat "$run/rc-$i" 2>/dev/null || echo none)
    [ "$rc" = 0 ] || [ "$rc" = 2 ] || die "task $i (${run##*/}): exit status $rc, want 0 or 2"
  done
}

# Part 1: a shell stand-in as the array. Each task writes "ID COUNT MIN" and the times it started and ended (it
# sleeps 2 s): the files must hold "I 4 0", and all 4 tasks must have overlapped (they share the node's CPUs).
standin_array() {
  local run=$WORK/run-standin rc=0 i got
  log "stand-in array: sbatch --array=0-$((NTASKS - 1)) --wait"
  # shellcheck disable=SC2016 # expanded by the task
  submit "$run" "0-$((NTASKS - 1))" --wait -- bash -c 'set -e
    f=$1/standin-$SLURM_ARRAY_TASK_ID
    date +%s.%N >"$f.start"
    echo "$SLURM_ARRAY_TASK_ID $SLURM_ARRAY_TASK_COUNT $SLURM_ARRAY_TASK_MIN" >"$f.txt"
    sleep 2
    date +%s.%N >"$f.end"' standin "$run" || rc=$?
  [ "$rc" = 0 ] || die "stand-in array: sbatch --wait exited $rc"
  for i in "${TASKS[@]}"; do
    got=$(cat "$run/standin-$i.txt" 2>/dev/null || echo "(no file)")
    [ "$got" = "$i $NTASKS 0" ] || die "stand-in task $i wrote '$got', want '$i $NTASKS 0'"
  done
  check_status "$run" "${TASKS[@]}"
  python3 - "$run" "$NTASKS" <<'EOF' || die "stand-in array: the tasks did not all run at once"
import sys
from pathlib import Path
run, n = Path(sys.argv[1]), int(sys.argv[2])
starts = [float((run / f"standin-{i}.start").read_text()) for i in range(n)]
ends = [float((run / f"standin-{i}.end").read_text()) for i in range(n)]
overlap = max(starts) < min(ends)
print(f"  the {n} tasks started within {max(starts) - min(starts):.2f} s; all before the first ended: {overlap}")
sys.exit(0 if overlap else 1)
EOF
  log "stand-in array: ok ($NTASKS files 'I $NTASKS 0', all tasks at once)"
}

# a. The corpus and the single-process reference.
reference() {
  local run=$WORK/run-ref rc=0
  log "generating the corpus"
  "$PY" "$CHECK" gen "$WORK/corpus"
  log "reference: clvp batch --shard 0 --num-shards 1 (outside Slurm)"
  mkdir -p "$run"
  local t0=$SECONDS
  "$CLVP" batch encodec-encode --manifest "$MANIFEST" --output "$WORK/ref" --model "$MODEL" --bandwidth 1.8 \
    --shard 0 --num-shards 1 2>"$run/task-0.err" || rc=$?
  echo "$rc" >"$run/rc-0"
  grep '^batch:' "$run/task-0.err" | sed 's/^/  /' || true
  log "reference: exit $rc in $((SECONDS - t0)) s"
  [ "$rc" = 2 ] || die "the reference exited $rc, want 2 (3 broken items)"
  "$PY" "$CHECK" check-ref "$WORK/ref" "$WORK/corpus" "$run" || die "the reference's output"
}

# b. The 4-task array, shard and count from the environment.
array_run() {
  local run=$WORK/run-array rc=0 t0=$SECONDS
  log "array: sbatch --array=0-$((NTASKS - 1)) --wait, clvp batch --checkpoint-every 2"
  submit "$run" "0-$((NTASKS - 1))" --wait -- "$CLVP" batch encodec-encode --manifest "$MANIFEST" --output "$WORK/out" \
    --model "$MODEL" --bandwidth 1.8 --checkpoint-every 2 || rc=$?
  grep -h '^batch:' "$run"/task-*.err | sed 's/^/  /' || true
  log "array: sbatch --wait exited $rc after $((SECONDS - t0)) s"
  [ "$rc" = 0 ] || [ "$rc" = 2 ] || die "the array's highest task exit status is $rc, want 0 or 2"
  check_status "$run" "${TASKS[@]}"
  "$PY" "$CHECK" check-run "$WORK/out" "$WORK/ref" "$WORK/corpus" "$NTASKS" "$run" || die "the array's output"
}

# c. Cancel a task that has checkpointed but not finished, resubmit that index alone, check that it resumed and
# that every shard's files are byte for byte those of the uninterrupted run (b).
kill_and_resume() {
  local out=$WORK/out2 run=$WORK/run-kill run2=$WORK/run-resume job victim="" i shard rc=0 state seen="" f
  local deadline=$((SECONDS + JOB_TIMEOUT))
  log "kill-and-resume: sbatch --array=0-$((NTASKS - 1)), --checkpoint-every 1, CLVP_BATCH_ITEM_DELAY_MS=$ITEM_DELAY_MS"
  job=$(CLVP_BATCH_ITEM_DELAY_MS=$ITEM_DELAY_MS submit "$run" "0-$((NTASKS - 1))" -- "$CLVP" batch encodec-encode \
    --manifest "$MANIFEST" --output "$out" --model "$MODEL" --bandwidth 1.8 --checkpoint-every 1)
  # A checkpoint is .partial/shard-0000I-of-00004/chunk-NNNNNN.parquet (beside it, an empty lock file).
  while [ -z "$victim" ]; do
    for i in "${TASKS[@]}"; do
      shard=$(printf 'shard-%05d-of-%05d' "$i" "$NTASKS")
      if [ ! -e "$out/$shard.parquet" ] &&
        [ -n "$(find "$out/.partial/$shard" -name 'chunk-*.parquet' -type f -print -quit 2>/dev/null)" ]; then
        victim=$i
        break
      fi
    done
    [ -n "$victim" ] && break
    seen=$(find "$out/.partial" 2>/dev/null | sed "s|$out/||" | sort | tr '\n' ' ' || true)
    queued "$job" || die "all tasks ended before one was seen with a checkpoint" \
      "(.partial/shard-0000I-of-00004/chunk-*.parquet) and no result; last seen: ${seen:-nothing}"
    ((SECONDS < deadline)) || die "no task checkpointed within $JOB_TIMEOUT s"
    sleep 0.1
  done
  # Let it get a couple more items past its first checkpoint, then cancel it (if it is not done by then).
  sleep "$(python3 -c "print(2 * $ITEM_DELAY_MS / 1000)")"
  [ ! -e "$out/$shard.parquet" ] || die "task $victim finished too soon to be cancelled: raise CLVP_TEST_ITEM_DELAY_MS"
  seen=$(find "$out/.partial/$shard" -type f | sed "s|$out/||" | sort | tr '\n' ' ' || true)
  log "kill-and-resume: scancel ${job}_$victim; it had: $seen"
  scancel "${job}_$victim"
  wait_gone "$job"
  state=$(scontrol -o show job "${job}_$victim" 2>/dev/null | grep -o 'JobState=[A-Z_]*' || true)
  log "kill-and-resume: task $victim: $state; the other tasks finished"
  [ "$state" = JobState=CANCELLED ] || die "task $victim was not cancelled ($state)"
  [ ! -e "$out/$shard.parquet" ] || die "task $victim wrote its result before the cancel took effect"
  for i in "${TASKS[@]}"; do
    [ "$i" = "$victim" ] || check_status "$run" "$i"
  done
  grep -h '^batch:' "$run"/task-*.err | sed 's/^/  /' || true

  # Resubmitted alone, the task sees SLURM_ARRAY_TASK_COUNT=1 and MIN=its index: with --num-shards, clvp takes
  # the index itself as the shard.
  log "kill-and-resume: sbatch --array=$victim --wait, clvp batch --num-shards $NTASKS"
  submit "$run2" "$victim" --wait -- "$CLVP" batch encodec-encode --manifest "$MANIFEST" --output "$out" \
    --model "$MODEL" --bandwidth 1.8 --checkpoint-every 1 --num-shards "$NTASKS" || rc=$?
  grep -h '^batch:' "$run2"/task-*.err | sed 's/^/  /' || true
  [ "$rc" = 0 ] || [ "$rc" = 2 ] || die "the resubmitted task exited $rc, want 0 or 2"
  check_status "$run2" "$victim"
  "$PY" "$CHECK" check-run "$out" "$WORK/ref" "$WORK/corpus" "$NTASKS" "$run" --resumed "$victim" "$run2" ||
    die "the output after the kill and the resubmission"
  for i in "${TASKS[@]}"; do
    shard=$(printf 'shard-%05d-of-%05d' "$i" "$NTASKS")
    for f in "$shard.parquet" "_errors/$shard.parquet"; do
      cmp "$WORK/out/$f" "$out/$f" || die "$f differs between the uninterrupted array (b) and this one"
    done
  done
  log "kill-and-resume: every shard's results and errors file is byte for byte (b)'s"
}

# --- main ---------------------------------------------------------------------------------------------------------

T0=$SECONDS
install_slurm
log "work folder $WORK; python for the checks: $PY"
t=$SECONDS
start_munge
write_slurm_conf
write_task_script
start_slurm
log "Slurm up in $((SECONDS - t)) s: $(sinfo -h -N -o '%N %T CPUs=%c' | head -1), partition OverSubscribe=FORCE:$NTASKS"
standin_array
if [ "$STANDIN_ONLY" = 0 ]; then
  reference
  array_run
  kill_and_resume
fi
log "PASS in $((SECONDS - T0)) s"
