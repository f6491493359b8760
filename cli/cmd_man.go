package cli

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

var manCommand = &command{
	name:    "man",
	usage:   "DIR",
	summary: "write manual pages (coffer.1 and coffer-COMMAND.1) into DIR, from the same definitions as -h",
	noStore: true,
	run: func(_ context.Context, a *app, _ any, args []string) error {
		if len(args) != 1 {
			return usageError("man takes the directory to write the pages into, e.g. coffer man /usr/local/share/man/man1")
		}
		dir := args[0]
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("creating %s: %w", dir, err)
		}
		pages := map[string]string{"coffer.1": mainPage()}
		for _, c := range commands {
			pages["coffer-"+c.name+".1"] = commandPage(c)
		}
		for name, page := range pages {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(page), 0o644); err != nil {
				return fmt.Errorf("writing %s: %w", name, err)
			}
		}
		a.out.textf("wrote %s to %s\n", counted(len(pages), "manual page"), dir)
		a.out.result(manEvent{"man", dir, len(pages)})
		return nil
	},
}

// manDate is the date manual pages carry: the build's, not the day they
// were written, would need build information; the month is enough.
func manDate() string { return time.Now().UTC().Format("January 2006") }

// roff escapes text for a roff line: backslashes, and a leading dot or
// quote that would make it a request.
func roff(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	s = strings.ReplaceAll(s, "`", "")
	var lines []string
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(line, ".") || strings.HasPrefix(line, "'") {
			line = `\&` + line
		}
		lines = append(lines, line)
	}
	return strings.Join(lines, "\n")
}

func pageHeader(b *strings.Builder, name, summary string) {
	fmt.Fprintf(b, ".TH %s 1 %q %q %q\n", strings.ToUpper(name), manDate(), "coffer "+buildVersion().version, "coffer manual")
	fmt.Fprintf(b, ".SH NAME\n%s \\- %s\n", roff(name), roff(summary))
}

func flagSection(b *strings.Builder, title string, flags []*flag.Flag) {
	if len(flags) == 0 {
		return
	}
	fmt.Fprintf(b, ".SH %s\n", title)
	for _, f := range flags {
		name, usage := flag.UnquoteUsage(f)
		arg := ""
		if name != "" {
			arg = " " + `\fI` + roff(name) + `\fR`
		}
		fmt.Fprintf(b, ".TP\n.B \\-%s%s\n%s", roff(f.Name), arg, roff(usage))
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "0s" {
			fmt.Fprintf(b, " (default %s)", roff(f.DefValue))
		}
		b.WriteString("\n")
	}
}

func mainPage() string {
	var b strings.Builder
	pageHeader(&b, "coffer", "encrypted, deduplicated backups to OCI registries and local directories")
	b.WriteString(".SH SYNOPSIS\n.B coffer\n[\\fIglobal flags\\fR] \\fBat\\fR \\fIstore\\fR \\fIcommand\\fR [\\fIflags\\fR] [\\fIargs\\fR]\n")
	b.WriteString(".SH DESCRIPTION\n")
	b.WriteString(roff("coffer backs up directories into a repository in an OCI registry (oci://registry/path/repo) or a local directory, encrypted and deduplicated. A store is oci://registry[:port]/path, a directory path, fs:///path, or @NAME for a store named with coffer store add. COFFER_REPOSITORY may replace at <store>.") + "\n")
	b.WriteString(".SH COMMANDS\n")
	for _, c := range commands {
		fmt.Fprintf(&b, ".TP\n.BR coffer\\-%s (1)\n%s\n", roff(c.name), roff(c.summary))
	}
	flagSection(&b, "GLOBAL FLAGS", globalFlagList())
	b.WriteString(".SH EXIT STATUS\n")
	for _, e := range exitCodeTable {
		fmt.Fprintf(&b, ".TP\n.B %d\n%s\n", e.code, roff(e.meaning))
	}
	b.WriteString(".SH ENVIRONMENT\n")
	for _, e := range [][2]string{
		{"COFFER_REPOSITORY", "the store, when at is not given"},
		{"COFFER_PASSPHRASE", "the repository passphrase"},
		{"COFFER_PASSPHRASE_COMMAND", "a command whose output is the passphrase"},
		{"COFFER_OTHER_PASSPHRASE", "the passphrase of sync's other repository"},
		{"COFFER_CACHE_DIR", "the cache directory"},
		{"COFFER_CONFIG", "the configuration file of named stores"},
		{"COFFER_REGISTRY_USERNAME, COFFER_REGISTRY_PASSWORD", "registry credentials"},
		{"COFFER_WRITER", "the writer identity in a registry's tags"},
		{"DOCKER_CONFIG", "the directory of the docker config that holds registry credentials"},
		{"TMPDIR", "where packs wait before they are uploaded to a registry"},
	} {
		fmt.Fprintf(&b, ".TP\n.B %s\n%s\n", roff(e[0]), roff(e[1]))
	}
	b.WriteString(".SH SEE ALSO\nThe README, docs/design.md and docs/format.md of coffer.\n")
	return b.String()
}

func commandPage(c *command) string {
	var b strings.Builder
	pageHeader(&b, "coffer-"+c.name, c.summary)
	at := "at \\fIstore\\fR "
	if c.noStore {
		at = ""
	}
	fmt.Fprintf(&b, ".SH SYNOPSIS\n.B coffer\n%s\\fB%s\\fR %s\n", at, roff(c.name), roff(c.usage))
	fmt.Fprintf(&b, ".SH DESCRIPTION\n%s\n", roff(c.summary))
	if len(c.aliases) > 0 {
		fmt.Fprintf(&b, ".PP\nAlso: %s.\n", roff(strings.Join(c.aliases, ", ")))
	}
	flagSection(&b, "OPTIONS", commandFlags(c))
	b.WriteString(".PP\nGlobal flags may come before at, after the store, or among these; see\n.BR coffer (1).\n")
	b.WriteString(".SH SEE ALSO\n.BR coffer (1)\n")
	return b.String()
}
