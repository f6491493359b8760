package cli

import (
	"flag"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
)

// Every command and every flag is in README's command table, on the
// command's own row, so the documentation cannot fall behind the code.
func TestREADMEListsEveryFlag(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	start := strings.Index(readme, "## Commands")
	end := strings.Index(readme[start:], "\n## ")
	if start < 0 || end < 0 {
		t.Fatal("README has no Commands section")
	}
	rows := map[string]string{}
	for _, line := range strings.Split(readme[start:start+end], "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cell := line[len("| `"):]
		// "key list | add ..." and "login ..., logout HOST" name more
		// than one command in their first cell.
		first := cell[:strings.Index(cell, "|")]
		for _, c := range commands {
			for _, name := range append([]string{c.name}, c.aliases...) {
				if strings.HasPrefix(first, name+" ") || strings.HasPrefix(first, name+"`") || strings.Contains(first, "`"+name+" ") {
					rows[c.name] += line
				}
			}
		}
	}
	for _, c := range commands {
		row, ok := rows[c.name]
		if !ok {
			t.Errorf("README's command table has no row for %s", c.name)
			continue
		}
		for _, alias := range c.aliases {
			if !strings.Contains(row, "`"+alias+"`") {
				t.Errorf("README's row for %s does not name its alias %s", c.name, alias)
			}
		}
		if c.flags == nil {
			continue
		}
		fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		c.flags(fs)
		fs.VisitAll(func(f *flag.Flag) {
			if !strings.Contains(row, "-"+f.Name) {
				t.Errorf("README's row for %s does not mention -%s", c.name, f.Name)
			}
		})
	}
}

// README's table of exit codes lists the codes the manual page does, in
// the same order.
func TestExitCodesDocumented(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	start := strings.Index(readme, "## Exit codes")
	end := strings.Index(readme[start+1:], "\n## ")
	if start < 0 || end < 0 {
		t.Fatal("README has no Exit codes section")
	}
	var inReadme, inTable []string
	for _, line := range strings.Split(readme[start:start+1+end], "\n") {
		if f := strings.Split(line, "|"); len(f) > 2 && strings.TrimSpace(f[1]) != "code" && !strings.HasPrefix(strings.TrimSpace(f[1]), "---") {
			inReadme = append(inReadme, strings.TrimSpace(f[1]))
		}
	}
	for _, e := range exitCodeTable {
		inTable = append(inTable, strconv.Itoa(e.code))
	}
	if strings.Join(inReadme, " ") != strings.Join(inTable, " ") {
		t.Errorf("README's exit codes %v, the manual page's %v", inReadme, inTable)
	}
}
