#!/usr/bin/env bash
# A one-node Slurm cluster on 127.0.0.1 for the tests of plugins/targets-slurm: munged,
# slurmctld and slurmd from Debian's packages (slurm-wlm, munge), with a munge key made
# here and /etc/slurm/slurm.conf naming this machine as its only node. The test sshd's
# user (targets-test) then submits jobs with sbatch like on a login node.
#
# Idempotent: installs only what is missing, writes the config only when it changed and
# starts only the daemons that are not running. When it cannot (not root, not Debian) it
# says why and exits 0, so the Slurm tests skip with that reason; with CI set it exits 1.
set -euo pipefail

say() { echo "slurm-test-setup: $*"; }
cannot() {
  say "cannot set up the test Slurm: $*" >&2
  if [ -n "${CI:-}" ]; then exit 1; fi
  exit 0
}

[ "$(id -u)" = 0 ] || cannot "needs root (it installs packages, writes /etc/slurm and starts daemons)"

need=()
[ -x /usr/sbin/slurmctld ] && [ -x /usr/sbin/slurmd ] && command -v sbatch >/dev/null || need+=(slurm-wlm)
[ -x /usr/sbin/munged ] || need+=(munge)
if ((${#need[@]})); then
  command -v apt-get >/dev/null || cannot "missing ${need[*]} and no apt-get to install them"
  say "installing: ${need[*]}"
  # shellcheck source=apt-install.sh
  source "$(dirname "${BASH_SOURCE[0]}")/apt-install.sh"
  apt_install "${need[@]}" || cannot "apt-get install ${need[*]} failed"
fi

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# -- munge: a key of our own (mode 400, owned by munge) and munged as the munge user.
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
if ! alive /run/munge/munged.pid; then
  runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
fi

# -- slurm.conf: this machine is the controller and the only node, both on 127.0.0.1.
host=$(hostname -s)
cpus=$(nproc)
install -d -m 0755 /etc/slurm /var/log/slurm /var/lib/slurm/slurmctld /var/lib/slurm/slurmd
conf=$(mktemp)
cat >"$conf" <<CONF
# Written by scripts/slurm-test-setup.sh: a one-node test cluster on 127.0.0.1.
ClusterName=targets-test
SlurmctldHost=${host}(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
# Listen on 127.0.0.1 only, not on every address of the machine.
CommunicationParameters=NoInAddrAny
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
# Ended jobs stay visible to squeue/scontrol for 10 minutes (there is no sacct database).
MinJobAge=600
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=${host} NodeAddr=127.0.0.1 NodeHostname=${host} CPUs=${cpus} State=UNKNOWN
# Jobs share the CPUs: parallel test workers need not queue behind each other.
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:8
CONF
changed=
if ! cmp -s "$conf" /etc/slurm/slurm.conf; then
  install -m 0644 "$conf" /etc/slurm/slurm.conf
  changed=1
fi
rm -f "$conf"

# A changed config needs fresh daemons.
if [ -n "$changed" ]; then
  for pidfile in /run/slurmd.pid /run/slurmctld.pid; do
    if alive "$pidfile"; then kill "$(cat "$pidfile")"; sleep 1; fi
  done
fi
# slurmctld has no option to listen on one address (NoInAddrAny is for every daemon but
# it): refuse its port on every interface but loopback instead.
if command -v iptables >/dev/null; then
  iptables -C INPUT -p tcp --dport 6817 ! -i lo -j DROP 2>/dev/null ||
    iptables -I INPUT -p tcp --dport 6817 ! -i lo -j DROP ||
    say "warning: could not restrict slurmctld's port 6817 to loopback with iptables" >&2
else
  say "warning: no iptables; slurmctld's port 6817 is reachable from other machines" >&2
fi
alive /run/slurmctld.pid || /usr/sbin/slurmctld
alive /run/slurmd.pid || /usr/sbin/slurmd

# Ready when the node takes jobs.
for _ in $(seq 1 60); do
  state=$(sinfo -h -N -o %t 2>/dev/null | head -n1 || true)
  case "$state" in
    idle* | mix* | alloc*) say "slurm is up (node $host: $state)"; exit 0 ;;
    down* | drain* | fail*) scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true ;;
  esac
  sleep 0.5
done
cannot "slurmd did not come up; see /var/log/slurm/slurmctld.log and /var/log/slurm/slurmd.log"
