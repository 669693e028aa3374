# Shared by the scripts/bench-* scripts (sourced, not run): building the release products,
# installing Redis, a scratch folder that is removed on exit, and starting and stopping daemons
# that are stopped on exit too, whatever way the script ends.

# bench_build PRODUCT...: installs the build's Debian packages and builds the products in
# release; sets `bin` to their folder.
bench_build() {
    scripts/bootstrap
    local product
    for product in "$@"; do swift build -c release --product "$product" >/dev/null; done
    bin=$(swift build -c release --show-bin-path)
}

# bench_install PACKAGE...: installs these Debian packages (as root, with sudo otherwise).
bench_install() {
    local sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

# bench_need_redis: Debian's redis-server and redis-tools, installed when missing.
bench_need_redis() {
    command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null && return
    bench_install redis-server redis-tools
}

# bench_redis_sessions SOCKET COUNT: fills the Redis at SOCKET's database 0 with the COUNT keys
# `redis-benchmark -r COUNT` names, 100 bytes each, so that its GETs find their keys as a
# session lookup finds its session (100,000 SETs over them leave none out); database 1 stays
# empty, for GETs of missing keys. Stops the script if the keys are not all there.
bench_redis_sessions() {
    redis-benchmark -s "$1" -n 100000 -r "$2" -d 100 -t set -c 16 -P 16 -q >/dev/null
    local keys
    keys=$(redis-cli -s "$1" dbsize)
    [[ $keys == "$2" ]] || { echo "$(basename "$0"): Redis holds $keys keys, not $2" >&2; exit 1; }
}

# On exit, every process started with bench_start and still running is stopped, and the
# scratch folder of bench_workdir, if any, removed.
bench_started=()
trap bench_cleanup EXIT

# bench_workdir NAME: makes `work`, a scratch folder under /tmp.
bench_workdir() {
    work=$(mktemp -d "/tmp/$1.XXXXXX")
}
bench_cleanup() {
    local pid
    for pid in "${bench_started[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [[ -n ${work:-} ]]; then rm -rf "$work"; fi
}

# bench_start SOCKET LOG COMMAND...: runs COMMAND in the background, its output added to LOG, and
# waits (at most 10 s) for SOCKET to appear; sets `started_pid`. A daemon that does not come up
# ends the script.
bench_start() {
    local socket=$1 log=$2
    shift 2
    "$@" >>"$log" 2>&1 &
    started_pid=$!
    bench_started+=("$started_pid")
    for _ in $(seq 100); do [[ -S $socket ]] && return; sleep 0.1; done
    echo "$1 did not listen on $socket (log: $log)" >&2
    tail -n 5 "$log" >&2
    exit 1
}

# bench_authd BINARY SOCKET DATA [ARGS...]: bench_start for an authd on a fresh data folder
# (any earlier one at DATA and SOCKET is removed), logging warnings only to DATA.log.
bench_authd() {
    local binary=$1 socket=$2 data=$3
    shift 3
    rm -rf "$data" "$socket"
    bench_start "$socket" "$data.log" "$binary" --socket "$socket" --data "$data" --set log_level=warning "$@"
}

# bench_writer_task PID: the /proc path of the daemon's group-commit writer thread (empty if
# it has none).
bench_writer_task() {
    local task
    for task in /proc/"$1"/task/*; do
        [[ $(cat "$task/comm" 2>/dev/null) == authd-writer ]] && { echo "$task"; return; }
    done
}

# bench_cpu_ticks PATH: user plus system CPU time, in clock ticks, of the process or thread at
# PATH (/proc/PID or /proc/PID/task/TID).
bench_cpu_ticks() { awk '{ print $14 + $15 }' "$1/stat"; }

# bench_machine_ticks FIELD...: the machine's CPU time in those fields of /proc/stat (user,
# nice, system, idle, iowait, irq, softirq, steal), in clock ticks, then the total of all eight.
bench_machine_ticks() {
    awk -v fields="$*" 'BEGIN { split("user nice system idle iowait irq softirq steal", names, " ")
                                for (i in names) column[names[i]] = i + 1 }
        $1 == "cpu" { total = 0; for (i = 2; i <= 9; i++) total += $i
                      n = split(fields, wanted, " "); line = ""
                      for (i = 1; i <= n; i++) line = line $(column[wanted[i]]) " "
                      print line total; exit }' /proc/stat
}

# bench_stop PID: SIGTERM, and waits for it to end (and forgets it, so that the exit does not
# signal a process that took the number since).
bench_stop() {
    kill -TERM "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    local pid kept=()
    for pid in "${bench_started[@]}"; do [[ $pid == "$1" ]] || kept+=("$pid"); done
    bench_started=("${kept[@]}")
}
