/* Sibiao map helpers: the GCJ-02 display CRS, catalog styles, base maps, layers drawn from
 * the platform's vector tiles or GeoJSON, popups. Loaded after Leaflet and Leaflet.VectorGrid;
 * everything hangs off window.Sibiao. No network access other than the platform's API. */
(function () {
  'use strict';
  var S = (window.Sibiao = window.Sibiao || {});

  // Leaflet.VectorGrid 1.3 calls L.DomEvent.fakeStop on a click, which Leaflet 1.8 removed.
  if (window.L && !L.DomEvent.fakeStop) {
    L.DomEvent.fakeStop = function (e) {
      L.DomEvent.stopPropagation(e);
      return this;
    };
  }

  // ---- GCJ-02: the published offset, as schemas/geodesy.py computes it --------------------
  var KRASOVSKY_A = 6378245.0;
  var KRASOVSKY_EE = 0.00669342162296594323;
  var DEG = 180 / Math.PI;

  function inChina(lon, lat) {
    return lon >= 72.004 && lon <= 137.8347 && lat >= 0.8293 && lat <= 55.8271;
  }

  function offset(lon, lat) {
    var x = lon - 105.0, y = lat - 35.0, px = Math.PI * x, py = Math.PI * y;
    var wave = 20.0 * Math.sin(6.0 * px) + 20.0 * Math.sin(2.0 * px);
    var north = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y +
      0.2 * Math.sqrt(Math.abs(x)) + (2.0 / 3.0) * (wave + 20.0 * Math.sin(py) +
      40.0 * Math.sin(py / 3.0) + 160.0 * Math.sin(py / 12.0) + 320.0 * Math.sin(py / 30.0));
    var east = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y +
      0.1 * Math.sqrt(Math.abs(x)) + (2.0 / 3.0) * (wave + 20.0 * Math.sin(px) +
      40.0 * Math.sin(px / 3.0) + 150.0 * Math.sin(px / 12.0) + 300.0 * Math.sin(px / 30.0));
    var phi = lat / DEG, w = 1.0 - KRASOVSKY_EE * Math.sin(phi) * Math.sin(phi);
    var meridian = (KRASOVSKY_A * (1.0 - KRASOVSKY_EE)) / (w * Math.sqrt(w));
    var parallel = (KRASOVSKY_A / Math.sqrt(w)) * Math.cos(phi);
    return [(east / parallel) * DEG, (north / meridian) * DEG];
  }

  function fromWgs84(lon, lat) {
    if (!inChina(lon, lat)) return [lon, lat];
    var d = offset(lon, lat);
    return [lon + d[0], lat + d[1]];
  }

  function toWgs84(lon, lat) {
    if (!inChina(lon, lat)) return [lon, lat];
    var d = offset(lon, lat), x = lon - d[0], y = lat - d[1];
    for (var i = 0; i < 30; i++) {
      var f = fromWgs84(x, y), ex = f[0] - lon, ey = f[1] - lat;
      if (Math.abs(ex) < 1e-10 && Math.abs(ey) < 1e-10) break;
      x -= ex;
      y -= ey;
    }
    return [x, y];
  }

  S.gcj02 = { fromWgs84: fromWgs84, toWgs84: toWgs84 };

  if (window.L) {
    var merc = L.Projection.SphericalMercator;
    // Web Mercator of GCJ-02 positions: lat/lngs stay WGS84 everywhere in the page, and are
    // drawn where GCJ-02 tiles (AMap, Tencent) show them.
    L.Projection.GCJ02 = L.extend({}, merc, {
      project: function (latlng) {
        var p = fromWgs84(latlng.lng, latlng.lat);
        return merc.project(L.latLng(p[1], p[0]));
      },
      unproject: function (point) {
        var ll = merc.unproject(point), p = toWgs84(ll.lng, ll.lat);
        return L.latLng(p[1], p[0]);
      },
    });
    L.CRS.GCJ02 = L.extend({}, L.CRS.EPSG3857, { code: 'GCJ02', projection: L.Projection.GCJ02 });
  }

  // ---- small DOM and data helpers ---------------------------------------------------------
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (key === 'text') node.textContent = attrs[key];
      else if (key === 'class') node.className = attrs[key];
      else if (attrs[key] !== null && attrs[key] !== undefined) node.setAttribute(key, attrs[key]);
    });
    (children || []).forEach(function (child) {
      if (child === null || child === undefined) return;
      node.appendChild(typeof child === 'string' ? document.createTextNode(child) : child);
    });
    return node;
  }
  S.el = el;

  // ---- signing in: a bearer token from POST /auth/token, kept for the browser tab ----------
  var TOKEN_KEY = 'sibiao.token';

  /** Return the expiry (ms since the epoch) of a JWT, or null when it cannot be read. */
  function expiry(token) {
    try {
      var part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      var claims = JSON.parse(window.atob(part + '==='.slice((part.length + 3) % 4)));
      return typeof claims.exp === 'number' ? claims.exp * 1000 : null;
    } catch (err) {
      return null;
    }
  }

  S.auth = {
    /** The token kept for this tab (it survives reloads and moving between map pages), until it expires. */
    token: function () {
      var token = null;
      try {
        token = window.sessionStorage.getItem(TOKEN_KEY);
      } catch (err) {
        return null;
      }
      var until = token && expiry(token);
      if (until && until <= Date.now()) {
        S.auth.clear();
        return null;
      }
      return token;
    },
    set: function (token) { window.sessionStorage.setItem(TOKEN_KEY, token); },
    clear: function () {
      try {
        window.sessionStorage.removeItem(TOKEN_KEY);
      } catch (err) { /* storage unavailable: nothing kept */ }
    },
    /** Return request headers with the token, when signed in. */
    headers: function (extra) {
      var headers = L_extend({}, extra || {});
      var token = S.auth.token();
      if (token) headers.Authorization = 'Bearer ' + token;
      return headers;
    },
  };

  function L_extend(target, source) {
    Object.keys(source).forEach(function (key) { target[key] = source[key]; });
    return target;
  }

  /** Show who is signed in or, after a refusal (reason), a sign-in form (POST /auth/token). */
  S.authBox = function (box, reason) {
    // Without a reason (a refused request) and without a token there is nothing to say.
    if (!box || (!reason && !S.auth.token())) return;
    box.textContent = '';
    box.hidden = false;
    if (reason && S.auth.token() && !box.dataset.checked) {
      // Refused although signed in: a token the server no longer takes (expired, revoked,
      // signed with another key) is dropped and the form shown; otherwise the role may not.
      box.dataset.checked = '1';
      S.fetchJson('/auth/me').then(function () {
        S.authBox(box, reason);
      }).catch(function (err) {
        if (err.status === 401) S.auth.clear();
        S.authBox(box, err.status === 401 ? '登录已过期，请重新登录 Your sign-in has expired; please sign in again' : reason);
      });
      return;
    }
    if (S.auth.token()) {
      if (reason) box.appendChild(el('p', { class: 'sibiao-error', text: '无权查看 Not allowed for your role: ' + reason }));
      var out = el('button', { type: 'button', class: 'sibiao-linkish', text: '退出 Sign out' });
      out.addEventListener('click', function () { S.auth.clear(); window.location.reload(); });
      var who = el('span', { text: '已登录 Signed in' });
      S.fetchJson('/auth/me').then(function (me) { who.textContent = '已登录 ' + me.name + ' (' + me.role + ')'; }).catch(function () {});
      box.appendChild(el('p', {}, [who, ' · ', out]));
      return;
    }
    var user = el('input', { name: 'username', autocomplete: 'username', placeholder: '用户名 user' });
    var pass = el('input', { name: 'password', type: 'password', autocomplete: 'current-password', placeholder: '密码 password' });
    var message = el('span', { class: 'sibiao-error' });
    var form = el('form', { class: 'sibiao-signin' }, [
      el('p', { text: reason }),
      user, pass, el('button', { type: 'submit', class: 'sibiao-button', text: '登录 Sign in' }), message,
    ]);
    form.addEventListener('submit', function (e) {
      e.preventDefault();
      var body = new URLSearchParams({ username: user.value, password: pass.value });
      fetch('/auth/token', { method: 'POST', body: body, headers: { Accept: 'application/json' } })
        .then(function (r) { return r.json().then(function (data) { return { ok: r.ok, data: data }; }); })
        .then(function (answer) {
          if (!answer.ok) throw new Error(answer.data.detail || '登录失败 sign-in failed');
          S.auth.set(answer.data.access_token);
          window.location.reload();
        })
        .catch(function (err) { message.textContent = ' ' + err.message; });
    });
    box.appendChild(form);
  };

  /** Download a URL of the API with the token (a plain link cannot send it). */
  S.download = function (url, name) {
    return fetch(url, { headers: S.auth.headers() }).then(function (r) {
      if (!r.ok) throw new Error('HTTP ' + r.status + ' (' + url + ')');
      return r.blob();
    }).then(function (blob) {
      var a = el('a', { href: URL.createObjectURL(blob), download: name });
      document.body.appendChild(a);
      a.click();
      a.remove();
    });
  };

  /** Make a link to the API send the token when clicked (while signed in). */
  S.authLink = function (a, name) {
    a.addEventListener('click', function (e) {
      if (!S.auth.token()) return;
      e.preventDefault();
      S.download(a.getAttribute('href'), name);
    });
    return a;
  };

  S.fetchJson = function (url) {
    return fetch(url, { headers: S.auth.headers({ Accept: 'application/json' }) }).then(function (response) {
      return response.text().then(function (body) {
        var data = null;
        try {
          data = body ? JSON.parse(body) : null;
        } catch (err) {
          data = null;
        }
        if (!response.ok) {
          var detail = data && (data.detail || data.title);
          var error = new Error((detail || 'HTTP ' + response.status) + ' (' + url + ')');
          error.status = response.status;
          throw error;
        }
        return data;
      });
    });
  };

  S.number = function (value) {
    return value === null || value === undefined ? '—' : Number(value).toLocaleString('zh-CN');
  };

  S.when = function (value) {
    if (!value) return '—';
    var date = new Date(value);
    return isNaN(date) ? String(value) : date.toLocaleString('zh-CN', { hour12: false });
  };

  S.table = function (head, rows) {
    return el('table', { class: 'sibiao-table' }, [
      el('thead', {}, [el('tr', {}, head.map(function (h) { return el('th', { text: h }); }))]),
      el('tbody', {}, rows.map(function (row) {
        return el('tr', {}, row.map(function (cell) {
          return el('td', {}, [cell instanceof Node ? cell : String(cell === null || cell === undefined ? '' : cell)]);
        }));
      })),
    ]);
  };

  S.popup = function (title, properties) {
    var rows = Object.keys(properties || {}).map(function (key) {
      var value = properties[key];
      return [key, value === null || value === undefined ? '' : String(value)];
    });
    return el('div', { class: 'sibiao-popup' }, [el('strong', { text: title }), S.table(['字段 field', '值 value'], rows)]);
  };

  // ---- layers -----------------------------------------------------------------------------
  function pane(map, name, zIndex) {
    if (!map.getPane(name)) map.createPane(name).style.zIndex = zIndex;
    return name;
  }

  /** Return a VectorGrid style function: the catalog style, hidden below minZoom; counts. */
  function styleFunction(spec, minZoom, counter) {
    return function (properties, zoom) {
      if (zoom < minZoom) return [];
      if (counter) counter.drawn += 1;
      return spec.style;
    };
  }

  function geoJsonOptions(spec, counter, paneName, interactive) {
    return {
      pane: paneName,
      interactive: interactive,
      style: function () { return spec.style; },
      pointToLayer: function (feature, latlng) {
        return L.circleMarker(latlng, L.extend({ pane: paneName }, spec.style));
      },
      onEachFeature: function (feature, layer) {
        if (counter) counter.drawn += 1;
        if (interactive) layer.bindPopup(S.popup(spec.zh + ' ' + (feature.id === undefined ? '' : '#' + feature.id), feature.properties));
      },
    };
  }

  /** A GeoJSON layer that reads the features in view from /collections/{code}/items. */
  function viewLayer(map, spec, counter, paneName, limit) {
    var group = L.geoJSON(null, geoJsonOptions(spec, counter, paneName, true));
    var ticket = 0;
    group.sibiaoInfo = { returned: 0, matched: 0 };
    function refresh() {
      if (!map.hasLayer(group)) return;
      if (map.getZoom() < (spec.overlayMinZoom || 0)) {
        group.clearLayers();
        counter.drawn = 0;
        return;
      }
      var b = map.getBounds();
      var bbox = [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map(function (v) { return v.toFixed(6); });
      var mine = ++ticket;
      S.fetchJson(spec.items + '?limit=' + limit + '&bbox=' + bbox.join(',')).then(function (fc) {
        if (mine !== ticket) return;
        group.clearLayers();
        counter.drawn = 0;
        group.addData(fc);
        group.sibiaoInfo = { returned: fc.numberReturned, matched: fc.numberMatched };
        group.fire('sibiao:loaded');
      }).catch(function (err) { group.fire('sibiao:error', { error: err }); });
    }
    map.on('moveend', refresh);
    group.on('add', refresh);
    return group;
  }

  function sliced(spec, data, counter, paneName, minZoom, interactive) {
    var styles = {};
    styles[spec.code] = styleFunction(spec, minZoom, counter);
    return L.vectorGrid.slicer(data, {
      rendererFactory: L.canvas.tile,
      vectorTileLayerName: spec.code,
      vectorTileLayerStyles: styles,
      interactive: interactive,
      pane: paneName,
      maxZoom: 22,
    });
  }

  /**
   * Add a layer to the map from its vector tiles (or, with GCJ-02 or embedded data, GeoJSON).
   * spec: {code, zh, en, style, tiles, items, overlayMinZoom, data?}. Returns the Leaflet layer,
   * with .sibiaoCounter.drawn counting features drawn.
   */
  S.overlay = function (map, spec, options) {
    var gcj02 = options && options.gcj02;
    var counter = { drawn: 0 };
    var paneName = pane(map, 'sibiao-layer', 380);
    var layer;
    if (spec.data && gcj02) {
      layer = L.geoJSON(spec.data, geoJsonOptions(spec, counter, paneName, true));
    } else if (spec.data) {
      layer = sliced(spec, spec.data, counter, paneName, 0, true);
    } else if (gcj02) {
      layer = viewLayer(map, spec, counter, paneName, 5000);
    } else {
      var styles = {};
      styles[spec.code] = styleFunction(spec, 0, counter);
      layer = L.vectorGrid.protobuf(spec.tiles, {
        fetchOptions: { headers: S.auth.headers() },
        rendererFactory: L.canvas.tile,
        vectorTileLayerStyles: styles,
        interactive: true,
        getFeatureId: function (f) { return f.id; },
        pane: paneName,
        minZoom: spec.overlayMinZoom || 0,
        maxZoom: 22,
      });
    }
    if (!gcj02) {
      // VectorGrid features: the clicked feature's properties (GeoJSON layers bind their own).
      layer.on('click', function (e) {
        var props = (e.layer && e.layer.properties) || {};
        L.popup().setLatLng(e.latlng).setContent(S.popup(spec.zh + ' ' + spec.en, props)).openOn(map);
      });
    }
    layer.sibiaoCounter = counter;
    return layer;
  };

  /**
   * Add the base map: the platform's own layers (vector tiles, or embedded GeoJSON in an
   * exported page) and/or an external provider's tiles. Returns {title: layer} for a switcher.
   */
  S.baseMap = function (map, cfg, embedded) {
    var bases = {};
    var paneName = pane(map, 'sibiao-base', 250);
    if (cfg.platform) {
      var group = L.layerGroup([], { attribution: cfg.platform.attribution });
      var counter = { drawn: 0 };
      cfg.platform.bands.forEach(function (band, i) {
        if (embedded) {
          band.layers.forEach(function (spec) {
            var data = embedded[spec.code];
            if (data && data.features && data.features.length) {
              group.addLayer(sliced(spec, data, counter, paneName, spec.minZoom, false));
            }
          });
          return;
        }
        var styles = {};
        band.layers.forEach(function (spec) { styles[spec.code] = styleFunction(spec, spec.minZoom, counter); });
        group.addLayer(L.vectorGrid.protobuf(band.url, {
          fetchOptions: { headers: S.auth.headers() },
          rendererFactory: L.canvas.tile,
          vectorTileLayerStyles: styles,
          interactive: false,
          pane: paneName,
          minZoom: band.minZoom,
          maxZoom: 22,
          zIndex: i + 1,
          attribution: cfg.platform.attribution,
        }));
      });
      group.sibiaoCounter = counter;
      bases[cfg.platform.title] = group;
    }
    (cfg.external || []).forEach(function (provider) {
      bases[provider.title] = L.layerGroup(provider.layers.map(function (t) {
        return L.tileLayer(t.url, { subdomains: t.subdomains, attribution: t.attribution, maxZoom: 18, pane: paneName });
      }));
    });
    var first = bases[cfg['default']] || bases[Object.keys(bases)[0]];
    if (first) first.addTo(map);
    return bases;
  };

  /** Add a small legend (bottom right): one swatch per entry {label, color, fill, round}. */
  S.legend = function (map, entries) {
    var control = L.control({ position: 'bottomright' });
    control.onAdd = function () {
      var box = el('div', { class: 'sibiao-legend' });
      entries.forEach(function (entry) {
        var swatch = el('span', { class: 'sibiao-swatch' + (entry.round ? ' round' : '') });
        swatch.style.borderColor = entry.color;
        swatch.style.background = entry.fill || 'transparent';
        box.appendChild(el('div', {}, [swatch, entry.label]));
      });
      return box;
    };
    control.addTo(map);
    return control;
  };

  /** Make the attribution plain text (no outside links on our pages). */
  S.quietAttribution = function (map) {
    if (map.attributionControl) map.attributionControl.setPrefix('Leaflet');
  };
})();
