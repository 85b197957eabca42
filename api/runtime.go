package api

import (
	"bytes"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/flowyard/flowyard/domain"
	"github.com/flowyard/flowyard/storage"
)

// The runtime API is what the Node-RED storage plugin (nodered/plugin/flowyard-storage.js) calls to keep an
// instance's flows, credentials, settings, sessions and library in the platform. It is authenticated only by
// the instance's runtime token (fyi_…), never by a user's session or personal token.

// runtimePathPrefix is skipped by the user authentication middleware: these routes check their own token.
const runtimePathPrefix = "/api/v1/runtime/"

// Token kind and owner type of an instance's runtime token in the tokens table.
const (
	runtimeTokenKind  = "instance"
	runtimeTokenOwner = "instance"
)

// runtimeSmallDocLimit caps documents that stay small in practice (runtime settings, editor sessions), so a
// runaway runtime cannot fill the database through them. Flows and credentials grow with the flows and may
// use the whole request body limit.
const runtimeSmallDocLimit = 1 << 20

// runtimeDocument is one of the JSON documents the storage plugin keeps.
type runtimeDocument struct {
	kind    string // storage kind and path segment
	array   bool   // a JSON array (flows) rather than an object
	limited bool   // capped at runtimeSmallDocLimit
}

var runtimeDocuments = []runtimeDocument{
	{kind: storage.StorageFlows, array: true},
	{kind: storage.StorageCredentials},
	{kind: storage.StorageSettings, limited: true},
	{kind: storage.StorageSessions, limited: true},
}

func (d runtimeDocument) empty() string {
	if d.array {
		return "[]"
	}
	return "{}"
}

func (d runtimeDocument) shape() string {
	if d.array {
		return "a JSON array"
	}
	return "a JSON object"
}

// runtimeLibraryPut is the body of PUT …/library/:type.
type runtimeLibraryPut struct {
	Name string         `json:"name"`
	Meta map[string]any `json:"meta"`
	Body string         `json:"body"`
}

func (s *Server) registerRuntime() {
	base := "/api/v1/runtime/instances/:instanceId/"
	for _, d := range runtimeDocuments {
		var body any = map[string]any{}
		if d.array {
			body = []map[string]any{}
		}
		s.route(routeDoc{Method: "GET", Path: base + d.kind, Tag: "runtime",
			Summary: "The instance's " + d.kind + " (" + d.shape() + "), for its storage plugin; runtime token only."}, s.getRuntimeDocument(d))
		s.route(routeDoc{Method: "PUT", Path: base + d.kind, Tag: "runtime", Body: body, Status: fiber.StatusNoContent,
			Summary: "Replace the instance's " + d.kind + "; runtime token only."}, s.putRuntimeDocument(d))
	}
	s.route(routeDoc{Method: "GET", Path: base + "library/:type", Tag: "runtime",
		Summary: "A library entry's text, or a folder listing as JSON (?name=); runtime token only."}, s.getRuntimeLibrary)
	s.route(routeDoc{Method: "PUT", Path: base + "library/:type", Tag: "runtime", Body: runtimeLibraryPut{}, Status: fiber.StatusNoContent,
		Summary: "Save a library entry; runtime token only."}, s.putRuntimeLibrary)
}

// runtimeInstanceID authenticates the runtime token and returns the instance it belongs to. No token or an
// unknown one answers 401; another instance's token answers 404, like an instance that does not exist.
func (s *Server) runtimeInstanceID(c *fiber.Ctx) (string, error) {
	token, ok := bearerToken(c)
	if !ok || token == "" {
		return "", domain.Unauthorized("Send the instance's runtime token as a bearer token.")
	}
	if !strings.HasPrefix(token, domain.TokenPrefixInstance) {
		return "", domain.Unauthorized("The bearer token is not a runtime token.")
	}
	tok, err := s.store.GetTokenByHash(c.UserContext(), domain.HashToken(token), time.Now(), runtimeTokenKind)
	if domain.IsKind(err, domain.KindNotFound) {
		return "", domain.Unauthorized("The runtime token is not valid or was revoked.")
	}
	if err != nil {
		return "", err
	}
	id := c.Params("instanceId")
	if tok.OwnerType != runtimeTokenOwner || tok.OwnerID != id {
		return "", domain.NotFound("instance")
	}
	return id, nil
}

