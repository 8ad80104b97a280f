# fish completion for corralctl(1), the control command of corral.
#
# Completes commands, options, the pools of the running corrald (from
# `corralctl --json status`, with the socket that -s/--socket or
# $CORRAL_SOCKET names) and, after POOL/, its worker ids; the same as
# contrib/corralctl.bash and contrib/corralctl.zsh (t/045 checks that all
# three offer corralctl's commands). Silent when corrald is not running.
#
# Installed by `make install` as $(FISHCOMPDIR)/corralctl.fish (config.mk:
# $(PREFIX)/share/fish/vendor_completions.d), where fish finds it (below
# /usr/local, when $XDG_DATA_DIRS names /usr/local/share). From the source
# tree, source it in the shell.

set -l __corralctl_commands status is-ready scale restart stop start signal freeze thaw reload plugin plugins ping version help
set -l __corralctl_pool_commands status is-ready scale stop start freeze thaw restart signal

# The answer of `corralctl --json status` of the corrald that the command
# line talks to; nothing when there is none.
function __corralctl_status
    set -l tokens (commandline -opc)
    set -l prog $tokens[1]
    set -l sock $CORRAL_SOCKET
    set -l i 2
    while test $i -le (count $tokens)
        switch $tokens[$i]
            case -s --socket
                set i (math $i + 1)
                test $i -le (count $tokens); and set sock $tokens[$i]
            case '--socket=*'
                set sock (string replace -- --socket= '' $tokens[$i])
            case '-s?*'
                set sock (string sub -s 3 -- $tokens[$i])
        end
        set i (math $i + 1)
    end
    command -q $prog; or test -x "$prog"; or set prog corralctl
    set -l args
    test -n "$sock"; and set args -s $sock
    # a stuck corrald must not hang the shell
    if command -q timeout
        timeout 2 $prog $args --json status 2>/dev/null
    else
        $prog $args --json status 2>/dev/null
    end
end

# Pool names: inside the JSON every " of a string is escaped, so
# {"name":" starts a pool.
function __corralctl_pools
    __corralctl_status | string match -ar '\{"name":"[A-Za-z0-9_-]+"' | string sub -s 10 | string trim -c '"'
end

# The plugins' commands, "PLUGIN CMD ..." a line.
function __corralctl_plugin_list
    set -l tokens (commandline -opc)
    set -l prog $tokens[1]
    set -l sock $CORRAL_SOCKET
    set -l i 2
    while test $i -le (count $tokens)
        switch $tokens[$i]
            case -s --socket
                set i (math $i + 1)
                test $i -le (count $tokens); and set sock $tokens[$i]
            case '--socket=*'
                set sock (string replace -- --socket= '' $tokens[$i])
        end
        set i (math $i + 1)
    end
    command -q $prog; or test -x "$prog"; or set prog corralctl
    set -l args
    test -n "$sock"; and set args -s $sock
    if command -q timeout
        timeout 2 $prog $args plugins 2>/dev/null
    else
        $prog $args plugins 2>/dev/null
    end
end

function __corralctl_plugin_names
    __corralctl_plugin_list | string split -f 1 ' ' | sort -u
end

# The commands of the plugin named after `plugin`.
function __corralctl_plugin_commands
    set -l tokens (commandline -opc)
    set -l plugin $tokens[-1]
    for line in (__corralctl_plugin_list)
        set -l w (string split ' ' -- $line)
        test "$w[1]" = "$plugin"; and echo $w[2]
    end
end

# POOL/ID of each worker of the pool before the / being typed.
function __corralctl_workers
    set -l pool (string split -m 1 / -- (commandline -ct))[1]
    string match -qr '^[A-Za-z0-9_-]+$' -- $pool; or return
    __corralctl_status | string replace -a '{"name":"' \n'{"name":"' | string match -- "{\"name\":\"$pool\"*" |
        string replace -r '.*"workers":\[' '' | string match -ar '"id":[0-9]+' | string replace '"id":' "$pool/"
end

# The command given so far (the first word that is not an option or the
# socket's path), or nothing.
function __corralctl_command
    set -l tokens (commandline -opc)
    set -l i 2
    while test $i -le (count $tokens)
        switch $tokens[$i]
            case -s --socket
                set i (math $i + 1)
            case '-*'
            case '*'
                echo $tokens[$i]
                return
        end
        set i (math $i + 1)
    end
    return 1
