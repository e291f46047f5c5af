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
//
// The layout: the self-view fills the screen, mirrored so that moving
// left moves left; an oval in the state's colour shows where the face
// goes, the rest of the picture is dimmed; the message sits in a band at
// the bottom in the same colour, its text at least 5% of the screen
// height so that it reads from a metre away.
const pageCSS = `
:root {
  --c-idle: #ffffff; --k-idle: #000000;
  --c-guide: #ffd400; --k-guide: #000000;
  --c-hold: #00d4ff; --k-hold: #000000;
  --c-busy: #1f4fd1; --k-busy: #ffffff;
  --c-pass: #007a3d; --k-pass: #ffffff;
  --c-ok: #00628f; --k-ok: #ffffff;
  --c-fail: #c4001d; --k-fail: #ffffff;
  --c-warn: #ffb000; --k-warn: #000000;
}
html, body { margin: 0; height: 100%; }
body {
  font-family: system-ui, "DejaVu Sans", "Liberation Sans", sans-serif;
  background: #111; color: #fff; overflow: hidden; cursor: none;
  --tone: var(--c-idle); --ink: var(--k-idle);
}
.tone-idle { --tone: var(--c-idle); --ink: var(--k-idle); }
.tone-guide { --tone: var(--c-guide); --ink: var(--k-guide); }
.tone-hold { --tone: var(--c-hold); --ink: var(--k-hold); }
.tone-busy { --tone: var(--c-busy); --ink: var(--k-busy); }
.tone-pass { --tone: var(--c-pass); --ink: var(--k-pass); }
.tone-ok { --tone: var(--c-ok); --ink: var(--k-ok); }
.tone-fail { --tone: var(--c-fail); --ink: var(--k-fail); }
.tone-warn { --tone: var(--c-warn); --ink: var(--k-warn); }
#view {
  position: fixed; left: 0; top: 0; width: 100vw; height: 100vh;
  object-fit: cover; object-position: 50% 50%; transform: scaleX(-1);
}
#oval {
  position: fixed; left: 50%; top: 50%; width: 34vh; height: 45vh;
  transform: translate(-50%, -50%); border-radius: 50%; box-sizing: border-box;
  border: max(1vmin, 6px) solid var(--tone);
  box-shadow: 0 0 0 200vmax rgba(0, 0, 0, .45);
}
#logo { position: fixed; top: 2vmin; left: 2vmin; max-height: 8vh; max-width: 30vw; }
#band {
  position: fixed; left: 0; right: 0; bottom: 0; box-sizing: border-box;
  max-height: 42vh; overflow: hidden; padding: 2vh 4vw;
  background: var(--tone); color: var(--ink);
  display: flex; align-items: center; justify-content: center; gap: 3vw;
}
#icon { font-size: 8vh; line-height: 1; font-weight: 700; flex: none; }
#icon:empty { display: none; }
#msg {
  font-size: max(5.2vh, 18px); font-weight: 700; line-height: 1.15; margin: 0;
  text-align: center; overflow-wrap: break-word; hyphens: auto; min-width: 0;
}
#bar { position: absolute; left: 0; bottom: 0; height: 1.2vh; width: 100%; background: rgba(255, 255, 255, .25); }
#fill { height: 100%; width: 0; background: #fff; }
#conn {
  position: fixed; top: 2vmin; right: 2vmin; margin: 0;
  padding: .2em .8em; border-radius: .4em; background: #000; color: #ffd400;
  font-size: max(3.5vh, 16px);
}
[hidden] { display: none !important; }
body:not([data-state="checking"]) #bar { display: none; }
.tone-pass #icon::before, .tone-ok #icon::before { content: "\2713"; }
.tone-fail #icon::before { content: "\2715"; }
.tone-warn #icon::before { content: "\26A0"; }
[data-hint="move_left"] #icon::before { content: "\2190"; }
[data-hint="move_right"] #icon::before { content: "\2192"; }
[data-hint="move_up"] #icon::before { content: "\2191"; }
[data-hint="move_down"] #icon::before { content: "\2193"; }
.tone-busy #icon::before {
  content: ""; display: inline-block; width: .7em; height: .7em;
  border: .1em solid currentColor; border-right-color: transparent; border-radius: 50%;
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
  var oval = document.getElementById("oval");
  var fill = document.getElementById("fill");
  var view = document.getElementById("view");
  var es = null, timer = null, retry = null, template = "", deadline = 0, total = 0;
  var guide = Number(body.getAttribute("data-guide")) || 0.45;
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function fmt(ms) {
    var s = Math.max(0, Math.ceil(ms / 1000));
    return Math.floor(s / 60) + ":" + pad(s % 60);
  }
  // The oval is the face size capture accepts, on the picture as the
  // screen shows it: the frame is scaled to cover the screen, centred.
  function layout() {
    var fw = (view && view.naturalWidth) || 16, fh = (view && view.naturalHeight) || 9;
    var sw = window.innerWidth, sh = window.innerHeight;
    var scale = Math.max(sw / fw, sh / fh);
    var h = Math.min(guide * fh * scale, sh * 0.7);
    var w = Math.min(h * 0.75, sw * 0.9);
    oval.style.height = h + "px";
    oval.style.width = w + "px";
  }
  function tick() {
    var left = deadline - Date.now();
    if (total > 0) {
      fill.style.width = Math.min(100, Math.max(0, 100 * (1 - left / total))) + "%";
    } else {
      msg.textContent = template.split("{time}").join(fmt(left));
    }
  }
  function show(v) {
    if (timer) { clearInterval(timer); timer = null; }
    body.className = "tone-" + v.tone;
    body.setAttribute("data-state", v.state);
    body.setAttribute("data-hint", v.hint || "");
    if (v.lang) { document.documentElement.lang = v.lang; }
    if (typeof v.guide === "number" && v.guide > 0) { guide = v.guide; layout(); }
    template = String(v.text);
    msg.textContent = template;
    total = typeof v.total_ms === "number" ? v.total_ms : 0;
    if (typeof v.remaining_ms === "number") {
      deadline = Date.now() + v.remaining_ms;
      tick();
      timer = setInterval(tick, 100);
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
  if (view) {
    // The stream starts after the page's load event: an MJPEG stream with
    // no frame yet (a camera still opening) would hold that event forever.
    var start = function () { view.src = "/preview.mjpeg"; };
    if (document.readyState === "complete") { start(); } else { window.addEventListener("load", start); }
    view.addEventListener("load", layout);
    // The stream of frames may end while the agent restarts: reopen it.
    view.addEventListener("error", function () {
      setTimeout(function () { view.src = "/preview.mjpeg?" + Date.now(); }, 2000);
    });
  }
  window.addEventListener("resize", layout);
  setInterval(layout, 1000);
  layout();
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
<body class="tone-{{.Tone}}" data-state="{{.State}}" data-hint="{{.Hint}}" data-guide="{{.Guide}}">
{{if .Preview}}<img id="view" alt="">{{end}}
<div id="oval" aria-hidden="true"></div>
{{if .Logo}}<img id="logo" src="/logo" alt="">{{end}}
<section id="band">
<div id="icon" aria-hidden="true"></div>
<h1 id="msg" aria-live="assertive">{{.Text}}</h1>
<div id="bar"><div id="fill"></div></div>
</section>
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
func pageCSP(css string) string {
	return "default-src 'none'; script-src " + cspHash(pageJS) + "; style-src " + cspHash(css) +
		"; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}

type page struct {
	tmpl         *template.Template
	lang         string
	reconnecting string
	preview      bool
	logo         bool
}

func cspHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

func newPage(lang, reconnecting string, preview, logo bool) (*page, error) {
	t, err := template.New("page").Parse(pageHTML)
	if err != nil {
		return nil, fmt.Errorf("parse page: %w", err)
	}
	return &page{
		tmpl:         t,
		lang:         lang,
		reconnecting: reconnecting,
		preview:      preview,
		logo:         logo,
	}, nil
}

func (p *page) render(v view, text, css string, selfView bool) ([]byte, error) {
	var buf bytes.Buffer
	err := p.tmpl.Execute(&buf, struct {
		Lang, Tone, State, Hint, Text, Reconnecting string
		Guide                                       float64
		Preview, Logo                               bool
	}{p.lang, v.Tone, v.State.String(), v.Hint, text, p.reconnecting, v.Guide, p.preview && selfView, p.logo})
	if err != nil {
		return nil, fmt.Errorf("render page: %w", err)
	}
	out := bytes.Replace(buf.Bytes(), []byte("<style>"+styleMarker+"</style>"), []byte("<style>"+css+"</style>"), 1)
	out = bytes.Replace(out, []byte("<script>"+scriptMarker+"</script>"), []byte("<script>"+pageJS+"</script>"), 1)
	return out, nil
}
