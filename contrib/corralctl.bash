# bash completion for corralctl(1), the control command of corral.
#
# Completes commands, options, the pools of the running corrald (from
# `corralctl --json status`, with the socket that -s/--socket or
# $CORRAL_SOCKET names), after POOL/ its worker ids, and after `plugin`
# the plugins and their commands (`corralctl plugins`). Silent when
# corrald is not running. Needs nothing but bash, sed and grep.
#
# Installed by `make install` as $(BASHCOMPDIR)/corralctl (config.mk;
# $(PREFIX)/share/bash-completion/completions by default), where
# bash-completion finds it. From the source tree, source it in the shell.

# The answer of `corralctl --json status` of the corrald that the command
# line being completed talks to; nothing when there is none.
_corralctl_status()
{
	local prog=$1 sock=$2
	local -a args=()

	# shellcheck disable=SC2088 # a literal ~ the shell did not expand
	[[ $prog == "~/"* ]] && prog=$HOME/${prog#"~/"}
	type -P "$prog" >/dev/null || prog=corralctl
	# shellcheck disable=SC2088
	[[ $sock == "~/"* ]] && sock=$HOME/${sock#"~/"}
	[[ -n $sock ]] && args=(-s "$sock")
	# a stuck corrald must not hang the shell
	if type -P timeout >/dev/null; then
		timeout 2 "$prog" "${args[@]}" --json status 2>/dev/null
	else
		"$prog" "${args[@]}" --json status 2>/dev/null
	fi
}

# The plugins' commands, "PLUGIN CMD ..." a line (`corralctl plugins`).
_corralctl_plugin_list()
{
	local prog=$1 sock=$2
	local -a args=()

	# shellcheck disable=SC2088
	[[ $prog == "~/"* ]] && prog=$HOME/${prog#"~/"}
	type -P "$prog" >/dev/null || prog=corralctl
	# shellcheck disable=SC2088
	[[ $sock == "~/"* ]] && sock=$HOME/${sock#"~/"}
	[[ -n $sock ]] && args=(-s "$sock")
	if type -P timeout >/dev/null; then
		timeout 2 "$prog" "${args[@]}" plugins 2>/dev/null
	else
		"$prog" "${args[@]}" plugins 2>/dev/null
	fi
}

# Pool names, one per line. Pool names are letters, digits, _ and -, and
# inside JSON strings every " is escaped, so {"name":" starts a pool.
_corralctl_pools()
{
	_corralctl_status "$1" "$2" |
		sed 's/{"name":"/\n&/g' |
		sed -n 's/^{"name":"\([A-Za-z0-9_-]*\)".*/\1/p'
}

# POOL/ID for each worker of one pool, one per line: the ids of its
# "workers", the last member of a pool (a " in a string is escaped).
_corralctl_workers()
{
	local pool=$3 line

	[[ $pool =~ ^[A-Za-z0-9_-]+$ ]] || return
	_corralctl_status "$1" "$2" |
		sed 's/{"name":"/\n&/g' |
		while IFS= read -r line; do
			[[ $line == "{\"name\":\"$pool\""* ]] && printf '%s\n' "$line"
		done |
		sed 's/.*"workers":\[//' |
		grep -o '"id":[0-9]*' |
		sed "s|\"id\":|$pool/|"
}

_corralctl()
{
	local cur=${COMP_WORDS[COMP_CWORD]} prev=
	local prog=${COMP_WORDS[0]} sock='' cmd='' i w
	local -a args=()
	local commands="status is-ready scale restart stop start signal freeze thaw reload plugin plugins ping version help"
	local signals="HUP INT QUIT ILL TRAP ABRT BUS FPE KILL USR1 SEGV USR2 PIPE ALRM TERM
		STKFLT CHLD CONT STOP TSTP TTIN TTOU URG XCPU XFSZ VTALRM PROF WINCH IO PWR SYS"

	((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}
	COMPREPLY=()

	# The socket, the command and its arguments so far. "--socket=PATH"
	# comes as three words ("--socket" "=" "PATH") with bash's default
	# COMP_WORDBREAKS; "-sPATH" as one.
	for ((i = 1; i < COMP_CWORD; i++)); do
		w=${COMP_WORDS[i]}
		if [[ -z $cmd ]]; then
			case $w in
			-s | --socket)
				if [[ ${COMP_WORDS[i + 1]} == "=" ]]; then
					((i += 2))
				else
					((i++))
				fi
				((i < COMP_CWORD)) && sock=${COMP_WORDS[i]}
				;;
			--socket=*) sock=${w#--socket=} ;;
			-s?*) sock=${w#-s} ;;
			--timeout)
				# its DURATION, or "=" DURATION
				[[ ${COMP_WORDS[i + 1]} == "=" ]] && ((i++))
				((i++))
				;;
			-*) ;;
			*) cmd=$w ;;
			esac
		else
			case $w in
			--json | --all-at-once | --no-wait | --quiet | --timeout=*) ;;
			--timeout)
				[[ ${COMP_WORDS[i + 1]} == "=" ]] && ((i++))
				((i++))
				;;
			*) args+=("$w") ;;
			esac
		fi
	done
	[[ -z $sock ]] && sock=${CORRAL_SOCKET-}

	# the path after -s, --socket or --socket=
	if [[ -z $cmd ]]; then
		if [[ $prev == -s || $prev == --socket ]] ||
			[[ $prev == "=" && ${COMP_WORDS[COMP_CWORD - 2]} == --socket ]]; then
			compopt -o filenames 2>/dev/null
			mapfile -t COMPREPLY < <(compgen -f -- "$cur")
			return
		fi
		if [[ $cur == --socket=* ]]; then
			compopt -o filenames 2>/dev/null
			mapfile -t COMPREPLY < <(compgen -P --socket= -f -- "${cur#--socket=}")
			return
		fi
	fi

	# a DURATION after --timeout: a few to start from
	if [[ $prev == --timeout ]] ||
		[[ $prev == "=" && ${COMP_WORDS[COMP_CWORD - 2]} == --timeout ]]; then
		mapfile -t COMPREPLY < <(compgen -W "10s 30s 90s 5m" -- "$cur")
		return
	fi

	if [[ $cur == -* ]]; then
		if [[ -z $cmd ]]; then
			mapfile -t COMPREPLY < <(compgen -W "-s --socket --json --quiet --all-at-once --no-wait --timeout --help" -- "$cur")
		elif [[ $cmd == restart ]]; then
			mapfile -t COMPREPLY < <(compgen -W "--json --all-at-once --no-wait --timeout" -- "$cur")
		elif [[ $cmd == is-ready ]]; then
			mapfile -t COMPREPLY < <(compgen -W "--json --quiet --timeout" -- "$cur")
		elif [[ $cmd != help ]]; then
			mapfile -t COMPREPLY < <(compgen -W "--json --no-wait --timeout" -- "$cur")
		fi
		return
	fi

	if [[ -z $cmd ]]; then
		mapfile -t COMPREPLY < <(compgen -W "$commands" -- "$cur")
		return
	fi

	case $cmd:${#args[@]} in
	help:0)
		mapfile -t COMPREPLY < <(compgen -W "$commands" -- "$cur")
		;;
	status:0 | is-ready:0 | scale:0 | stop:0 | start:0 | freeze:0 | thaw:0)
		mapfile -t COMPREPLY < <(compgen -W "$(_corralctl_pools "$prog" "$sock")" -- "$cur")
		;;
	restart:0 | signal:0)
		if [[ $cur == */* ]]; then
			mapfile -t COMPREPLY < <(compgen -W "$(_corralctl_workers "$prog" "$sock" "${cur%%/*}")" -- "$cur")
		else
			mapfile -t COMPREPLY < <(compgen -W "$(_corralctl_pools "$prog" "$sock")" -- "$cur")
		fi
		;;
	plugin:0)
		mapfile -t COMPREPLY < <(compgen -W "$(_corralctl_plugin_list "$prog" "$sock" | cut -d' ' -f1 | sort -u)" -- "$cur")
		;;
	plugin:1)
		mapfile -t COMPREPLY < <(compgen -W "$(_corralctl_plugin_list "$prog" "$sock" |
			while read -r w i _; do [[ $w == "${args[0]}" ]] && printf '%s\n' "$i"; done)" -- "$cur")
		;;
	signal:1)
		# names as corralctl takes them: any case, SIG or not
		w=${cur^^}
		if [[ $w == SIG* ]]; then
			mapfile -t COMPREPLY < <(compgen -P SIG -W "$signals" -- "${w#SIG}")
		else
			mapfile -t COMPREPLY < <(compgen -W "$signals" -- "${cur^^}")
		fi
		;;
	esac
}

complete -F _corralctl corralctl