func (s *Server) getRuntimeDocument(d runtimeDocument) fiber.Handler {
	return func(c *fiber.Ctx) error {
		id, err := s.runtimeInstanceID(c)
		if err != nil {
			return err
		}
		body, err := s.store.GetInstanceStorage(c.UserContext(), id, d.kind)
		if err != nil {
			return err
		}
		if strings.TrimSpace(body) == "" {
			body = d.empty()
		}
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSONCharsetUTF8)
		return c.SendString(body)
	}
}

func (s *Server) putRuntimeDocument(d runtimeDocument) fiber.Handler {
	return func(c *fiber.Ctx) error {
		id, err := s.runtimeInstanceID(c)
		if err != nil {
			return err
		}
		body := c.Body()
		if d.limited && len(body) > runtimeSmallDocLimit {
			return &domain.Error{Kind: domain.KindTooLarge, Code: "body_too_large",
				Message: "The " + d.kind + " document is larger than " + itoa(runtimeSmallDocLimit>>10) + " KiB."}
		}
		if err := checkRuntimeDocument(d, body); err != nil {
			return err
		}
		if err := s.store.PutInstanceStorage(c.UserContext(), id, d.kind, string(body)); err != nil {
			return err
		}
		return noContent(c)
	}
}

// checkRuntimeDocument accepts only valid JSON of the document's shape. The document is stored as sent:
// Node-RED's own serialisation is what its storage plugin reads back.
func checkRuntimeDocument(d runtimeDocument, body []byte) error {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return &domain.Error{Kind: domain.KindInvalid, Code: "invalid_json", Message: "The " + d.kind + " document is empty; send " + d.shape() + "."}
	}
	if !json.Valid(trimmed) {
		return &domain.Error{Kind: domain.KindInvalid, Code: "invalid_json", Message: "The " + d.kind + " document is not valid JSON."}
	}
	want := byte('{')
	if d.array {
		want = '['
	}
	if trimmed[0] != want {
		return &domain.Error{Kind: domain.KindInvalid, Code: "invalid_document", Message: "The " + d.kind + " document must be " + d.shape() + "."}
	}
	return nil
}

