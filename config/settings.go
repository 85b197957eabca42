package config

import (
	"flag"
	"io"
	"strconv"
	"strings"
)

// Setting describes one setting once, for the parser and for the README's configuration table: its flag, its
// environment variable, its default as a reader should see it (Markdown), and what it means (Markdown).
type Setting struct {
	Flag, Env, Default, Meaning string
}

// settingSet registers settings on a flag.FlagSet, each with its environment variable as the default, and keeps
// their descriptions in registration order.
type settingSet struct {
	fs     *flag.FlagSet
	getenv func(string) string
	list   []Setting
	err    error // the first malformed environment variable
}

func newSettingSet(name string, getenv func(string) string) *settingSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return &settingSet{fs: fs, getenv: getenv}
}

// describe records a setting; shown is its default for readers ("" when it has none worth showing).
func (s *settingSet) describe(name, env, shown, meaning string) string {
	s.list = append(s.list, Setting{Flag: "--" + name, Env: env, Default: shown, Meaning: meaning})
	usage := meaning + " (" + env
	if shown != "" && !strings.HasPrefix(shown, "`") {
		usage += "; default: " + shown
	}
	return usage + ")"
}

// str registers a string setting. shown describes the default when def is empty ("" for none).
func (s *settingSet) str(p *string, name, env, def, shown, meaning string) {
	if def != "" {
		shown = "`" + def + "`"
	}
	usage := s.describe(name, env, shown, meaning)
	if v := s.getenv(env); v != "" {
		def = v
	}
	s.fs.StringVar(p, name, def, usage)
}

// int registers an integer setting; a variable that is not a number is an error of Load.
func (s *settingSet) int(p *int, name, env string, def int, meaning string) {
	usage := s.describe(name, env, "`"+strconv.Itoa(def)+"`", meaning)
	v, err := intEnv(s.getenv, env, def)
	if err != nil && s.err == nil {
		s.err = err
	}
	s.fs.IntVar(p, name, v, usage)
}

// boolean registers a setting that is off unless its variable is "true".
func (s *settingSet) boolean(p *bool, name, env, meaning string) {
	usage := s.describe(name, env, "`false`", meaning)
	s.fs.BoolVar(p, name, s.getenv(env) == "true", usage)
}

// Settings describes every setting Load reads, in the order the README lists them.
func Settings() []Setting {
	var c Config
	var raw rawSettings
	s := newSettingSet("flowyard", func(string) string { return "" })
	c.register(s, &raw)
	return s.list
}

// MarkdownTable renders settings as the README's configuration table.
func MarkdownTable(settings []Setting) string {
	var b strings.Builder
	b.WriteString("| flag | variable | default | meaning |\n|---|---|---|---|\n")
	cell := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	for _, st := range settings {
		b.WriteString("| `" + st.Flag + "` | `" + st.Env + "` | " + cell(st.Default) + " | " + cell(st.Meaning) + " |\n")
	}
	return b.String()
}