end

# How many arguments the command has so far.
function __corralctl_nargs
    set -l tokens (commandline -opc)
    set -l n -1
    set -l seen 0
    set -l i 2
    while test $i -le (count $tokens)
        switch $tokens[$i]
            case -s --socket
                test $seen = 0; and set i (math $i + 1)
            case '-*'
            case '*'
                set seen 1
                set n (math $n + 1)
        end
        set i (math $i + 1)
    end
    echo $n
end

function __corralctl_needs_command
    not __corralctl_command >/dev/null
end

# The command is one of $argv[2..] and has $argv[1] arguments so far.
function __corralctl_arg
    set -l cmd (__corralctl_command); or return 1
    contains -- $cmd $argv[2..-1]; and test (__corralctl_nargs) = $argv[1]
end

complete -c corralctl -f
complete -c corralctl -n __corralctl_needs_command -s s -l socket -r -F -d 'the control socket'
complete -c corralctl -n 'not __corralctl_arg 0 help' -l json -d 'print the JSON answer'
complete -c corralctl -n '__corralctl_needs_command; or contains -- (__corralctl_command) restart' -l all-at-once -d 'restart every worker at once'
complete -c corralctl -n 'not __corralctl_arg 0 help' -l no-wait -d 'return at once, without waiting'
complete -c corralctl -n 'not __corralctl_arg 0 help' -l timeout -x -a '10s 30s 90s 5m' -d 'how long to wait for corrald and the command'
complete -c corralctl -n '__corralctl_needs_command; or contains -- (__corralctl_command) is-ready' -s q -l quiet -d 'is-ready prints nothing'
complete -c corralctl -n __corralctl_needs_command -l help -d usage

complete -c corralctl -n __corralctl_needs_command -a status -d 'pools and workers: state, readiness, restarts, memory, CPU'
complete -c corralctl -n __corralctl_needs_command -a is-ready -d 'exit 0 if POOL (every pool) runs with all its workers ready'
complete -c corralctl -n __corralctl_needs_command -a scale -d 'run N workers in POOL (until the next reload)'
complete -c corralctl -n __corralctl_needs_command -a restart -d 'a rolling restart of POOL, or one worker'
complete -c corralctl -n __corralctl_needs_command -a stop -d 'stop POOL and keep it stopped until started'
complete -c corralctl -n __corralctl_needs_command -a start -d 'start a stopped or failed POOL'
complete -c corralctl -n __corralctl_needs_command -a signal -d 'send SIGNAL to the workers of POOL, or one'
complete -c corralctl -n __corralctl_needs_command -a freeze -d 'freeze the cgroup of POOL'
complete -c corralctl -n __corralctl_needs_command -a thaw -d 'thaw the cgroup of POOL'
complete -c corralctl -n __corralctl_needs_command -a reload -d 'reload the configuration'
complete -c corralctl -n __corralctl_needs_command -a plugin -d 'run a command that a plugin registered'
complete -c corralctl -n __corralctl_needs_command -a plugins -d 'list the commands of the plugins'
complete -c corralctl -n __corralctl_needs_command -a ping -d 'check that corrald answers'
complete -c corralctl -n __corralctl_needs_command -a version -d 'the version of corrald'
complete -c corralctl -n __corralctl_needs_command -a help -d 'explain a command'

complete -c corralctl -n '__corralctl_arg 0 help' -a "$__corralctl_commands"
complete -c corralctl -n "__corralctl_arg 0 $__corralctl_pool_commands" -a '(__corralctl_pools)' -d pool
complete -c corralctl -n '__corralctl_arg 0 restart signal; and string match -q "*/*" -- (commandline -ct)' -a '(__corralctl_workers)' -d worker
complete -c corralctl -n '__corralctl_arg 1 signal' \
    -a 'HUP INT QUIT ILL TRAP ABRT BUS FPE KILL USR1 SEGV USR2 PIPE ALRM TERM STKFLT CHLD CONT STOP TSTP TTIN TTOU URG XCPU XFSZ VTALRM PROF WINCH IO PWR SYS'
complete -c corralctl -n '__corralctl_arg 0 plugin' -a '(__corralctl_plugin_names)' -d plugin
complete -c corralctl -n '__corralctl_arg 1 plugin' -a '(__corralctl_plugin_commands)' -d 'plugin command'
