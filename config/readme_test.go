package config

import (
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the README's configuration table from config's settings")

const (
	tableStart = "<!-- config-table -->\n"
	tableEnd   = "<!-- /config-table -->"
)

// TestREADMEConfigTable keeps the README's configuration table equal to the settings Load reads.
func TestREADMEConfigTable(t *testing.T) {
	path := filepath.Join("..", "README.md")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	start := strings.Index(readme, tableStart)
	end := strings.Index(readme, tableEnd)
	if start < 0 || end < start {
		t.Fatalf("README.md has no %q … %q markers around its configuration table", strings.TrimSpace(tableStart), tableEnd)
	}
	got, want := readme[start+len(tableStart):end], MarkdownTable(Settings())
	if got == want {
		return
	}
	if *update {
		if err := os.WriteFile(path, []byte(readme[:start+len(tableStart)]+want+readme[end:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("README.md's configuration table differs from config's settings (- README, + config):\n%s\n"+
		"Run `go test ./config -run TestREADMEConfigTable -update` to rewrite it, or paste this table:\n%s",
		lineDiff(got, want), want)
}

// lineDiff lists the lines only one side has, in order: enough to see which setting changed.
func lineDiff(got, want string) string {
	in := func(lines []string) map[string]bool {
		m := map[string]bool{}
		for _, l := range lines {
			m[l] = true
		}
		return m
	}
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	gs, ws := in(g), in(w)
	var b strings.Builder
	for _, l := range g {
		if !ws[l] {
			b.WriteString("- " + l + "\n")
		}
	}
	for _, l := range w {
		if !gs[l] {
			b.WriteString("+ " + l + "\n")
		}
	}
	if b.Len() == 0 {
		b.WriteString("(the same lines in another order)\n")
	}
	return b.String()
}

// TestSettingsDescribeEveryFlag makes sure no flag is registered around the describing layer, so the table
// cannot miss one.
func TestSettingsDescribeEveryFlag(t *testing.T) {
	var c Config
	var raw rawSettings
	s := newSettingSet("flowyard", func(string) string { return "" })
	c.register(s, &raw)
	described := map[string]bool{}
	for _, st := range s.list {
		if described[st.Flag] {
			t.Errorf("%s is described twice", st.Flag)
		}
		described[st.Flag] = true
		if !strings.HasPrefix(st.Env, "FLOWYARD_") || st.Meaning == "" {
			t.Errorf("%s: variable %q, meaning %q", st.Flag, st.Env, st.Meaning)
		}
	}
	n := 0
	s.fs.VisitAll(func(f *flag.Flag) {
		n++
		if !described["--"+f.Name] {
			t.Errorf("--%s is a flag without a description", f.Name)
		}
	})
	if n != len(s.list) || n < 30 {
		t.Errorf("%d flags, %d described", n, len(s.list))
	}
}

// TestREADMENamesEveryVariable finds every FLOWYARD_* variable that the repository's non-test Go code names and
// checks that README.md names it too: the settings through the table above, the rest in the prose around it.
func TestREADMENamesEveryVariable(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	variable := regexp.MustCompile(`FLOWYARD_[A-Z0-9_]*[A-Z0-9]`)
	named := map[string]bool{}
	for _, v := range variable.FindAllString(string(readme), -1) {
		named[v] = true
	}
	err = filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".") && d.Name() != "..") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, v := range variable.FindAllString(string(src), -1) {
			if !named[v] {
				t.Errorf("%s reads %s, which README.md does not name", path, v)
				named[v] = true // once
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
