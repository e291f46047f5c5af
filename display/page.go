package display

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"html/template"
)

// pageCSS and pageJS are inlined into the page and allowed by their
// hashes in the Content-Security-Policy, so the page needs nothing from
// the network and nothing else can run. Keep them ASCII: the hash is
// over their bytes.
const pageCSS = `
html, body { margin: 0; height: 100%; }
body {
  font-family: system-ui, "DejaVu Sans", "Liberation Sans", sans-serif;
  background: #000; color: #fff;
  display: flex; align-items: center; justify-content: center;
  text-align: center; overflow: hidden; cursor: none;
}
main { width: 92vw; }
#icon { font-size: clamp(4rem, 20vmin, 16rem); line-height: 1; font-weight: 700; min-height: 1em; }
#msg {
  font-size: clamp(2.5rem, 9vmin, 9rem); font-weight: 700; line-height: 1.15;
  margin: .3em 0; overflow-wrap: anywhere;
}
#conn {
  position: fixed; bottom: 1rem; left: 50%; transform: translateX(-50%); margin: 0;
  padding: .2em .8em; border-radius: .4em; background: #000; color: #ffd400;
  font-size: clamp(1.2rem, 3.5vmin, 2.5rem);
}
#preview { max-width: 40vw; max-height: 35vh; border: .3rem solid currentColor; margin-top: 1rem; }
[hidden] { display: none !important; }
.tone-idle { background: #000; color: #fff; }
.tone-guide { background: #000; color: #ffd400; }
.tone-busy { background: #0b2a66; color: #fff; }
.tone-pass { background: #006b2d; color: #fff; }
.tone-ok { background: #004f7c; color: #fff; }
.tone-fail { background: #a4001d; color: #fff; }
.tone-warn { background: #1a1a1a; color: #ffb000; }
.tone-pass #icon::before { content: "\2713"; }
.tone-ok #icon::before { content: "\2713"; }
.tone-fail #icon::before { content: "\2715"; }
.tone-warn #icon::before { content: "\26A0"; }
.tone-guide #icon::before { content: "\25C9"; }
.tone-busy #icon::before {
  content: ""; display: inline-block; width: .7em; height: .7em;
  border: .1em solid #fff; border-right-color: transparent; border-radius: 50%;
  animation: spin 1s linear infinite;
}
@keyframes spin { to { transform: rotate(360deg); } }
@media (prefers-reduced-motion: reduce) { .tone-busy #icon::before { animation: none; } }
`

const pageJS = `
(function () {
  "use strict";
  var body = document.body;
  var msg = document.getElementById("msg");
  var conn = document.getElementById("conn");
  var es = null, countdown = null, retry = null, template = "", deadline = 0;
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function fmt(ms) {
    var s = Math.max(0, Math.ceil(ms / 1000));
    return Math.floor(s / 60) + ":" + pad(s % 60);
  }
  function tick() { msg.textContent = template.split("{time}").join(fmt(deadline - Date.now())); }
  function show(v) {
    if (countdown) { clearInterval(countdown); countdown = null; }
    body.className = "tone-" + v.tone;
    body.setAttribute("data-state", v.state);
    template = String(v.text);
    if (typeof v.remaining_ms === "number") {
      deadline = Date.now() + v.remaining_ms;
      tick();
      countdown = setInterval(tick, 250);
    } else {
      msg.textContent = template;
    }
  }
  function connect() {
    retry = null;
    es = new EventSource("/events");
    es.onopen = function () { conn.hidden = true; };
    es.addEventListener("state", function (e) {
      try { show(JSON.parse(e.data)); } catch (err) { /* keep the last state */ }
    });
    es.onerror = function () {
      conn.hidden = false;
      // A dropped stream is retried by the browser itself; an HTTP error
      // answer closes it for good, so start over after a pause.
      if (es.readyState === EventSource.CLOSED && retry === null) {
        es.close();
        retry = setTimeout(connect, 3000);
      }
    };
  }
  connect();
})();
`

const pageHTML = `<!doctype html>
<html lang="{{.Lang}}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="dark">
<title>kioskd</title>
<style>` + styleMarker + `</style>
</head>
<body class="tone-{{.Tone}}" data-state="{{.State}}">
<main>
<div id="icon" aria-hidden="true"></div>
<h1 id="msg" aria-live="assertive">{{.Text}}</h1>
{{if .Preview}}<img id="preview" src="/preview.mjpeg" alt="">{{end}}
</main>
<p id="conn" hidden>{{.Reconnecting}}</p>
<script>` + scriptMarker + `</script>
</body>
</html>
`

// The inline blocks are spliced in after the template runs: html/template
// rewrites JS and CSS (it drops comments, for one), which would break
// their hashes.
const (
	styleMarker  = "kioskdInlineStyle"
	scriptMarker = "kioskdInlineScript"
)

// pageCSP allows the inline style and script by hash, same-origin event
// streams and images, and nothing else.
func pageCSP() string {
	return "default-src 'none'; script-src " + cspHash(pageJS) + "; style-src " + cspHash(pageCSS) +
		"; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}

type page struct {
	tmpl         *template.Template
	lang         string
	reconnecting string
	preview      bool
}

func cspHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

func newPage(lang, reconnecting string, preview bool) (*page, error) {
	t, err := template.New("page").Parse(pageHTML)
	if err != nil {
		return nil, fmt.Errorf("parse page: %w", err)
	}
	return &page{
		tmpl:         t,
		lang:         lang,
		reconnecting: reconnecting,
		preview:      preview,
	}, nil
}

func (p *page) render(v view, text string) ([]byte, error) {
	var buf bytes.Buffer
	err := p.tmpl.Execute(&buf, struct {
		Lang, Tone, State, Text, Reconnecting string
		Preview                               bool
	}{p.lang, v.Tone, v.State, text, p.reconnecting, p.preview})
	if err != nil {
		return nil, fmt.Errorf("render page: %w", err)
	}
	out := bytes.Replace(buf.Bytes(), []byte("<style>"+styleMarker+"</style>"), []byte("<style>"+pageCSS+"</style>"), 1)
	out = bytes.Replace(out, []byte("<script>"+scriptMarker+"</script>"), []byte("<script>"+pageJS+"</script>"), 1)
	return out, nil
}
