"""The upload page of ``podium serve``: one self-contained HTML page (no external script, font or style).

Drag and drop one or several images onto it (or choose them): each is posted to ``/predict`` and shown with its
decision (the label set or grade, with the run's thresholds or cut points) and its top classes with probabilities.
"""

from __future__ import annotations

import html
from typing import Any

_STYLE = """
body{font:15px/1.4 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1c2430}
header{background:#1f3a5f;color:#fff;padding:14px 24px}header h1{margin:0;font-size:20px}
header p{margin:4px 0 0;opacity:.85;font-size:13px}main{padding:20px 24px}
#drop{border:2px dashed #7d8da3;border-radius:10px;padding:28px;text-align:center;background:#fff;cursor:pointer}
#drop.over{background:#e8f0fb;border-color:#1f63c6}#token{margin:10px 0;display:none}
#results{display:flex;flex-wrap:wrap;gap:16px;margin-top:20px}
.result{background:#fff;border-radius:10px;box-shadow:0 1px 3px #0002;width:240px;overflow:hidden}
.result img{width:240px;height:180px;object-fit:cover;display:block;background:#ddd}
.result .body{padding:10px 12px}.label{font-weight:700;font-size:17px;margin-bottom:6px}
.name{font-size:12px;color:#667;word-break:break-all}.error{color:#b00020;font-weight:600}
.bar{display:flex;flex-wrap:wrap;align-items:center;gap:2px 6px;font-size:13px;margin:4px 0}
.bar span.c{flex-basis:100%;overflow-wrap:anywhere}  /* the whole class name, above its bar */
.bar div{flex:1;background:#e4e8ee;border-radius:3px;height:9px}
.bar div i{display:block;height:9px;border-radius:3px;background:#1f63c6}
"""

_SCRIPT = """
const drop = document.getElementById('drop'), input = document.getElementById('files');
const results = document.getElementById('results'), status = document.getElementById('status');
drop.onclick = () => input.click();
drop.ondragover = e => { e.preventDefault(); drop.classList.add('over'); };
drop.ondragleave = () => drop.classList.remove('over');
drop.ondrop = e => { e.preventDefault(); drop.classList.remove('over'); send([...e.dataTransfer.files]); };
input.onchange = () => send([...input.files]);
function esc(s) { const d = document.createElement('div'); d.textContent = s; return d.innerHTML; }
async function send(files) {
  if (!files.length) return;
  const form = new FormData();
  files.forEach(f => form.append('files', f, f.name));
  const headers = {};
  const token = document.getElementById('tokenvalue').value;
  if (token) headers['Authorization'] = 'Bearer ' + token;
  status.textContent = 'predicting ' + files.length + ' image(s)...';
  let r, body;
  try { r = await fetch('predict', {method: 'POST', body: form, headers}); body = await r.json(); }
  catch (e) { status.textContent = 'request failed: ' + e; return; }
  if (!r.ok) { status.innerHTML = '<span class="error">' + r.status + ': ' + esc(body.detail) + '</span>'; return; }
  status.textContent = body.results.length + ' image(s) predicted';
  body.results.forEach((res, i) => {
    const card = document.createElement('div'); card.className = 'result';
    const url = URL.createObjectURL(files[i]);
    let inner = '<img alt="" src="' + url + '"><div class="body">';
    if (res.error) { inner += '<div class="error">' + esc(res.error) + '</div>'; }
    else {
      inner += '<div class="label">' + esc(res.label) + '</div>';
      res.top.forEach(t => { const pct = (100 * t.prob).toFixed(1);
        inner += '<div class="bar"><span class="c">' + esc(t.class) + '</span><div><i style="width:' + pct
          + '%"></i></div><span>' + pct + '%</span></div>'; });
    }
    card.innerHTML = inner + '<div class="name">' + esc(res.name) + '</div></div>';
    results.prepend(card);
  });
}
"""


def page(info: dict[str, Any], needs_token: bool, limits: dict[str, int]) -> str:
    """The page for a model described by ``info`` (``OnnxModel.info``)."""
    score = info.get("cv_score")
    cv = f"CV {info.get('metric')} {score:.4f}" if isinstance(score, (int, float)) else "no CV score"
    classes = ", ".join(info["classes"][:12]) + (" ..." if len(info["classes"]) > 12 else "")
    sub = (f"{info.get('task')} &middot; {len(info['classes'])} classes ({html.escape(classes)}) &middot; "
           f"{html.escape(str(info.get('model')))} &middot; {cv}")
    token = "display:block" if needs_token else "display:none"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>podium serve: {html.escape(str(info.get('source')))}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_STYLE}</style></head>
<body><header><h1>podium &middot; {html.escape(str(info.get('source')))}</h1><p>{sub}</p></header><main>
<div id="token" style="{token}">API token: <input id="tokenvalue" type="password" size="40"></div>
<div id="drop">Drop images here, or click to choose (up to {limits['max_images']} at once)
<input id="files" type="file" accept="image/*" multiple hidden></div>
<p id="status"></p><div id="results"></div>
<script>{_SCRIPT}</script></main></body></html>"""
