#compdef corralctl
# zsh completion for corralctl(1), the control command of corral.
#
# Completes commands, options, the pools of the running corrald (from
# `corralctl --json status`, with the socket that -s/--socket or
# $CORRAL_SOCKET names) and, after POOL/, its worker ids; the same as
# contrib/corralctl.bash and contrib/corralctl.fish (t/045 checks that
# all three offer corralctl's commands). Silent when corrald is not
# running.
#
# Installed by `make install` as $(ZSHCOMPDIR)/_corralctl (config.mk:
# $(PREFIX)/share/zsh/site-functions, or vendor-completions with
# PREFIX=/usr, where Debian's zsh looks), found by compinit. From the source tree, source it after
# compinit.

# The answer of `corralctl --json status` of the corrald that the command
# line talks to; nothing when there is none. $1: the program, $2: the
# socket or empty.
_corralctl_status() {
	local prog=${1/#\~/$HOME} sock=${2/#\~/$HOME}
	local -a args
	(( $+commands[$prog] )) || [[ -x $prog ]] || prog=corralctl
	[[ -n $sock ]] && args=(-s "$sock")
	# a stuck corrald must not hang the shell
	if (( $+commands[timeout] )); then
		timeout 2 "$prog" "${args[@]}" --json status 2>/dev/null
	else
		"$prog" "${args[@]}" --json status 2>/dev/null
	fi
}

# Pool names: letters, digits, _ and -; inside the JSON every " of a
# string is escaped, so {"name":" starts a pool.
_corralctl_pool_names() {
	_corralctl_status "$@" | sed 's/{"name":"/\n&/g' |
		sed -n 's/^{"name":"\([A-Za-z0-9_-]*\)".*/\1/p'
}

# POOL/ID of each worker of pool $3.
_corralctl_worker_names() {
	local pool=$3 line
	[[ $pool == [A-Za-z0-9_-]## ]] || return
	_corralctl_status "$1" "$2" | sed 's/{"name":"/\n&/g' |
		while IFS= read -r line; do
			[[ $line == "{\"name\":\"$pool\""* ]] && print -r -- "$line"
		done | sed 's/.*"workers":\[//' | grep -o '"id":[0-9]*' | sed "s|\"id\":|$pool/|"
}

# The plugins' commands, "PLUGIN CMD ..." a line.
_corralctl_plugin_list() {
	local prog=${1/#\~/$HOME} sock=${2/#\~/$HOME}
	local -a args
	(( $+commands[$prog] )) || [[ -x $prog ]] || prog=corralctl
	[[ -n $sock ]] && args=(-s "$sock")
	if (( $+commands[timeout] )); then
		timeout 2 "$prog" "${args[@]}" plugins 2>/dev/null
	else
		"$prog" "${args[@]}" plugins 2>/dev/null
	fi
}

# A pool, or after POOL/ a worker of it.
_corralctl_target() {
	local -a names
	if [[ $PREFIX == */* ]] && (( ${+_corralctl_workers} )); then
		names=(${(f)"$(_corralctl_worker_names $_corralctl_prog "$_corralctl_sock" ${PREFIX%%/*})"})
		_wanted workers expl 'worker' compadd -a names
	else
		names=(${(f)"$(_corralctl_pool_names $_corralctl_prog "$_corralctl_sock")"})
		_wanted pools expl 'pool' compadd -a names
	fi
}

_corralctl() {
	local curcontext=$curcontext state state_descr line ret=1
	local -A opt_args
	local -a commands=(
		'status:pools and workers: state, readiness, restarts, memory, CPU'
		'is-ready:exit 0 if POOL (every pool) runs with all its workers ready'
		'scale:run N workers in POOL (until the next reload)'
		'restart:a rolling restart of POOL, or one worker'
		'stop:stop POOL and keep it stopped until started'
		'start:start a stopped or failed POOL'
		'signal:send SIGNAL to the workers of POOL, or one'
		'freeze:freeze the cgroup of POOL'
		'thaw:thaw the cgroup of POOL'
		'reload:reload the configuration'
		'plugin:run a command that a plugin registered'
		'plugins:list the commands of the plugins'
		'ping:check that corrald answers'
		'version:the version of corrald'
		'help:explain a command'
	)
	local -a signals=(HUP INT QUIT ILL TRAP ABRT BUS FPE KILL USR1 SEGV USR2 PIPE ALRM TERM
		STKFLT CHLD CONT STOP TSTP TTIN TTOU URG XCPU XFSZ VTALRM PROF WINCH IO PWR SYS)

	local -a waitopts=('--no-wait[return at once, without waiting]'
		'--timeout=[how long to wait for corrald and the command]:duration:(10s 30s 90s 5m)')

	local _corralctl_prog=${words[1]:-corralctl}
	_arguments -C -S \
		'(-s --socket)'{-s+,--socket=}'[the control socket]:socket:_files' \
		'--json[print the JSON answer]' \
		'(-q --quiet)'{-q,--quiet}'[is-ready prints nothing]' \
		'--all-at-once[restart every worker at once]' \
		$waitopts \
		'(- *)--help[usage]' \
		'1:command:->command' \
		'*::argument:->args' && ret=0

	local _corralctl_sock=${opt_args[-s]:-${opt_args[--socket]:-$CORRAL_SOCKET}}
	case $state in
	command)
		_describe -t commands 'corralctl command' commands && ret=0
		;;
	args)
		curcontext=${curcontext%:*:*}:corralctl-$words[1]:
		case $words[1] in
		help)
			(( CURRENT == 2 )) && _describe -t commands 'corralctl command' commands && ret=0
			;;
		status | scale | stop | start | freeze | thaw)
			_arguments '--json[print the JSON answer]' $waitopts '1:pool:_corralctl_target' && ret=0
			;;
		is-ready)
			_arguments '--json[print the JSON answer]' '--quiet[print nothing]' '1:pool:_corralctl_target' && ret=0
			;;
		restart)
			local _corralctl_workers=1
			_arguments '--json[print the JSON answer]' '--all-at-once[restart every worker at once]' \
				$waitopts '1:pool or POOL/ID:_corralctl_target' && ret=0
			;;
		signal)
			local _corralctl_workers=1
			_arguments '--json[print the JSON answer]' $waitopts '1:pool or POOL/ID:_corralctl_target' \
				"2:signal:(${signals[*]})" && ret=0
			;;
		plugin)
			local -a names
			if (( CURRENT == 2 )); then
				names=(${(u)${(f)"$(_corralctl_plugin_list $_corralctl_prog "$_corralctl_sock" | cut -d' ' -f1)"}})
				_wanted plugins expl 'plugin' compadd -a names && ret=0
			elif (( CURRENT == 3 )); then
				names=(${(f)"$(_corralctl_plugin_list $_corralctl_prog "$_corralctl_sock" |
					awk -v p="$words[2]" '$1 == p { print $2 }')"})
				_wanted plugin-commands expl 'plugin command' compadd -a names && ret=0
			fi
			;;
		reload | ping | version | plugins)
			_arguments '--json[print the JSON answer]' $waitopts && ret=0
			;;
		esac
		;;
	esac
	return ret
}

# autoloaded by compinit: complete; sourced: register
if [[ ${zsh_eval_context[-1]} == loadautofunc ]]; then
	_corralctl "$@"
else
	compdef _corralctl corralctl
fi
