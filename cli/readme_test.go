package cli

import (
	"flag"
	"io"
	"os"
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
