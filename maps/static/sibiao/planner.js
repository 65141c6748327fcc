/* The planner's map: an incident point, the nearest features of chosen layers (GET /nearby)
 * with distance lines and labels, radius rings, raster values sampled at the point
 * (GET /rasters/{code}/point), the rasters as optional PNG tile overlays with a legend
 * (GET /rasters/{code}/tiles/...), and the coverage gaps of a chosen layer (GET /coverage).
 * Click the map to move the point. */
(function () {
  'use strict';
  var S = (window.Sibiao = window.Sibiao || {});
  var el = function () { return S.el.apply(null, arguments); };
  var PALETTE = ['#c62828', '#1565c0', '#2e7d32', '#6a1b9a', '#ef6c00', '#00838f', '#4e342e', '#ad1457', '#283593', '#558b2f'];

  function metres(m) {
    return m >= 1000 ? (m / 1000).toFixed(2) + ' km' : Math.round(m) + ' m';
  }

  S.plannerPage = function (map, cfg) {
    var page = { map: map, cfg: cfg, ready: false, errors: [], found: {}, rasterValues: {}, runs: 0 };
    S.quietAttribution(map);
    var embedded = cfg.embedded || null;  // an exported page: answers in the page
    var bases = S.baseMap(map, cfg.basemap, embedded && embedded.base);
    var rings = L.layerGroup().addTo(map);
    var lines = L.layerGroup().addTo(map);
    var facilities = L.layerGroup().addTo(map);
    var gaps = L.geoJSON(null, { style: { color: '#d50000', weight: 1, fillColor: '#ff5252', fillOpacity: 0.25, dashArray: '4 3' } }).addTo(map);
    var incident = null;
    var svg = L.svg({ padding: 0.5 });  // lines and rings as SVG paths (the map prefers canvas)
    var overlays = {
      '距离环 Rings': rings, '距离线 Distance lines': lines, '最近设施 Nearest features': facilities, '覆盖盲区 Coverage gaps': gaps,
    };
    page.rasterLayers = {};
    page.rasterLegends = {};
    // Raster tiles are Web Mercator pixels, which the GCJ-02 display CRS would not move: not offered then.
    if (cfg.rasterTiles && !cfg.basemap.gcj02) {
      var rasterPane = 'sibiao-raster';  // above the base map (250), below the overlays (380+)
      if (!map.getPane(rasterPane)) map.createPane(rasterPane).style.zIndex = 300;
      cfg.rasters.filter(function (r) { return r.tiles; }).forEach(function (r) {
        var tiles = L.tileLayer(r.tiles, { opacity: r.opacity, maxZoom: 22, pane: rasterPane, className: 'sibiao-raster-' + r.code, attribution: r.zh });
        tiles.on('add', function () { page.rasterLegends[r.code] = rasterLegend(r); });
        tiles.on('remove', function () {
          if (page.rasterLegends[r.code]) map.removeControl(page.rasterLegends[r.code]);
          delete page.rasterLegends[r.code];
        });
        page.rasterLayers[r.code] = tiles;
        overlays['栅格 ' + r.zh + ' ' + r.en] = tiles;
      });
    }
    L.control.layers(bases, overlays, { collapsed: true }).addTo(map);

    function rasterLegend(r) {
      var control = L.control({ position: 'bottomleft' });
      control.onAdd = function () {
        var box = el('div', { class: 'sibiao-legend sibiao-raster-legend', 'data-raster': r.code }, [el('strong', { text: r.zh + ' ' + r.en + (r.unit ? ' (' + r.unit + ')' : '') })]);
        r.legend.forEach(function (entry) {
          var swatch = el('span', { class: 'sibiao-swatch' });
          swatch.style.background = entry.color;
          swatch.style.borderColor = '#9e9e9e';
          box.appendChild(el('div', {}, [swatch, entry.label]));
        });
        return box;
      };
      control.addTo(map);
      return control;
    }
    S.legend(map, cfg.layers.map(function (spec, i) {
      return { label: spec.zh + ' ' + spec.en, color: '#fff', fill: PALETTE[i % PALETTE.length] };
    }).concat([{ label: '覆盖盲区 gap', color: '#d50000', fill: '#ff8a80' }]));
    page.rings = rings;
    page.lines = lines;
    page.facilities = facilities;
    page.gaps = gaps;

    // ---- the panel ------------------------------------------------------------------------
    var panel = document.getElementById('sibiao-panel');
    var where = el('p', { id: 'sibiao-point', class: 'sibiao-muted', text: '点击地图选择事发点 click the map to place the incident' });
    var checks = cfg.layers.map(function (spec, i) {
      var box = el('input', { type: 'checkbox', name: 'layer', value: spec.code, checked: 'checked' });
      var swatch = el('span', { class: 'sibiao-swatch' });
      swatch.style.background = PALETTE[i % PALETTE.length];
      return { input: box, node: el('label', {}, [box, ' ', swatch, spec.zh + ' ' + spec.en]) };
    });
    var nearestBox = el('div', { id: 'sibiao-nearest' });
    var rasterBox = el('div', { id: 'sibiao-rasters' });
    var coverLayer = el('select', { name: 'coverage_layer' }, [el('option', { value: '', text: '不显示 none' })].concat(
      cfg.layers.map(function (spec) { return el('option', { value: spec.code, text: spec.zh + ' ' + spec.en }); })));
    var coverDistance = el('input', { type: 'text', name: 'max_distance_m', value: String(cfg.coverageM), inputmode: 'numeric' });
    var coverInfo = el('p', { id: 'sibiao-coverage', class: 'sibiao-muted' });
    var authBox = el('div', { class: 'sibiao-auth', hidden: 'hidden' });
    panel.appendChild(el('h1', {}, ['应急规划 ', el('span', { class: 'en', text: 'Planner map' })]));
    panel.appendChild(authBox);
    panel.appendChild(where);
    panel.appendChild(el('h2', { text: '图层 Layers (最近 nearest ' + cfg.k + ')' }));
    checks.forEach(function (c) { panel.appendChild(c.node); c.input.addEventListener('change', function () { page.run(); }); });
    panel.appendChild(nearestBox);
    panel.appendChild(el('h2', { text: '栅格取值 Raster values at the point' }));
    panel.appendChild(el('p', { class: 'sibiao-muted', text: cfg.rasterTiles ? '在图层控制中可叠加栅格 the rasters can be shown from the layer control' : '导出页不含栅格瓦片 the export has no raster tiles' }));
    panel.appendChild(rasterBox);
    panel.appendChild(el('h2', { text: '覆盖盲区 Coverage gaps' }));
    panel.appendChild(el('label', {}, ['图层 layer', coverLayer]));
    panel.appendChild(el('label', {}, ['距离 D (m)', coverDistance]));
    panel.appendChild(coverInfo);
    S.authBox(authBox);
    coverLayer.addEventListener('change', function () { page.coverage(); });
    coverDistance.addEventListener('change', function () { page.coverage(); });

    function failed(err, box) {
      page.errors.push(err.message);
      if (box) box.textContent = '读取失败 failed: ' + err.message;
      if (err.status === 401 || err.status === 403) S.authBox(authBox, '请登录 Please sign in');
    }

    function anchor(feature) {
      var g = feature.geometry;
      if (g && g.type === 'Point') return L.latLng(g.coordinates[1], g.coordinates[0]);
      return L.geoJSON(feature).getBounds().getCenter();
    }

    function drawRings(latlng) {
      rings.clearLayers();
      cfg.ringsM.forEach(function (r) {
        rings.addLayer(L.circle(latlng, { radius: r, color: '#424242', weight: 1, dashArray: '6 4', fill: false, interactive: false, renderer: svg }));
        var edge = L.latLng(latlng.lat + r / 111320, latlng.lng);
        rings.addLayer(L.marker(edge, { interactive: false, icon: L.divIcon({ className: 'sibiao-distance-label sibiao-ring-label', html: metres(r), iconSize: null }) }));
      });
    }

    /** Query the nearest features and raster values around the incident (storage lon/lat). */
    page.run = function () {
      if (!page.point) return Promise.resolve();
      var p = page.point;
      var chosen = checks.filter(function (c) { return c.input.checked; }).map(function (c) { return c.input.value; });
      var q = new URLSearchParams({ lon: String(p.lon), lat: String(p.lat), k: String(cfg.k) });
      if (p.crs) q.set('crs', p.crs);
      lines.clearLayers();
      facilities.clearLayers();
      nearestBox.textContent = '';
      var jobs = [];
      if (chosen.length) {
        q.set('layers', chosen.join(','));
        var asked = embedded ? Promise.resolve(embedded.nearby) : S.fetchJson(cfg.api.nearby + '?' + q.toString());
        jobs.push(asked.then(function (body) {
          var at = L.latLng(body.point.lat, body.point.lon);
          page.incidentAt = at;
          showIncident(at);
          drawRings(at);
          where.textContent = '事发点 incident ' + body.point.lon.toFixed(6) + ', ' + body.point.lat.toFixed(6) + ' (CGCS2000)';
          page.found = {};
          var rows = [];
          cfg.layers.forEach(function (spec, i) {
            var fc = body.layers[spec.code];
            if (!fc || chosen.indexOf(spec.code) < 0) return;
            var colour = PALETTE[i % PALETTE.length];
            page.found[spec.code] = fc.features.length;
            fc.features.forEach(function (f, rank) {
              var to = anchor(f), d = f.properties.distance_m;
              var name = f.properties.name || f.properties.code || ('#' + f.id);
              var mark = L.marker(to, { title: spec.zh + ' ' + name, icon: L.divIcon({ className: 'sibiao-facility-icon', iconSize: [12, 12], html: '<div class="sibiao-facility" style="background:' + colour + '"></div>' }) });
              mark.bindPopup(S.popup(spec.zh + ' ' + spec.en + ' ' + name, f.properties));
              facilities.addLayer(mark);
              var line = L.polyline([at, to], { color: colour, weight: rank === 0 ? 3 : 1.5, opacity: 0.9, dashArray: rank === 0 ? null : '4 4', className: 'sibiao-distance-line', renderer: svg });
              line.bindTooltip(metres(d), { permanent: rank === 0, direction: 'center', className: 'sibiao-distance-label' });
              lines.addLayer(line);
              rows.push([spec.zh, name, metres(d)]);
            });
          });
          nearestBox.appendChild(rows.length ? S.table(['图层 layer', '名称 name', '距离 distance'], rows) : el('p', { class: 'sibiao-muted', text: '附近无要素 nothing found' }));
        }).catch(function (err) { failed(err, nearestBox); }));
      }
      rasterBox.textContent = '';
      var rasterRows = [];
      var rasterTable = el('div');
      rasterBox.appendChild(rasterTable);
      cfg.rasters.forEach(function (r) {
        if (embedded) {
          rasterRows.push([r.zh + ' ' + r.en, '未导出 not in the export']);
          return;
        }
        var rq = new URLSearchParams({ lon: String(p.lon), lat: String(p.lat) });
        if (p.crs) rq.set('crs', p.crs);
        jobs.push(S.fetchJson(cfg.api.rasterPoint.replace('{code}', encodeURIComponent(r.code)) + '?' + rq.toString()).then(function (v) {
          page.rasterValues[r.code] = v.value;
          rasterRows.push([r.zh + ' ' + r.en, v.inside ? (v.value === null ? '无数据 nodata' : v.value + (v.unit ? ' ' + v.unit : '')) : '范围外 outside']);
        }).catch(function (err) {
          page.rasterValues[r.code] = null;
          rasterRows.push([r.zh + ' ' + r.en, err.status === 404 ? '未加载 not loaded' : '失败 ' + err.message]);
        }));
      });
      return Promise.all(jobs).then(function () {
        rasterTable.appendChild(S.table(['栅格 raster', '值 value'], rasterRows));
        page.runs += 1;
        page.ready = true;
      });
    };

    page.coverage = function () {
      gaps.clearLayers();
      coverInfo.textContent = '';
      if (!coverLayer.value) return Promise.resolve();
      var q = new URLSearchParams({ layer: coverLayer.value, max_distance_m: coverDistance.value });
      coverInfo.textContent = '读取中 loading…';
      var gap = embedded && embedded.coverage;
      var asked = !embedded ? S.fetchJson(cfg.api.coverage + '?' + q.toString())
        : gap && gap.layer === coverLayer.value ? Promise.resolve(gap) : Promise.reject(new Error('未导出 not in the export'));
      return asked.then(function (fc) {
        gaps.addData(fc);
        var t = fc.totals || {};
        coverInfo.textContent = '盲区网格 uncovered cells ' + S.number(t.uncovered_cells) + ' / ' + S.number(t.cells) +
          ' · 人口 population ' + S.number(t.uncovered_population) + ' / ' + S.number(t.population);
      }).catch(function (err) { failed(err, coverInfo); });
    };

    function showIncident(at) {
      if (!incident) {
        incident = L.marker(at, { title: '事发点 incident', zIndexOffset: 2000, icon: L.divIcon({ className: 'sibiao-incident-icon', iconSize: [18, 18], html: '<div class="sibiao-incident"></div>' }) }).addTo(map);
        page.incident = incident;
      }
      incident.setLatLng(at);
    }

    /** Move the incident to a point {lon, lat, crs} (any CRS the API reads) and query again. */
    page.place = function (point) {
      page.point = point;
      if (Math.abs(point.lat) <= 90 && Math.abs(point.lon) <= 180) {
        showIncident(L.latLng(point.lat, point.lon));
        drawRings(L.latLng(point.lat, point.lon));
      }
      return page.run();
    };

    map.on('click', function (e) {
      if (embedded) return;  // an exported page cannot ask again
      page.place({ lon: Number(e.latlng.lng.toFixed(7)), lat: Number(e.latlng.lat.toFixed(7)), crs: 'EPSG:4326' });
    });

    if (embedded && embedded.coverage) {
      coverLayer.value = embedded.coverage.layer;
      coverDistance.value = String(embedded.coverage.max_distance_m);
      page.coverage();
    }
    if (cfg.point) {
      var crs = String(cfg.point.crs || '').toUpperCase();
      var lonlat = !cfg.point.crs || /4326|4490|CRS84|WGS84/.test(crs);
      if (lonlat) map.setView([cfg.point.lat, cfg.point.lon], 15, { animate: false });
      page.place(cfg.point).then(function () {
        if (!lonlat && page.incidentAt) map.setView(page.incidentAt, 15, { animate: false });
      });
    } else {
      page.ready = true;
    }
    return page;
  };
})();
