# bash completion for stagepipe(1)                       -*- shell-script -*-
#
# Installed by `make install` as
# $(PREFIX)/share/bash-completion/completions/stagepipe.  Completes the
# commands, their options, files and folders, and --stage NAME from the
# pipeline file (through `stagepipe validate`, so ${...} and anchors are
# read as stagepipe reads them; a file that does not load gives no names)
# and --target from the Dockerfile's `FROM ... AS name` lines.
# Keep it true to `stagepipe help COMMAND` and stagepipe(1).

_stagepipe_commands="run validate build context push prune serve agent store init help"

# The -f/--file and -C of the words typed so far.
_stagepipe_file_opts()
{
	local i
	_sp_file= _sp_dir=
	for ((i = 2; i < COMP_CWORD; i++)); do
		case ${COMP_WORDS[i]} in
		-f | --file) _sp_file=${COMP_WORDS[i + 1]} ;;
		--file=*) _sp_file=${COMP_WORDS[i]#--file=} ;;
		-C) _sp_dir=${COMP_WORDS[i + 1]} ;;
		esac
	done
}

# Stage names of the pipeline file, one per line.
_stagepipe_stages()
{
	local file
	_stagepipe_file_opts
	file=${_sp_file:-stagepipe.yml}
	if [[ -n $_sp_dir && $file != /* ]]; then
		file=$_sp_dir/$file
	fi
	[[ -r $file ]] || return 0
	"${COMP_WORDS[0]}" validate -f "$file" 2>/dev/null |
		sed -n 's/^ *[0-9][0-9]*\. \([a-z0-9][a-z0-9_-]*\) .*/\1/p'
}

# Dockerfile targets (FROM ... AS NAME) of the folder given with -C.
_stagepipe_targets()
{
	local df
	_stagepipe_file_opts
	df=${_sp_dir:-.}/Dockerfile
	[[ -r $df ]] || return 0
	sed -n 's/^[[:space:]]*[Ff][Rr][Oo][Mm][[:space:]].*[[:space:]][Aa][Ss][[:space:]][[:space:]]*\([A-Za-z0-9_.-]*\).*/\1/p' "$df"
}

_stagepipe()
{
	local cur prev cmd opts
	cur=${COMP_WORDS[COMP_CWORD]}
	prev=${COMP_WORDS[COMP_CWORD - 1]}
	COMPREPLY=()

	if ((COMP_CWORD == 1)); then
		COMPREPLY=($(compgen -W "$_stagepipe_commands --version --help" -- "$cur"))
		return 0
	fi
	cmd=${COMP_WORDS[1]}

	# values of options
	case $prev in
	-f | --file | --junit | --coverage | --token-file | --ca-file | -c | --config)
		compopt -o filenames 2>/dev/null
		COMPREPLY=($(compgen -f -- "$cur"))
		return 0
		;;
	-C | --artifacts)
		compopt -o filenames 2>/dev/null
		COMPREPLY=($(compgen -d -- "$cur"))
		return 0
		;;
	--stagepipe)
		compopt -o filenames 2>/dev/null
		COMPREPLY=($(compgen -c -- "$cur"))
		return 0
		;;
	--stage)
		COMPREPLY=($(compgen -W "$(_stagepipe_stages)" -- "$cur"))
		return 0
		;;
	--target)
		COMPREPLY=($(compgen -W "$(_stagepipe_targets)" -- "$cur"))
		return 0
		;;
	--event)
		COMPREPLY=($(compgen -W "push tag pull_request manual" -- "$cur"))
		return 0
		;;
	--docker-host)
		COMPREPLY=($(compgen -W "unix:///var/run/docker.sock tcp://" -- "$cur"))
		return 0
		;;
	--repo | --ref | --sha | --job-id | --event-ref | --agent | --runner-labels | \
		-t | --tag | --server | --name | --capacity | --labels | --artifacts-max-bytes | \
		-j | --jobs)
		return 0
		;;
	esac

	case $cmd in
	run)
		opts="-f --file -C --clean --repo --ref --sha --stage --no-push -j --jobs --json --junit
		      --coverage --artifacts --artifacts-max-bytes --docker-host --job-id --event
		      --event-ref --permit-stdin --agent --runner-labels"
		;;
	validate) opts="-f --file -q --quiet" ;;
	build)
		opts="-f --file -C --stage --target -t --tag --no-cache --pull --docker-host
		      -q --quiet"
		;;
	context) opts="-l --list -f --file -h --help" ;;
	push) opts="--docker-host -q --quiet" ;;
	prune) opts="-n --dry-run --all --docker-host" ;;
	serve) opts="-c --config --check --migrate" ;;
	store) opts="copy --from --to --to-env" ;;
	agent)
		opts="--server --token-file --name --capacity --labels --docker-host --ca-file
		      --stagepipe"
		;;
	init)
		opts="-f --force"
		if [[ $cur != -* ]]; then
			compopt -o filenames 2>/dev/null
			COMPREPLY=($(compgen -d -- "$cur"))
			return 0
		fi
		;;
	help)
		((COMP_CWORD == 2)) &&
			COMPREPLY=($(compgen -W "${_stagepipe_commands% help}" -- "$cur"))
		return 0
		;;
	*) return 0 ;;
	esac
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$opts" -- "$cur"))
	elif [[ $cmd == context ]]; then
		compopt -o filenames 2>/dev/null
		COMPREPLY=($(compgen -d -- "$cur"))
	fi
	return 0
}

complete -F _stagepipe stagepipe
