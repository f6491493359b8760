package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
)

var completionCommand = &command{
	name:    "completion",
	usage:   "bash|zsh|fish",
	summary: "print a shell completion script (commands, flags, @store names), as in source <(coffer completion bash)",
	noStore: true,
	run: func(_ context.Context, a *app, _ any, args []string) error {
		if len(args) != 1 {
			return usageError("completion takes one shell: bash, zsh or fish")
		}
		w := a.env.Stdout
		switch args[0] {
		case "bash":
			writeBashCompletion(w)
		case "zsh":
			// zsh runs the bash script through bashcompinit, which
			// understands complete -F; compinit must be loaded first.
			fmt.Fprintln(w, "#compdef coffer")
			fmt.Fprintln(w, "autoload -U +X compinit && compinit")
			fmt.Fprintln(w, "autoload -U +X bashcompinit && bashcompinit")
			writeBashCompletion(w)
		case "fish":
			writeFishCompletion(w)
		default:
			return usageError("completion %s: give bash, zsh or fish", args[0])
		}
		return nil
	},
}

// flagWords returns the flags as a shell completes them: -name.
func flagWords(flags []*flag.Flag) string {
	words := make([]string, len(flags))
	for i, f := range flags {
		words[i] = "-" + f.Name
	}
	return strings.Join(words, " ")
}

// takesValue reports whether a flag is followed by a value (not a
// boolean flag).
func takesValue(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return !ok || !b.IsBoolFlag()
}

func commandNames() []string {
	names := []string{"help"}
	for _, c := range commands {
		names = append(names, c.name)
		names = append(names, c.aliases...)
	}
	slices.Sort(names)
	return names
}

func writeBashCompletion(w io.Writer) {
	globals := globalFlagList()
	var valueFlags []string
	for _, f := range globals {
		if takesValue(f) {
			valueFlags = append(valueFlags, "-"+f.Name)
		}
	}
	fmt.Fprintf(w, `# bash completion for coffer (coffer completion bash)
_coffer_stores() {
	coffer -json store list 2>/dev/null | sed -n 's/.*"name":"\([^"]*\)".*/@\1/p'
}

_coffer() {
	local cur prev cmd i w
	cur="${COMP_WORDS[COMP_CWORD]}"
	prev="${COMP_WORDS[COMP_CWORD-1]}"
	local commands=%q
	local globals=%q
	local valueflags=" %s "
	cmd=""
	for ((i = 1; i < COMP_CWORD; i++)); do
		w="${COMP_WORDS[i]}"
		if [[ $w == at ]]; then
			((i++))
			continue
		fi
		if [[ $valueflags == *" $w "* ]]; then
			((i++))
			continue
		fi
		if [[ " $commands " == *" $w "* ]]; then
			cmd=$w
			break
		fi
	done
	if [[ $prev == at ]]; then
		COMPREPLY=($(compgen -W "$(_coffer_stores)" -- "$cur") $(compgen -d -- "$cur"))
		return
	fi
	if [[ $prev == to || $prev == from || $prev == -from ]] && [[ $cmd == sync || $cmd == create ]]; then
		COMPREPLY=($(compgen -W "$(_coffer_stores)" -- "$cur") $(compgen -d -- "$cur"))
		return
	fi
	local flags=""
	case $cmd in
`, strings.Join(commandNames(), " "), flagWords(globals), strings.Join(valueFlags, " "))
	for _, c := range commands {
		names := append([]string{c.name}, c.aliases...)
		fmt.Fprintf(w, "\t%s) flags=%q ;;\n", strings.Join(names, "|"), flagWords(commandFlags(c)))
	}
	fmt.Fprintf(w, "\thelp) flags=\"\" ;;\n")
	fmt.Fprint(w, `	esac
	if [[ -z $cmd ]]; then
		COMPREPLY=($(compgen -W "at $commands $globals" -- "$cur"))
	elif [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$flags $globals" -- "$cur"))
	else
		COMPREPLY=($(compgen -f -- "$cur"))
	fi
}

complete -o default -F _coffer coffer
`)
}

func writeFishCompletion(w io.Writer) {
	fmt.Fprintln(w, "# fish completion for coffer (coffer completion fish)")
	fmt.Fprintln(w, "complete -c coffer -f")
	names := commandNames()
	fmt.Fprintf(w, "function __coffer_needs_command\n\tnot __fish_seen_subcommand_from %s\nend\n", strings.Join(names, " "))
	fmt.Fprintln(w, `complete -c coffer -n '__coffer_needs_command' -a at -d 'the store to work on'`)
	fmt.Fprintln(w, `complete -c coffer -n '__fish_prev_arg_in at' -a '(coffer -json store list 2>/dev/null | string match -r -g \'"name":"([^"]*)"\' | string replace -r "^" @)' -d 'named store'`)
	for _, c := range commands {
		fmt.Fprintf(w, "complete -c coffer -n '__coffer_needs_command' -a %s -d %s\n", fishQuote(c.name), fishQuote(c.summary))
		for _, f := range commandFlags(c) {
			arg := ""
			if takesValue(f) {
				arg = " -r"
			}
			fmt.Fprintf(w, "complete -c coffer -n '__fish_seen_subcommand_from %s' -o %s%s -d %s\n",
				strings.Join(append([]string{c.name}, c.aliases...), " "), f.Name, arg, fishQuote(firstLine(f.Usage)))
		}
	}
	for _, f := range globalFlagList() {
		arg := ""
		if takesValue(f) {
			arg = " -r"
		}
		fmt.Fprintf(w, "complete -c coffer -o %s%s -d %s\n", f.Name, arg, fishQuote(firstLine(f.Usage)))
	}
}

// fishQuote quotes s for fish: single quotes, with \ and ' escaped.
func fishQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return strings.ReplaceAll(line, "`", "")
}
