package config

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestMailSettingsFromFlagsAndEnvironment(t *testing.T) {
	c, err := Load("serve", []string{"--mail-from", "Flowyard <fy@example.com>"},
		env(map[string]string{"FLOWYARD_SMTP_URL": "smtps://ops%40example.com:hunter2-secret@mail.example.com:465"}))
	if err != nil {
		t.Fatal(err)
	}
	if !c.MailEnabled() || c.Mail.SMTPURL != "smtps://ops%40example.com:hunter2-secret@mail.example.com:465" || c.Mail.From != "Flowyard <fy@example.com>" {
		t.Fatalf("unexpected mail config %+v", c.Mail)
	}
	var log bytes.Buffer
	slog.New(slog.NewJSONHandler(&log, nil)).Info("config", "config", c)
	if strings.Contains(log.String(), "hunter2") {
		t.Fatalf("the SMTP password reached the log: %s", log.String())
	}
	if !strings.Contains(log.String(), "smtps://ops%40example.com:xxxxx@mail.example.com:465") {
		t.Fatalf("the log does not name the SMTP server: %s", log.String())
	}
}

func TestMailIsOffByDefault(t *testing.T) {
	c, err := Load("dev", nil, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.MailEnabled() {
		t.Fatal("no SMTP server is configured by default")
	}
}

func TestBadMailSettingsAreRefused(t *testing.T) {
	for name, vars := range map[string]map[string]string{
		"other scheme": {"FLOWYARD_SMTP_URL": "http://mail.example.com", "FLOWYARD_MAIL_FROM": "a@example.com"},
		"no host":      {"FLOWYARD_SMTP_URL": "smtp://", "FLOWYARD_MAIL_FROM": "a@example.com"},
		"bad port":     {"FLOWYARD_SMTP_URL": "smtp://mail.example.com:99999", "FLOWYARD_MAIL_FROM": "a@example.com"},
		"not a URL":    {"FLOWYARD_SMTP_URL": "smtp://u:p@ss@x:25%", "FLOWYARD_MAIL_FROM": "a@example.com"},
		"no from":      {"FLOWYARD_SMTP_URL": "smtp://mail.example.com"},
		"bad from":     {"FLOWYARD_SMTP_URL": "smtp://mail.example.com", "FLOWYARD_MAIL_FROM": "not an address"},
	} {
		if _, err := Load("serve", nil, env(vars)); err == nil {
			t.Errorf("%s: %v was accepted", name, vars)
		}
	}
}

func TestMaskSMTPURLHidesOnlyThePassword(t *testing.T) {
	for in, want := range map[string]string{
		"":                                "",
		"smtp://mail.example.com:587":     "smtp://mail.example.com:587",
		"smtp://user@mail.example.com":    "smtp://user@mail.example.com",
		"smtp://user:pw@mail.example.com": "smtp://user:xxxxx@mail.example.com",
		"smtp://u:p@ss@x:25%":             "****",
	} {
		if got := maskSMTPURL(in); got != want {
			t.Errorf("maskSMTPURL(%q) = %q, want %q", in, got, want)
		}
	}
}
