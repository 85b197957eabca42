// Package mail renders Flowyard's e-mails from embedded templates (plain text and HTML) and delivers them over
// SMTP. Mail is queued in the store's outbox in the transaction of what it announces and delivered from there
// with retries (outbox.go), so an SMTP server that is down delays mail but loses none.
package mail

import (
	"bytes"
	"embed"
	htmltemplate "html/template"
	texttemplate "text/template"
	"time"
)

// Message is one rendered e-mail.
type Message struct {
	To      string `json:"to"`
	Subject string `json:"subject"`
	Text    string `json:"text"`
	HTML    string `json:"html"`
}

//go:embed templates
var templateFiles embed.FS

var (
	textTemplates = texttemplate.Must(texttemplate.ParseFS(templateFiles, "templates/*.txt"))
	htmlTemplates = htmltemplate.Must(htmltemplate.ParseFS(templateFiles, "templates/*.html"))
)

// Invitation is what the invitation e-mail says.
type Invitation struct {
	TeamName    string
	InviterName string
	Role        string
	Link        string
	Expires     time.Time
}

// PasswordReset is what the password-reset e-mail says.
type PasswordReset struct {
	Link    string
	Expires time.Time
}

// Verification is what the e-mail confirming a signed-up account's address says.
type Verification struct {
	Name    string
	Link    string
	Expires time.Time
}

// AccountExists is what a sign-up with an address that already has an account mails to that address, in place
// of a confirmation link (the sign-up's answer does not tell whether an account has it).
type AccountExists struct {
	SignInLink string
}

// Alert is what an alert e-mail says.
type Alert struct {
	TeamName  string
	Title     string
	Message   string
	At        time.Time
	Link      string // the subject in the dashboard
	RulesLink string // the team's alert rules
	RuleName  string
}

// AlertMessage renders an alert e-mail to an address.
func AlertMessage(to string, data Alert) (Message, error) {
	return render("alert", to, data)
}

// InvitationMessage renders the invitation e-mail to an address.
func InvitationMessage(to string, data Invitation) (Message, error) {
	return render("invitation", to, data)
}

// PasswordResetMessage renders the password-reset e-mail to an address.
func PasswordResetMessage(to string, data PasswordReset) (Message, error) {
	return render("password_reset", to, data)
}

// VerificationMessage renders the e-mail confirming a signed-up account's address.
func VerificationMessage(to string, data Verification) (Message, error) {
	return render("verification", to, data)
}

// AccountExistsMessage renders the notice to an address that has an account and was used to sign up again.
func AccountExistsMessage(to string, data AccountExists) (Message, error) {
	return render("account_exists", to, data)
}

// render executes the templates name.subject, name.text (text/template) and name.html (html/template, which
// escapes what users chose, such as team names).
func render(name, to string, data any) (Message, error) {
	m := Message{To: to}
	for _, part := range []struct {
		into *string
		exec func(*bytes.Buffer) error
	}{
		{&m.Subject, func(b *bytes.Buffer) error { return textTemplates.ExecuteTemplate(b, name+".subject", data) }},
		{&m.Text, func(b *bytes.Buffer) error { return textTemplates.ExecuteTemplate(b, name+".text", data) }},
		{&m.HTML, func(b *bytes.Buffer) error { return htmlTemplates.ExecuteTemplate(b, name+".html", data) }},
	} {
		var b bytes.Buffer
		if err := part.exec(&b); err != nil {
			return Message{}, err
		}
		*part.into = b.String()
	}
	return m, nil
}
