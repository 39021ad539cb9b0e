# shellcheck shell=bash
# scripts/pg.sh — helpers to run a private PostgreSQL cluster for development and tests.
# Sourced by scripts/run.sh and scripts/test.sh; it never touches the system's
# PostgreSQL service or its default port (5432).
#
#   pg_find_bin [--no-install]      sets and exports PG_BIN (installs Debian's postgresql as root)
#   pg_setup_user                   picks the user that runs the server (PG_USER)
#   pg_prepare_dir DIR              creates DIR owned by PG_USER; fails if PG_USER cannot write it
#   pg_init DIR [dev|test]          initdb DIR unless it already holds a cluster
#   pg_start DIR PORT SOCKDIR [dev|test|load]
#   pg_stop DIR [fast|immediate]
#   pg_free_port                    prints a free TCP port on 127.0.0.1
#   pg_port_busy PORT               true when something listens on PORT
#   pg_createdb PORT|URL NAME       creates database NAME unless it exists
#   pgb_find_bin                    sets and exports PGB_BIN (installs Debian's pgbouncer as root)
#   pgb_start DIR PGPORT PORT       PgBouncer (transaction mode) on 127.0.0.1:PORT for every database on PGPORT
#   pgb_stop DIR                    stops the PgBouncer started in DIR, if it runs
#
# Messages go to stderr, one line per step, prefixed "pg:". Fatal errors exit the caller.

pg_log() { printf 'pg: %s\n' "$*" >&2; }
pg_die() {
	printf 'pg: error: %s\n' "$*" >&2
	exit 1
}

# Microseconds since the epoch, without forking.
_pg_now_us() {
	local t=${EPOCHREALTIME/[.,]/}
	printf '%s' "$t"
}
# Seconds elapsed since a _pg_now_us reading, as "1.23s".
_pg_since() {
	local d=$(($(_pg_now_us) - $1))
	printf '%d.%02ds' $((d / 1000000)) $((d % 1000000 / 10000))
}

_pg_bindir_ok() {
	[[ -n "${1:-}" && -x "$1/initdb" && -x "$1/pg_ctl" && -x "$1/postgres" ]]
}

