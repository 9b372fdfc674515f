// p4d view: the page script. Plain DOM + canvas, no library, nothing loaded from anywhere:
// everything comes from the JSON in <script id="p4d-data"> written by p4d/inspect/view.py.
(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("p4d-data").textContent);
  var NAMES = { depth: "depth", flow: "flow", motion: "motion", camray: "rays" };
  var ORDER = ["depth", "flow", "motion", "camray"];
  var state = { clip: 0, frame: 0, layer: "teacher", playing: false, timer: null, hover: null,
                yaw: -0.6, pitch: 0.45 };
  var clip, images, values, zoom;

  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") e.textContent = attrs[k]; else e.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { if (c) e.appendChild(c); });
    return e;
  }

  // float16 little-endian base64 -> Float32Array (exact: every half is a float32)
  function f16(b64) {
    var bin = atob(b64), n = bin.length >> 1, out = new Float32Array(n);
    for (var i = 0; i < n; i++) {
      var h = bin.charCodeAt(2 * i) | (bin.charCodeAt(2 * i + 1) << 8);
      var s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
      out[i] = e === 0 ? s * m * Math.pow(2, -24) : e === 31 ? (m ? NaN : s * Infinity)
        : s * (1 + m / 1024) * Math.pow(2, e - 15);
    }
    return out;
  }

  function fmt(x, d) { return isFinite(x) ? Number(x).toPrecision(d || 4) : String(x); }

  // --- store overview -----------------------------------------------------------------------
  function overview() {
    var ov = DATA.overview, embedded = {};
    DATA.clips.forEach(function (c, i) { embedded[c.clip] = i; });
    var st = ov.status, box = el("section", { id: "overview" });
    box.appendChild(el("h1", { text: "p4d view" }));
    if (ov.random_teacher) box.appendChild(el("p", { "class": "random", text: ov.random_teacher }));
    box.appendChild(el("p", { text: "store " + ov.url + ": " + ov.num_clips + " clips — " + st.done + " done, " +
      st.failed + " failed, " + st.pending + " pending. " + ov.spec }));
    var cc = ov.codec_check, codec = "F_4D codec " + cc.codec + " self-check: " + cc.checked + " clips checked";
    Object.keys(cc.levels).forEach(function (k) { codec += "; " + k + ": " + cc.levels[k]; });
    if (cc.mean_cosine) codec += "; mean token cosine min/median/max " + cc.mean_cosine.map(function (v) { return v.toFixed(4); }).join(" / ") +
      ", worst " + cc.worst_cosine.map(function (v) { return v.toFixed(4); }).join(" / ");
    box.appendChild(el("p", { id: "codec-check", text: codec }));
    var table = el("table", { id: "videos" }, [el("tr", {}, ["video", "clips done / failed / pending", "clips"].map(function (t) {
      return el("th", { text: t }); }))]);
    ov.videos.forEach(function (v) {
      var bar = el("div", { "class": "bar", title: v.done + " done, " + v.failed + " failed, " + v.pending + " pending" });
      ["done", "failed", "pending"].forEach(function (k) {
        if (v[k]) bar.appendChild(el("span", { "class": "s-" + k, style: "flex:" + v[k] }));
      });
      var links = el("td");
      v.status.forEach(function (s, k) {
        var c = v.first + k, reason = v.reasons[String(c)] || "";
        var title = ["pending", "done", "failed"][s] + (reason ? ": " + reason : "");
        if (c in embedded) links.appendChild(el("a", { "class": "clip st-" + s, href: "#clip-" + c, title: title, text: String(c) }));
        else if (DATA.served && s === 1) links.appendChild(el("a", { "class": "clip st-" + s, href: "/clip/" + c, title: title, text: String(c) }));
        else links.appendChild(el("span", { "class": "clip st-" + s, title: title + (s === 1 ? " (not embedded: p4d view STORE --clip " + c + ")" : ""), text: String(c) }));
      });
      table.appendChild(el("tr", {}, [el("td", { text: v.path + (v.note ? " (" + v.note + ")" : "") }),
        el("td", {}, [bar, el("span", { text: v.done + " / " + v.failed + " / " + v.pending })]), links]));
    });
    box.appendChild(table);
    return box;
  }

  // --- one clip -----------------------------------------------------------------------------
  function loadClip(i) {
    clip = DATA.clips[i]; state.clip = i; state.frame = 0; state.hover = null;
    if (!clip.layers[state.layer]) state.layer = "teacher";
    zoom = Math.max(1, Math.floor(240 / Math.max(clip.grid[0], clip.grid[1])));
    images = {}; values = {};
    var pending = [];
    function img(key, uri) {
      var im = new Image(); images[key] = im;
      pending.push(new Promise(function (ok, bad) { im.onload = ok; im.onerror = function () { bad(new Error("image " + key)); }; }));
      im.src = uri;
    }
    img("frames", clip.frames);
    Object.keys(clip.layers).forEach(function (layer) {
      Object.keys(clip.layers[layer]).forEach(function (m) {
        var part = clip.layers[layer][m];
        img(layer + "/" + m, part.img);
        if (part.values) values[layer + "/" + m] = f16(part.values);
      });
    });
    clip.pca.forEach(function (p) { img("pca/" + p.tap, p.img); });
    render();
    return Promise.all(pending).then(function () { draw(); document.body.dataset.ready = "1"; });
  }

  function canvas(id, w, h) {
    var c = el("canvas", { id: id, "class": "map", width: w, height: h });
    c.style.width = (w * zoom) + "px"; c.style.height = (h * zoom) + "px";
    return c;
  }

  function legend(m) {
    var L = clip.legends, box = el("div", { "class": "legend", id: "legend-" + m });
    if (state.layer === "error" && L.error && L.error[m]) {
      var e = L.error[m];
      box.appendChild(el("div", { text: NAMES[m] + " error (" + e.unit + "), magma scale 0 .. p" + e.percentile + " of this clip = " + fmt(e.top, 3) + " " + e.unit + " (clipped above)" }));
      return box;
    }
    var l = L[m]; if (!l) return box;
    box.appendChild(el("div", { text: l.text }));
    if (m === "depth") { box.appendChild(el("img", { src: l.bar, alt: "depth colour bar" })); box.appendChild(el("div", { text: fmt(l.lo) + " (near) .. " + fmt(l.hi) + " (far)" })); }
    if (m === "flow") { box.appendChild(el("img", { src: l.wheel, alt: "flow colour wheel" })); box.appendChild(el("div", { text: "rim = " + fmt(l.rim, 3) + " px; right = red, down = orange, left = sky blue, up = violet" })); }
    if (m === "motion") { var sw = el("span", { "class": "swatch" }); sw.style.background = "rgb(" + l.color.join(",") + ")"; box.appendChild(el("div", {}, [sw, el("span", { text: " overlay colour, opacity 0.6 × σ" })])); }
    return box;
  }

  function render() {
    var app = document.getElementById("app");
    app.textContent = "";
    app.appendChild(overview());
    var sec = el("section", { id: "clip-" + clip.clip });
    sec.appendChild(el("h2", { text: "clip " + clip.clip }));
    var title = el("pre", { id: "clip-title", text: clip.title.join("\n") });
    sec.appendChild(title);
    sec.appendChild(el("p", { id: "budget", text: "data: " + (clip.stride === 1 ? "every pixel" : "every " + clip.stride + "th pixel in x and y") + " of the " +
      clip.size[0] + "×" + clip.size[1] + " maps (" + clip.grid[0] + "×" + clip.grid[1] + ") to fit the " + clip.budget_mb + " MB budget per clip" }));
    var n = clip.frame_index.length;
    var slider = el("input", { id: "frame", type: "range", min: 0, max: n - 1, step: 1, value: 0, "aria-label": "frame" });
    slider.addEventListener("input", function () { setFrame(parseInt(slider.value, 10)); });
    var play = el("button", { id: "play", text: "play" });
    play.addEventListener("click", function () { state.playing ? stop() : start(); });
    var controls = el("div", { "class": "controls" }, [play, slider, el("span", { id: "frame-label" })]);
    if (DATA.clips.length > 1) {
      var sel = el("select", { id: "clip-select" });
      DATA.clips.forEach(function (c, i) { var o = el("option", { value: i, text: "clip " + c.clip }); if (i === state.clip) o.selected = true; sel.appendChild(o); });
      sel.addEventListener("change", function () { location.hash = "clip-" + DATA.clips[sel.value].clip; });
      controls.insertBefore(sel, play);
    }
    if (clip.layers.student) {
      var tog = el("span", { "class": "toggle" });
      ["teacher", "student", "error"].forEach(function (layer) {
        var b = el("button", { id: "layer-" + layer, text: layer, "class": layer === state.layer ? "on" : "" });
        b.addEventListener("click", function () { state.layer = layer; render(); draw(); });
        tog.appendChild(b);
      });
      controls.appendChild(tog);
    }
    sec.appendChild(controls);
    var gh = clip.grid[0], gw = clip.grid[1], panels = el("div", { "class": "panels" });
    var views = [["frames", "frame"]].concat(ORDER.filter(function (m) { return clip.layers.teacher[m]; })
      .map(function (m) { return [m, NAMES[m] + " (" + state.layer + ")"]; }));
    views.forEach(function (v) {
      var c = canvas("view-" + v[0], gw, gh);
      c.addEventListener("mousemove", function (e) {
        var r = c.getBoundingClientRect();  // border box: take the border off, as the content is drawn inside it
        var gx = Math.min(gw - 1, Math.max(0, Math.floor((e.clientX - r.left - c.clientLeft) * gw / c.clientWidth)));
        var gy = Math.min(gh - 1, Math.max(0, Math.floor((e.clientY - r.top - c.clientTop) * gh / c.clientHeight)));
        state.hover = [gy, gx]; readout();
      });
      panels.appendChild(el("figure", {}, [el("figcaption", { text: v[1] }), c, v[0] === "frames" ? null : legend(v[0])]));
    });
    sec.appendChild(panels);
    sec.appendChild(el("h2", { text: "values under the cursor" }));
    sec.appendChild(el("div", { id: "readout-where", text: "hover a map" }));
    var layers = Object.keys(clip.layers), table = el("table", { id: "readout" });
    table.appendChild(el("tr", {}, [el("th", { text: "map" })].concat(layers.map(function (l) {
      return el("th", { text: l, "class": l === state.layer ? "active" : "" }); }))));
    ORDER.filter(function (m) { return clip.layers.teacher[m]; }).forEach(function (m) {
      table.appendChild(el("tr", {}, [el("td", { text: NAMES[m] })].concat(layers.map(function (l) {
        return el("td", { id: "readout-" + l + "-" + m, "class": l === state.layer ? "active" : "" }); }))));
    });
    sec.appendChild(table);
    var lower = el("div", { "class": "panels" });
    if (clip.camera.teacher) {
      var cam = el("canvas", { id: "camera", width: 420, height: 420 });
      cameraDrag(cam);
      lower.appendChild(el("figure", {}, [el("figcaption", { text: "camera from the rays (drag to rotate; current frame red" +
        (clip.camera.student ? "; student dashed orange" : "") + ")" }), cam, el("div", { id: "camera-angle", "class": "legend" })]));
    }
    var pcaBox = el("div", {}, [el("h2", { text: "F_4D PCA per tap (one basis per clip and tap)" })]), row = el("div", { "class": "panels" });
    clip.pca.forEach(function (p) {
      var c = el("canvas", { id: "pca-" + p.tap, "class": "map", width: p.grid[1], height: p.grid[0] });
      var z = Math.max(1, Math.floor(160 / Math.max(p.grid[0], p.grid[1])));
      c.style.width = p.grid[1] * z + "px"; c.style.height = p.grid[0] * z + "px";
      row.appendChild(el("figure", {}, [el("figcaption", { text: "tap " + p.tap }), c]));
    });
    pcaBox.appendChild(row);
    lower.appendChild(pcaBox);
    sec.appendChild(lower);
    app.appendChild(sec);
  }

  function drawSprite(id, key, rows, cols, t) {
    var c = document.getElementById(id), im = images[key];
    if (!c || !im || !im.complete) return;
    var ctx = c.getContext("2d");
    ctx.imageSmoothingEnabled = false;
    ctx.clearRect(0, 0, c.width, c.height);
    ctx.drawImage(im, 0, t * rows, cols, rows, 0, 0, c.width, c.height);
  }

  function draw() {
    var t = state.frame, gh = clip.grid[0], gw = clip.grid[1], n = clip.frame_index.length;
    drawSprite("view-frames", "frames", gh, gw, t);
    ORDER.forEach(function (m) {
      var part = clip.layers[state.layer][m];
      if (!part) return;
      var g = m === "camray" ? (clip.layers.teacher.camray.grid) : [gh, gw];
      drawSprite("view-" + m, state.layer + "/" + m, g[0], g[1], t);
    });
    clip.pca.forEach(function (p) { drawSprite("pca-" + p.tap, "pca/" + p.tap, p.grid[0], p.grid[1], Math.floor(t * p.latent_frames / n)); });
    document.getElementById("frame-label").textContent = "frame " + t + " of " + n + ": source frame #" + clip.frame_index[t] +
      ", t = " + clip.timestamp[t].toFixed(3) + " s";
    document.getElementById("frame").value = t;
    drawCamera();
    readout();
  }

  function setFrame(t) { state.frame = Math.max(0, Math.min(clip.frame_index.length - 1, t)); draw(); }

  // play at the clip's real timing: wait t[i+1] - t[i] seconds between frames
  function start() {
    state.playing = true; document.getElementById("play").textContent = "pause";
    (function step() {
      var ts = clip.timestamp, t = state.frame, n = ts.length;
      var wait = t + 1 < n ? ts[t + 1] - ts[t] : (ts[n - 1] - ts[0]) / Math.max(n - 1, 1);
      state.timer = setTimeout(function () { setFrame((t + 1) % n); if (state.playing) step(); }, Math.max(1, wait * 1000));
    })();
  }
  function stop() { state.playing = false; clearTimeout(state.timer); document.getElementById("play").textContent = "play"; }

  // --- the read-out -------------------------------------------------------------------------
  function sample(layer, m, gy, gx) {
    var v = values[layer + "/" + m], t = state.frame, gh = clip.grid[0], gw = clip.grid[1];
    if (!v) return null;
    if (m === "depth") return v[(t * gh + gy) * gw + gx];
    if (m === "motion") return v[(t * gh + gy) * gw + gx];
    if (m === "flow") { var k = 2 * ((t * gh + gy) * gw + gx); return [v[k], v[k + 1]]; }
    // rays: the patch whose cell holds the source pixel (as inspect's nearest upsampling)
    var g = clip.layers.teacher.camray.grid, y = gy * clip.stride, x = gx * clip.stride;
    var py = Math.min(g[0] - 1, Math.floor((y + 0.5) * g[0] / clip.size[0]));
    var px = Math.min(g[1] - 1, Math.floor((x + 0.5) * g[1] / clip.size[1]));
    var o = 6 * ((t * g[0] + py) * g[1] + px), d = [v[o], v[o + 1], v[o + 2]];
    var norm = Math.hypot(d[0], d[1], d[2]) || 1;
    return { dir: d.map(function (a) { return a / norm; }), patch: [py, px] };
  }
  function sigmoid(x) { return 1 / (1 + Math.exp(-x)); }

  function readout() {
    if (!state.hover) return;
    var gy = state.hover[0], gx = state.hover[1], t = state.frame;
    var where = document.getElementById("readout-where");
    where.textContent = "pixel (x " + gx * clip.stride + ", y " + gy * clip.stride + ") of frame " + t + " (source #" + clip.frame_index[t] + ")";
    where.dataset.x = gx * clip.stride; where.dataset.y = gy * clip.stride; where.dataset.frame = t;
    ORDER.forEach(function (m) {
      ["teacher", "student", "error"].forEach(function (layer) {
        var cell = document.getElementById("readout-" + layer + "-" + m);
        if (!cell) return;
        var text, val;
        if (layer !== "error") {
          var s = sample(layer, m, gy, gx);
          if (m === "depth") { val = s; text = fmt(s); }
          else if (m === "motion") { val = sigmoid(s); text = "p = " + fmt(val, 3) + " (logit " + fmt(s, 3) + ")"; }
          else if (m === "flow") { val = s.join(","); text = t === 0 ? "frame 0: no flow" : "(" + fmt(s[0], 3) + ", " + fmt(s[1], 3) + ") px, |f| " + fmt(Math.hypot(s[0], s[1]), 3) + " px"; }
          else { val = s.dir.join(","); text = "d̂ = (" + s.dir.map(function (a) { return a.toFixed(3); }).join(", ") + "), patch (" + s.patch[1] + ", " + s.patch[0] + ")"; }
        } else {
          var a = sample("teacher", m, gy, gx), b = sample("student", m, gy, gx);
          if (m === "depth") val = a > 0 ? Math.abs(b - a) / a : NaN;
          else if (m === "motion") val = Math.abs(sigmoid(b) - sigmoid(a));
          else if (m === "flow") val = t === 0 ? NaN : Math.hypot(b[0] - a[0], b[1] - a[1]);
          else { var c = a.dir[0] * b.dir[0] + a.dir[1] * b.dir[1] + a.dir[2] * b.dir[2]; val = Math.acos(Math.max(-1, Math.min(1, c))) * 180 / Math.PI; }
          text = fmt(val, 3) + " " + { depth: "rel.", flow: "px", motion: "prob.", camray: "deg" }[m];
        }
        cell.textContent = text; cell.dataset.value = String(val);
      });
    });
  }

  // --- the camera plot: orthographic, rotated by yaw (about the up axis) and pitch -------------
  var VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
  function viridis(u) {
    var k = Math.min(3, Math.floor(u * 4)), f = u * 4 - k, a = VIRIDIS[k], b = VIRIDIS[k + 1];
    return "rgb(" + [0, 1, 2].map(function (i) { return Math.round(a[i] + f * (b[i] - a[i])); }).join(",") + ")";
  }
  function cameraDrag(c) {
    var last = null;
    c.addEventListener("mousedown", function (e) { last = [e.clientX, e.clientY]; e.preventDefault(); });
    window.addEventListener("mouseup", function () { last = null; });
    c.addEventListener("mousemove", function (e) {
      if (!last) return;
      state.yaw += (e.clientX - last[0]) * 0.01;
      state.pitch = Math.max(-1.5, Math.min(1.5, state.pitch + (e.clientY - last[1]) * 0.01));
      last = [e.clientX, e.clientY]; drawCamera();
    });
  }
  function drawCamera() {
    var c = document.getElementById("camera");
    if (!c) return;
    var ctx = c.getContext("2d"), W = c.width, H = c.height, cams = clip.camera;
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, W, H);
    var info = document.getElementById("camera-angle");
    if (!cams.teacher.centres) { ctx.fillStyle = "#000"; ctx.fillText(cams.teacher.note, 10, H / 2); info.textContent = ""; return; }
    var pts = [];
    Object.keys(cams).forEach(function (k) { if (cams[k] && cams[k].centres) { pts = pts.concat(cams[k].centres); cams[k].corners.forEach(function (q) { pts = pts.concat(q); }); } });
    var mid = [0, 1, 2].map(function (i) { var lo = Infinity, hi = -Infinity; pts.forEach(function (p) { lo = Math.min(lo, p[i]); hi = Math.max(hi, p[i]); }); return (lo + hi) / 2; });
    var rad = 1e-9; pts.forEach(function (p) { rad = Math.max(rad, Math.hypot(p[0] - mid[0], p[1] - mid[1], p[2] - mid[2])); });
    var cy = Math.cos(state.yaw), sy = Math.sin(state.yaw), cp = Math.cos(state.pitch), sp = Math.sin(state.pitch);
    var scale = 0.42 * Math.min(W, H) / rad;
    function proj(p) {  // p = (x right, z depth, up)
      var x = p[0] - mid[0], z = p[1] - mid[1], u = p[2] - mid[2];
      var xr = cy * x - sy * z, zr = sy * x + cy * z;
      return [W / 2 + scale * xr, H / 2 - scale * (cp * u - sp * zr)];
    }
    function line(a, b) { var p = proj(a), q = proj(b); ctx.beginPath(); ctx.moveTo(p[0], p[1]); ctx.lineTo(q[0], q[1]); ctx.stroke(); }
    // axes through the middle, one grid unit of the rays' camera each way, labelled
    var unit = rad * 0.8;
    ctx.font = "12px sans-serif"; ctx.lineWidth = 1; ctx.strokeStyle = "#aaa"; ctx.fillStyle = "#555";
    [["x", [1, 0, 0]], ["z", [0, 1, 0]], ["-y", [0, 0, 1]]].forEach(function (ax) {
      var a = mid.map(function (m, i) { return m - unit * ax[1][i]; }), b = mid.map(function (m, i) { return m + unit * ax[1][i]; });
      line(a, b); var q = proj(b); ctx.fillText(ax[0] + " " + fmt(b[ax[1].indexOf(1)], 2), q[0] + 3, q[1]);
    });
    function frusta(cam, dashed, colour) {
      var n = cam.centres.length;
      ctx.setLineDash(dashed ? [4, 3] : []);
      for (var t = 0; t < n; t++) {
        var cur = t === state.frame;
        ctx.strokeStyle = cur ? "#e00" : (colour || viridis(n > 1 ? t / (n - 1) : 0)); ctx.lineWidth = cur ? 2.5 : 1;
        var q = cam.corners[t];
        for (var k = 0; k < 4; k++) { line(q[k], q[(k + 1) % 4]); line(cam.centres[t], q[k]); }
      }
      ctx.strokeStyle = colour || "#000"; ctx.lineWidth = 1.2;
      for (t = 1; t < n; t++) line(cam.centres[t - 1], cam.centres[t]);
      ctx.setLineDash([]);
      if (!dashed) {
        ctx.fillStyle = "#000";
        for (t = 0; t < n; t++) { var p = proj(cam.centres[t]); ctx.fillStyle = t === state.frame ? "#e00" : "#000"; ctx.fillText(String(t), p[0] + 4, p[1] - 4); }
      }
    }
    if (cams.student && cams.student.centres) frusta(cams.student, true, "#e80");
    frusta(cams.teacher, false, null);
    info.textContent = "yaw " + Math.round(state.yaw * 180 / Math.PI) + "°, pitch " + Math.round(state.pitch * 180 / Math.PI) +
      "°; axes in ray-grid units of frame 0's camera; frame " + state.frame + " red";
    info.dataset.yaw = state.yaw;
  }

  function fromHash() {
    var m = /^#clip-(\d+)$/.exec(location.hash), want = m ? parseInt(m[1], 10) : null;
    for (var i = 0; i < DATA.clips.length; i++) if (DATA.clips[i].clip === want && i !== state.clip) { stop(); loadClip(i); return; }
  }
  window.addEventListener("hashchange", fromHash);
  document.addEventListener("keydown", function (e) {
    if (e.target && e.target.id === "frame") return;  // the slider handles its own keys
    if (e.key === "ArrowRight") setFrame(state.frame + 1);
    if (e.key === "ArrowLeft") setFrame(state.frame - 1);
  });
  loadClip(0).then(fromHash);
})();