// libraryTypePattern bounds library types (flows, functions, templates, …) to safe names.
var libraryTypePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$`)

const maxLibraryNameLen = 1024

// libraryName normalises a library path like Node-RED's file library does (leading slashes ignored) and
// refuses empty, "." and ".." segments. A folder ("" or ending in "/") is allowed only when folderOK.
func libraryName(raw string, folderOK bool) (string, error) {
	name := strings.TrimLeft(raw, "/")
	folder := name == "" || strings.HasSuffix(name, "/")
	switch {
	case folder && !folderOK:
		return "", domain.InvalidField("name", "must name an entry, not a folder")
	case len(name) > maxLibraryNameLen:
		return "", domain.InvalidField("name", "must be at most 1024 characters")
	case strings.ContainsRune(name, 0):
		return "", domain.InvalidField("name", "must not contain NUL")
	}
	if trimmed := strings.TrimSuffix(name, "/"); trimmed != "" {
		for _, seg := range strings.Split(trimmed, "/") {
			if seg == "" || seg == "." || seg == ".." {
				return "", domain.InvalidField("name", "must not contain empty, '.' or '..' segments")
			}
		}
	}
	return name, nil
}

func libraryType(c *fiber.Ctx) (string, error) {
	typ := c.Params("type")
	if !libraryTypePattern.MatchString(typ) {
		return "", domain.InvalidField("type", "must be letters, digits, '.', '_' or '-' (at most 100)")
	}
	return typ, nil
}

// getRuntimeLibrary answers what Node-RED's file library answers: an entry's text (text/plain), or a folder
// listing (application/json: sub-folder names, then {fn, …meta} per entry), or 404. Like the file library, a
// "flows" entry named without ".json" is also looked up with it.
func (s *Server) getRuntimeLibrary(c *fiber.Ctx) error {
	id, err := s.runtimeInstanceID(c)
	if err != nil {
		return err
	}
	typ, err := libraryType(c)
	if err != nil {
		return err
	}
	name, err := libraryName(c.Query("name"), true)
	if err != nil {
		return err
	}
	if name != "" && !strings.HasSuffix(name, "/") {
		entry, err := s.findLibraryEntry(c, id, typ, name)
		if err == nil {
			c.Set(fiber.HeaderContentType, fiber.MIMETextPlainCharsetUTF8)
			return c.SendString(entry.Body)
		}
		if !domain.IsKind(err, domain.KindNotFound) {
			return err
		}
	}
	listing, err := s.libraryListing(c, id, typ, name)
	if err != nil {
		return err
	}
	if len(listing) == 0 {
		return domain.NotFound("library entry")
	}
	return c.JSON(listing)
}

func (s *Server) findLibraryEntry(c *fiber.Ctx, id, typ, name string) (*storage.LibraryEntry, error) {
	entry, err := s.store.GetLibraryEntry(c.UserContext(), id, typ, name)
	if domain.IsKind(err, domain.KindNotFound) && typ == "flows" && !strings.HasSuffix(name, ".json") {
		return s.store.GetLibraryEntry(c.UserContext(), id, typ, name+".json")
	}
	return entry, err
}

// libraryListing lists the folder name (a file-like name is taken as a folder): the names of its
// sub-folders, sorted, then its entries as {fn, …meta}, sorted by fn.
func (s *Server) libraryListing(c *fiber.Ctx, id, typ, name string) ([]any, error) {
	folder := name
	if folder != "" && !strings.HasSuffix(folder, "/") {
		folder += "/"
	}
	// The store compares prefixes with substr(), which counts characters while the length it is given counts
	// bytes; ask it with the ASCII head of the prefix only, and filter the rest here.
	rows, err := s.store.ListLibraryEntries(c.UserContext(), id, typ, asciiHead(folder))
	if err != nil {
		return nil, err
	}
	var dirs []string
	var files []map[string]any
	for _, row := range rows {
		rest, ok := strings.CutPrefix(row.Name, folder)
		if !ok || rest == "" {
			continue
		}
		if dir, _, nested := strings.Cut(rest, "/"); nested {
			if !slices.Contains(dirs, dir) {
				dirs = append(dirs, dir)
			}
			continue
		}
		file := make(map[string]any, len(row.Meta)+1)
		for k, v := range row.Meta {
			file[k] = v
		}
		file["fn"] = rest
		files = append(files, file)
	}
	slices.Sort(dirs)
	slices.SortFunc(files, func(a, b map[string]any) int { return strings.Compare(a["fn"].(string), b["fn"].(string)) })
	listing := make([]any, 0, len(dirs)+len(files))
	for _, d := range dirs {
		listing = append(listing, d)
	}
	for _, f := range files {
		listing = append(listing, f)
	}
	return listing, nil
}

func asciiHead(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return s[:i]
		}
	}
	return s
}

func (s *Server) putRuntimeLibrary(c *fiber.Ctx) error {
	id, err := s.runtimeInstanceID(c)
	if err != nil {
		return err
	}
	typ, err := libraryType(c)
	if err != nil {
		return err
	}
	var req runtimeLibraryPut
	if err := s.decode(c, &req); err != nil {
		return err
	}
	name, err := libraryName(req.Name, false)
	if err != nil {
		return err
	}
	if typ == "flows" && !strings.HasSuffix(name, ".json") {
		name += ".json" // as Node-RED's file library saves flows
	}
	if req.Meta == nil {
		req.Meta = map[string]any{}
	}
	entry := &storage.LibraryEntry{InstanceID: id, Type: typ, Name: name, Meta: req.Meta, Body: req.Body}
	if err := s.store.PutLibraryEntry(c.UserContext(), entry); err != nil {
		return err
	}
	return noContent(c)
}
