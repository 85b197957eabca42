// Package web holds the Flowyard dashboard: a no-build single-page app (plain ES modules and one CSS file in
// static/) embedded into the binary. It imports nothing of ours; the api package serves it.
package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"path"
	"sort"
	"strings"
)

//go:embed static
var files embed.FS

// Asset is one file of the dashboard, ready to serve.
type Asset struct {
	Body        []byte
	ContentType string
	ETag        string // strong ETag from the content hash, quoted
	// Gzip is Body compressed once at start (nil when that does not make it smaller), served to browsers that
	// accept it under GzipETag.
	Gzip     []byte
	GzipETag string
}

// assetPlaceholder in index.html becomes AssetPrefix(), so a new build changes every asset URL at once and
// the browser may cache the assets for a year.
const assetPlaceholder = "{{ASSETS}}"

var (
	assets  = map[string]Asset{}
	version string
	index   Asset
)

func init() {
	sum := sha256.New()
	var names []string
	_ = fs.WalkDir(files, "static", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			names = append(names, p)
		}
		return err
	})
	sort.Strings(names)
	for _, name := range names {
		body, _ := files.ReadFile(name)
		sum.Write([]byte(name))
		sum.Write(body)
		assets[strings.TrimPrefix(name, "static/")] = newAsset(name, body)
	}
	version = hex.EncodeToString(sum.Sum(nil))[:12]
	page := assets["index.html"]
	index = newAsset("index.html", bytes.ReplaceAll(page.Body, []byte(assetPlaceholder), []byte(strings.TrimSuffix(AssetPrefix(), "/"))))
}

func newAsset(name string, body []byte) Asset {
	h := sha256.Sum256(body)
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = "application/octet-stream"
	}
	tag := hex.EncodeToString(h[:])[:20]
	a := Asset{Body: body, ContentType: ct, ETag: `"` + tag + `"`}
	if z := compress(body); len(z) < len(body) {
		a.Gzip, a.GzipETag = z, `"`+tag+`-gz"`
	}
	return a
}

func compress(body []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	_, _ = zw.Write(body)
	_ = zw.Close()
	return buf.Bytes()
}

// Version identifies this build of the dashboard (a hash of every file).
func Version() string { return version }

// AssetPrefix is the URL path under which this build's files are served, with a trailing slash.
func AssetPrefix() string { return "/assets/" + version + "/" }

// Index is the one HTML page, answered for every dashboard path (the app routes in the browser).
func Index() Asset { return index }

// Lookup finds a file by its path under static/ (such as "app.js" or "pages/instance.js").
func Lookup(name string) (Asset, bool) {
	if name == "index.html" {
		return Asset{}, false // only through Index, with the asset prefix filled in
	}
	a, ok := assets[name]
	return a, ok
}