# Prints the server binaries directory, or fails.
_pg_search_bin() {
	local d best=""
	if command -v pg_config >/dev/null 2>&1; then
		d=$(pg_config --bindir 2>/dev/null) || d=""
		if _pg_bindir_ok "$d"; then
			printf '%s\n' "$d"
			return 0
		fi
	fi
	for d in /usr/lib/postgresql/*/bin; do
		_pg_bindir_ok "$d" || continue
		if [[ -z "$best" ]]; then
			best=$d
		else
			best=$(printf '%s\n%s\n' "$best" "$d" | sort -V | tail -n 1)
		fi
	done
	if [[ -n "$best" ]]; then
		printf '%s\n' "$best"
		return 0
	fi
	if d=$(command -v initdb 2>/dev/null); then
		d=$(dirname "$(readlink -f "$d")")
		if _pg_bindir_ok "$d"; then
			printf '%s\n' "$d"
			return 0
		fi
	fi
	return 1
}

# pg_find_bin [--no-install]: find the PostgreSQL server binaries; export PG_BIN, PG_PSQL, PG_ISREADY.
pg_find_bin() {
	local d log
	if _pg_bindir_ok "${PG_BIN:-}"; then
		d=$PG_BIN
	elif ! d=$(_pg_search_bin); then
		[[ "${1:-}" == --no-install ]] && return 1
		if ((EUID != 0)); then
			pg_die "the PostgreSQL server is not installed: run 'sudo apt-get install postgresql' (or set PG_BIN to its bin directory), then retry"
		fi
		log="${TMPDIR:-/tmp}/tenantgraph-apt-postgresql.log"
		pg_log "PostgreSQL server not found: installing Debian package postgresql (log: $log)"
		if ! { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql; } </dev/null >"$log" 2>&1; then
			tail -n 15 "$log" >&2
			pg_die "apt-get install postgresql failed (full log: $log)"
		fi
		d=$(_pg_search_bin) || pg_die "installed postgresql but found no initdb (see $log)"
	fi
	PG_BIN=$d
	if [[ -x "$PG_BIN/psql" ]]; then PG_PSQL=$PG_BIN/psql; else PG_PSQL=$(command -v psql) || pg_die "psql not found (apt-get install postgresql-client)"; fi
	if [[ -x "$PG_BIN/pg_isready" ]]; then PG_ISREADY=$PG_BIN/pg_isready; else PG_ISREADY=$(command -v pg_isready) || PG_ISREADY=""; fi
	export PG_BIN PG_PSQL PG_ISREADY
}

# pg_setup_user: PostgreSQL refuses to run as root, so as root the cluster belongs to
# the 'postgres' user (or a 'tenantgraph-pg' system user made here when that is missing).
pg_setup_user() {
	[[ -n "${PG_USER:-}" ]] && return 0
	if ((EUID != 0)); then
		PG_USER=$(id -un)
		PG_RUN=()
		return 0
	fi
	if id -u postgres >/dev/null 2>&1; then
		PG_USER=postgres
	else
		PG_USER=tenantgraph-pg
		if ! id -u "$PG_USER" >/dev/null 2>&1; then
			pg_log "creating system user $PG_USER to run PostgreSQL (it refuses to run as root)"
			useradd --system --user-group --no-create-home --home-dir /nonexistent \
				--shell /usr/sbin/nologin "$PG_USER" || pg_die "useradd $PG_USER failed"
		fi
	fi
	command -v runuser >/dev/null 2>&1 || pg_die "runuser not found (apt-get install util-linux)"
	PG_RUN=(runuser -u "$PG_USER" --)
}

# Runs a command as PG_USER, from / so that an unreadable working directory does not matter.
_pg_as() {
	pg_setup_user
	(cd / && "${PG_RUN[@]}" "$@")
}

_pg_own() {
	pg_setup_user
	if ((EUID == 0)); then chown "$PG_USER:" "$@"; fi
}

# pg_prepare_dir DIR: create DIR (mode 700) owned by PG_USER; fails (status 1) when
# PG_USER cannot reach it, e.g. because a parent directory is not traversable by it.
pg_prepare_dir() {
	local dir=$1
	mkdir -p "$dir" || return 1
	chmod 700 "$dir" || return 1
	_pg_own "$dir" || return 1
	_pg_as test -w "$dir" -a -x "$dir"
}

# pg_init DIR [dev|test]: create a cluster in DIR unless it has one (idempotent).
# "test" skips initdb's final fsync.
pg_init() {
	local dir=$1 mode=${2:-dev} t0 log
	local -a extra=()
	[[ -f "$dir/PG_VERSION" ]] && return 0
	pg_prepare_dir "$dir" || pg_die "user $PG_USER cannot write $dir (is a parent directory closed to it?)"
	if [[ -n "$(ls -A "$dir")" ]]; then
		pg_die "$dir is not empty but holds no cluster (an interrupted initdb?): remove it and retry"
	fi
	[[ "$mode" == test ]] && extra=(--no-sync)
	log="$(dirname "$dir")/initdb.log"
	t0=$(_pg_now_us)
	if ! _pg_as "$PG_BIN/initdb" -D "$dir" -U postgres -A trust --encoding=UTF8 --locale=C "${extra[@]}" >"$log" 2>&1; then
		tail -n 15 "$log" >&2
		pg_die "initdb failed (log: $log)"
	fi
	# Trust only the unix socket and 127.0.0.1 (the server listens on nothing else).
	cat >"$dir/pg_hba.conf" <<'EOF'
# Written by scripts/pg.sh: a private development/test cluster.
# TYPE  DATABASE     USER  ADDRESS       METHOD
local   all          all                 trust
host    all          all   127.0.0.1/32  trust
local   replication  all                 trust
host    replication  all   127.0.0.1/32  trust
EOF
	_pg_own "$dir/pg_hba.conf"
	pg_log "initdb $dir (PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}'), run as $PG_USER) in $(_pg_since "$t0")"
}

# The pid in DIR/postmaster.pid, if that file exists.
_pg_pidfile_pid() {
	local pid=""
	[[ -f "$1/postmaster.pid" ]] || return 1
	read -r pid <"$1/postmaster.pid" || true
	[[ "$pid" =~ ^[0-9]+$ ]] || return 1
	printf '%s' "$pid"
}

# True when PID is a postgres process whose working directory is DIR (the postmaster's is its data dir).
_pg_is_postgres_in() {
	local pid=$1 dir=$2 comm="" state="" cwd
	[[ -d "/proc/$pid" ]] || return 1
	read -r comm <"/proc/$pid/comm" 2>/dev/null || return 1
	[[ "$comm" == postgres || "$comm" == postmaster ]] || return 1
	# A killed postmaster can linger as a zombie until its parent reaps it.
	read -r _ _ state _ <"/proc/$pid/stat" 2>/dev/null || return 1
	[[ "$state" != Z && "$state" != X ]] || return 1
	if cwd=$(readlink "/proc/$pid/cwd" 2>/dev/null); then
		[[ "$cwd" == "$(readlink -f "$dir")" ]]
	else
		return 0 # cannot tell (another user's process): assume it is
	fi
}

# True when the cluster in DIR has a running postmaster.
pg_running() {
	local pid
	pid=$(_pg_pidfile_pid "$1") || return 1
	_pg_is_postgres_in "$pid" "$1"
}

# Postgres processes still working in DIR (e.g. backends orphaned by a killed postmaster).
_pg_procs_in() {
	local p comm cwd real
	real=$(readlink -f "$1")
	for p in /proc/[0-9]*; do
		comm=""
		read -r comm <"$p/comm" 2>/dev/null || continue
		[[ "$comm" == postgres ]] || continue
		cwd=$(readlink "$p/cwd" 2>/dev/null) || continue
		[[ "$cwd" == "$real" ]] && printf '%s\n' "${p#/proc/}"
	done
	return 0
}

# Remove a postmaster.pid left by a crash, once the crashed server's processes are gone.
_pg_clear_stale() {
	local dir=$1 pid i
	pid=$(_pg_pidfile_pid "$dir") || return 0
	pg_running "$dir" && return 0
	for ((i = 0; i < 50; i++)); do
		[[ -z "$(_pg_procs_in "$dir")" ]] && break
		sleep 0.2
	done
	pg_log "removing stale postmaster.pid (pid $pid is not running)"
	rm -f "$dir/postmaster.pid"
}

# pg_port_busy PORT: true when something listens on PORT (any local address).
pg_port_busy() {
	local port=$1
	if command -v ss >/dev/null 2>&1; then
		[[ -n "$(ss -Hltn "sport = :$port" 2>/dev/null)" ]]
	else
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
	fi
}

# pg_free_port: print a free TCP port on 127.0.0.1 (20000–31999, below Linux's ephemeral range).
pg_free_port() {
	local i port
	for ((i = 0; i < 100; i++)); do
		port=$((20000 + (RANDOM * 32768 + RANDOM) % 12000))
		if ! pg_port_busy "$port"; then
			printf '%s\n' "$port"
			return 0
		fi
	done
	pg_die "found no free TCP port on 127.0.0.1"
}

# pg_wait_ready PORT [SECONDS]
# Probes as the cluster's superuser (initdb -U postgres): pg_isready's default user is the
# caller's login name, and a role that does not exist makes every probe log a FATAL line.
pg_wait_ready() {
	local port=$1 secs=${2:-30} i
	[[ -n "${PG_ISREADY:-}" ]] || return 0
	for ((i = 0; i < secs * 5; i++)); do
		"$PG_ISREADY" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -t 1 && return 0
		sleep 0.2
	done
	return 1
}

# pg_start DIR PORT SOCKDIR [dev|test|load]: start the cluster in DIR (idempotent), listening on
# 127.0.0.1:PORT and a unix socket in SOCKDIR. "test" trades durability for speed; "load" is
# "test" whose log also goes, through the logging collector, to DIR/log/postgresql.csv
# (csvlog, for the load test's capture of statements) and DIR/log/postgresql.log.
# Logs to DIR/../postgres.log. Returns 1 (after printing the log's tail) when it fails.
pg_start() {
	local dir=$1 port=$2 sock=$3 mode=${4:-dev} t0 log cur opts
	[[ "$port" =~ ^[0-9]+$ ]] || pg_die "bad port: $port"
	[[ "$dir$sock" != *"'"* ]] || pg_die "paths with a single quote are not supported: $dir $sock"
	_pg_clear_stale "$dir"
	if pg_running "$dir"; then
		cur=$(sed -n 4p "$dir/postmaster.pid")
		if [[ "$cur" != "$port" ]]; then
			pg_log "postgres in $dir runs on port $cur: restarting it on $port"
		elif pg_wait_ready "$port" 10; then
			pg_log "postgres already running on 127.0.0.1:$port ($dir)"
			return 0
		else
			pg_log "postgres in $dir does not answer on port $port: restarting it"
		fi
		pg_stop "$dir"
	fi
	if pg_port_busy "$port"; then
		pg_log "error: port $port on 127.0.0.1 is already in use by another program"
		return 1
	fi
	pg_prepare_dir "$sock" || pg_die "user $PG_USER cannot write $sock"
	log="$(dirname "$dir")/postgres.log"
	touch "$log" && _pg_own "$log"
	opts="-p $port -k '$sock' -c listen_addresses=127.0.0.1"
	case $mode in
	test) opts+=" -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" ;;
	load)
		opts+=" -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
		opts+=" -c logging_collector=on -c log_destination=stderr,csvlog -c log_filename=postgresql.log -c log_rotation_size=0 -c log_timezone=UTC"
		;;
	dev) opts+=" -c max_connections=100" ;;
	*) pg_die "pg_start: unknown mode $mode (dev|test|load)" ;;
	esac
	t0=$(_pg_now_us)
	if ! _pg_as "$PG_BIN/pg_ctl" -D "$dir" -o "$opts" -l "$log" -w -t 60 start >/dev/null 2>&1 ||
		! pg_wait_ready "$port" 30; then
		tail -n 15 "$log" >&2
		pg_log "error: postgres did not start (log: $log)"
		return 1
	fi
	pg_log "postgres started on 127.0.0.1:$port in $(_pg_since "$t0") ($mode, data $dir)"
}

# pg_stop DIR [fast|immediate]: stop the cluster in DIR if it runs.
pg_stop() {
	local dir=$1 mode=${2:-fast} pid t0 i
	pg_running "$dir" || return 0
	pid=$(_pg_pidfile_pid "$dir")
	t0=$(_pg_now_us)
	if [[ -z "${PG_BIN:-}" ]]; then pg_find_bin --no-install || true; fi
	if ! _pg_bindir_ok "${PG_BIN:-}" ||
		! _pg_as "$PG_BIN/pg_ctl" -D "$dir" -m "$mode" -w -t 60 stop >/dev/null 2>&1; then
		# No pg_ctl, or it failed: signal the postmaster (INT = fast, QUIT = immediate), then KILL.
		kill -INT "$pid" 2>/dev/null || true
		for ((i = 0; i < 100; i++)); do
			_pg_is_postgres_in "$pid" "$dir" || break
			((i == 50)) && kill -QUIT "$pid" 2>/dev/null
			sleep 0.2
		done
		_pg_is_postgres_in "$pid" "$dir" && kill -KILL "$pid" 2>/dev/null
	fi
	pg_log "postgres stopped in $(_pg_since "$t0") ($dir)"
}

# pg_createdb PORT|URL NAME: create database NAME unless it exists. With a PORT, connects
# as postgres to 127.0.0.1:PORT; with a URL or conninfo, to the database it names.
pg_createdb() {
	local target=$1 name=$2 exists
	local -a conn
	if [[ "$target" =~ ^[0-9]+$ ]]; then
		conn=(-h 127.0.0.1 -p "$target" -U postgres -d postgres)
	else
		conn=(-d "$target")
	fi
	exists=$(printf '%s\n' "SELECT 1 FROM pg_database WHERE datname = :'name'" |
		"$PG_PSQL" -X -q -tA -v ON_ERROR_STOP=1 -v name="$name" "${conn[@]}") ||
		pg_die "could not query databases on ${target}"
	[[ "$exists" == 1 ]] && return 0
	printf '%s\n' "SELECT format('CREATE DATABASE %I', :'name') \\gexec" |
		"$PG_PSQL" -X -q -v ON_ERROR_STOP=1 -v name="$name" "${conn[@]}" >/dev/null ||
		pg_die "could not create database $name"
	pg_log "created database $name"
}

# pgb_find_bin: find PgBouncer; export PGB_BIN. As root, installs Debian's pgbouncer when
# missing (its system service is never used here).
pgb_find_bin() {
	local d log
	for d in "${PGB_BIN:-}" "$(command -v pgbouncer 2>/dev/null)" /usr/sbin/pgbouncer; do
		if [[ -n "$d" && -x "$d" ]]; then
			PGB_BIN=$d
			export PGB_BIN
			return 0
		fi
	done
	if ((EUID != 0)); then
		pg_die "PgBouncer is not installed: run 'sudo apt-get install pgbouncer' (or set PGB_BIN to the binary), then retry"
	fi
	log="${TMPDIR:-/tmp}/tenantgraph-apt-pgbouncer.log"
	pg_log "PgBouncer not found: installing Debian package pgbouncer (log: $log)"
	if ! { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends pgbouncer; } </dev/null >"$log" 2>&1; then
		tail -n 15 "$log" >&2
		pg_die "apt-get install pgbouncer failed (full log: $log)"
	fi
	[[ -x /usr/sbin/pgbouncer ]] || pg_die "installed pgbouncer but found no /usr/sbin/pgbouncer (see $log)"
	PGB_BIN=/usr/sbin/pgbouncer
	export PGB_BIN
}

# The pid in DIR/pgbouncer.pid, when that process is a running pgbouncer.
_pgb_pid() {
	local pid="" comm="" state=""
	[[ -f "$1/pgbouncer.pid" ]] || return 1
	read -r pid <"$1/pgbouncer.pid" || true
	[[ "$pid" =~ ^[0-9]+$ ]] || return 1
	read -r comm <"/proc/$pid/comm" 2>/dev/null || return 1
	[[ "$comm" == pgbouncer ]] || return 1
	read -r _ _ state _ <"/proc/$pid/stat" 2>/dev/null || return 1
	[[ "$state" != Z && "$state" != X ]] || return 1
	printf '%s' "$pid"
}

# pgb_start DIR PGPORT PORT: write DIR/pgbouncer.ini (and its auth file) for a PgBouncer in
# transaction mode on 127.0.0.1:PORT whose wildcard database entry reaches every database
# of the PostgreSQL on 127.0.0.1:PGPORT (auth_type trust: a private test cluster), and
# start it as PG_USER (it refuses to run as root). Logs to DIR/pgbouncer.log.
# Returns 1 (after printing the log's tail) when it fails.
pgb_start() {
	local dir=$1 pgport=$2 port=$3 t0 ini
	[[ "$pgport" =~ ^[0-9]+$ && "$port" =~ ^[0-9]+$ ]] || pg_die "bad port: $pgport $port"
	[[ "$dir" != *[[:space:]\;\"\']* ]] || pg_die "pgb_start: paths with spaces, quotes or ';' are not supported: $dir"
	pg_prepare_dir "$dir" || pg_die "user $PG_USER cannot write $dir"
	if pg_port_busy "$port"; then
		pg_log "error: port $port on 127.0.0.1 is already in use by another program"
		return 1
	fi
	ini=$dir/pgbouncer.ini
	printf '"postgres" ""\n' >"$dir/userlist.txt"
	{
		printf '; Written by scripts/pg.sh: a throwaway PgBouncer for the tests (make test-pgbouncer).\n'
		printf '[databases]\n* = host=127.0.0.1 port=%s\n\n[pgbouncer]\n' "$pgport"
		printf 'listen_addr = 127.0.0.1\nlisten_port = %s\nunix_socket_dir =\n' "$port"
		printf 'auth_type = trust\nauth_file = %s/userlist.txt\nadmin_users = postgres\n' "$dir"
		printf 'pool_mode = transaction\n'
		printf '; as many server connections per database as the pool of db.Open (20)\n'
		printf 'default_pool_size = 20\nmax_client_conn = 1000\n'
		printf '; statement_timeout: sent by the server (DATABASE_STATEMENT_TIMEOUT), dropped here: behind\n'
		printf '; PgBouncer 1.18 the timeout is set on the server side (docs/operations.md, "PgBouncer"); the\n'
		printf '; tests set it per database (dbtest.Options.StatementTimeout)\n'
		printf 'ignore_startup_parameters = extra_float_digits,statement_timeout\n'
		printf 'logfile = %s/pgbouncer.log\npidfile = %s/pgbouncer.pid\n' "$dir" "$dir"
		printf 'log_connections = 0\nlog_disconnections = 0\n'
	} >"$ini"
	_pg_own "$ini" "$dir/userlist.txt"
	t0=$(_pg_now_us)
	if ! _pg_as "$PGB_BIN" -q -d "$ini" >"$dir/pgbouncer.start.log" 2>&1 || ! pg_wait_ready "$port" 30; then
		tail -n 15 "$dir/pgbouncer.start.log" "$dir/pgbouncer.log" >&2 2>/dev/null
		pg_log "error: pgbouncer did not start (log: $dir/pgbouncer.log)"
		pgb_stop "$dir"
		return 1
	fi
	pg_log "pgbouncer $("$PGB_BIN" --version 2>/dev/null | awk 'NR == 1 {print $2}') started on 127.0.0.1:$port in $(_pg_since "$t0") (transaction mode, to PostgreSQL on port $pgport)"
}

# pgb_stop DIR: stop the PgBouncer whose pidfile is in DIR (TERM: immediate shutdown; then KILL).
pgb_stop() {
	local dir=$1 pid i
	pid=$(_pgb_pid "$dir") || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		_pgb_pid "$dir" >/dev/null || break
		sleep 0.1
	done
	if _pgb_pid "$dir" >/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
	pg_log "pgbouncer stopped ($dir)"
}
