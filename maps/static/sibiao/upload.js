/* The upload page: pick a layer, drop a file, state its CRS and mode; the file is posted to
 * POST /layers/{code}/loads, the load is polled at GET /loads/{id}, then its report is shown. */
(function () {
  'use strict';
  var S = window.Sibiao;
  var el = S.el;
  var cfg = window.SIBIAO_UPLOAD;
  var STATES = { queued: '排队 queued', running: '加载中 running', committed: '已完成 committed', failed: '失败 failed' };
  var form = document.getElementById('sibiao-upload');
  var select = document.getElementById('sibiao-layer');
  var input = document.getElementById('sibiao-file');
  var drop = document.getElementById('sibiao-drop');
  var fileName = document.getElementById('sibiao-file-name');
  var error = document.getElementById('sibiao-form-error');
  var submit = document.getElementById('sibiao-submit');
  var progress = document.getElementById('sibiao-progress');
  var bar = document.getElementById('sibiao-bar-fill');
  var progressText = document.getElementById('sibiao-progress-text');
  var report = document.getElementById('sibiao-report');
  var state = (window.sibiaoUpload = { id: null, state: null, status: null, error: null });

  function url(template, values) {
    return template.replace(/\{(\w+)\}/g, function (_, key) { return encodeURIComponent(values[key]); });
  }

  function showError(text) {
    state.error = text;
    error.textContent = text;
    error.hidden = !text;
  }

  function size(bytes) {
    if (bytes < 1024 * 1024) return (bytes / 1024).toFixed(1) + ' KiB';
    return (bytes / 1024 / 1024).toFixed(1) + ' MiB';
  }

  function chosen() {
    var file = input.files && input.files[0];
    fileName.textContent = file ? file.name + ' · ' + size(file.size) : '';
  }

  S.authBox(document.getElementById('sibiao-auth'));
  var preset = new URLSearchParams(window.location.search).get('layer');
  if (preset) select.value = preset;
  input.addEventListener('change', chosen);
  ['dragenter', 'dragover'].forEach(function (type) {
    drop.addEventListener(type, function (e) {
      e.preventDefault();
      drop.classList.add('over');
    });
  });
  ['dragleave', 'drop'].forEach(function (type) {
    drop.addEventListener(type, function () { drop.classList.remove('over'); });
  });
  drop.addEventListener('drop', function (e) {
    e.preventDefault();
    if (e.dataTransfer && e.dataTransfer.files && e.dataTransfer.files.length) {
      input.files = e.dataTransfer.files;
      chosen();
    }
  });

  function setProgress(percent, text) {
    progress.hidden = false;
    bar.style.width = percent === null ? '100%' : Math.max(2, Math.min(100, percent)) + '%';
    bar.className = percent === null ? 'indeterminate' : '';
    progressText.textContent = text;
  }

  function post(code, data) {
    return new Promise(function (resolve, reject) {
      var xhr = new XMLHttpRequest();
      xhr.open('POST', url(cfg.api.upload, { code: code }));
      xhr.setRequestHeader('Accept', 'application/json');
      var token = S.auth.token();
      if (token) xhr.setRequestHeader('Authorization', 'Bearer ' + token);
      xhr.upload.addEventListener('progress', function (e) {
        if (e.lengthComputable) setProgress((100 * e.loaded) / e.total, '上传 uploading ' + size(e.loaded) + ' / ' + size(e.total));
      });
      xhr.addEventListener('load', function () {
        var body = null;
        try {
          body = JSON.parse(xhr.responseText);
        } catch (err) {
          body = null;
        }
        if (xhr.status === 202 && body) return resolve(body);
        if (xhr.status === 401 || xhr.status === 403) S.authBox(document.getElementById('sibiao-auth'), '上传需要分析员账号 Uploading needs an analyst account.');
        reject(new Error((body && (body.detail || body.title)) || '上传失败 upload failed (HTTP ' + xhr.status + ')'));
      });
      xhr.addEventListener('error', function () { reject(new Error('网络错误 network error')); });
      xhr.send(data);
    });
  }

  function poll(id) {
    return S.fetchJson(url(cfg.api.load, { id: id })).then(function (status) {
      state.status = status;
      state.state = status.state;
      var p = status.progress || {};
      var text = (STATES[status.state] || status.state) + ' · 读取 read ' + S.number(status.read) +
        (p.expected ? ' / ' + S.number(p.expected) : '') + ' · 拒绝 rejected ' + S.number(status.rejected);
      setProgress(p.percent === undefined ? null : p.percent, text);
      if (status.state === 'committed' || status.state === 'failed') return status;
      return new Promise(function (resolve) { setTimeout(resolve, cfg.pollMs); }).then(function () { return poll(id); });
    });
  }

  function counts(status) {
    var list = el('dl', { class: 'sibiao-dl' });
    [
      ['图层 Layer', status.layer],
      ['文件 File', status.file_name || '—'],
      ['格式 Format', status.source_format || '—'],
      ['坐标系 CRS', status.source_crs || '—'],
      ['方式 Mode', status.mode],
      ['读取 Read', S.number(status.read)],
      ['入库 Loaded', S.number(status.loaded)],
      ['拒绝 Rejected', S.number(status.rejected)],
      ['修复 Repaired', S.number(status.repaired)],
      ['版本 Version', status.version === null ? '—' : status.version],
    ].forEach(function (pair) {
      list.appendChild(el('dt', { text: pair[0] }));
      list.appendChild(el('dd', { text: String(pair[1]) }));
    });
    return list;
  }

  function showReport(status, rejects) {
    var ok = status.state === 'committed';
    var option = select.querySelector('option[value="' + status.layer + '"]');
    var hasPage = option && option.getAttribute('data-page') === '1';
    var nodes = [
      el('h2', {}, ['加载报告 ', el('span', { class: 'en', text: 'Load report' }), ' #' + status.id]),
      el('p', {}, [el('span', { class: 'sibiao-state ' + status.state, text: STATES[status.state] || status.state })]),
      counts(status),
    ];
    if (status.message) nodes.push(el('p', { class: 'sibiao-message', text: status.message }));
    if (rejects && rejects.features.length) {
      nodes.push(el('h3', { text: '拒绝行（前 ' + rejects.features.length + ' 行）Rejected rows (first ' + rejects.features.length + ')' }));
      nodes.push(S.table(['行 row', '字段 field', '原因 reason', '值 value'], rejects.features.map(function (f) {
        var p = f.properties;
        return [p.row, p.field || '', p.reason, p.value === null ? '' : p.value];
      })));
    }
    var links = el('p', { class: 'sibiao-links' });
    if (status.rejected) {
      var csv = el('a', { id: 'sibiao-rejects-csv', href: url(cfg.api.rejectsCsv, { id: status.id }) }, ['拒绝行 CSV rejects.csv']);
      links.appendChild(S.authLink(csv, 'load-' + status.id + '-rejects.csv'));
    }
    if (hasPage) {
      if (links.childNodes.length) links.appendChild(document.createTextNode(' · '));
      links.appendChild(el('a', { id: 'sibiao-load-page', href: url(cfg.api.loadPage, { id: status.id }) }, ['本次加载地图 Map of this load']));
      links.appendChild(document.createTextNode(' · '));
      links.appendChild(el('a', { id: 'sibiao-layer-page', href: url(cfg.api.layerPage, { code: status.layer }) }, ['图层页面 Layer page']));
    }
    nodes.push(links);
    report.textContent = '';
    nodes.forEach(function (node) { report.appendChild(node); });
    report.className = 'sibiao-card ' + (ok ? 'ok' : 'failed');
    report.hidden = false;
  }

  form.addEventListener('submit', function (e) {
    e.preventDefault();
    showError('');
    var code = select.value;
    var file = input.files && input.files[0];
    if (!code) return showError('请选择图层 Choose a layer.');
    if (!file) return showError('请选择文件 Choose a file.');
    if (file.size > cfg.maxBytes) return showError('文件太大 The file is larger than the upload limit.');
    var data = new FormData();
    data.append('file', file, file.name);
    data.append('mode', document.getElementById('sibiao-mode').value);
    var crs = document.getElementById('sibiao-crs').value.trim();
    if (crs) data.append('source_crs', crs);
    document.getElementById('sibiao-map').value.split('\n').forEach(function (line) {
      if (line.trim()) data.append('map', line.trim());
    });
    submit.disabled = true;
    report.hidden = true;
    setProgress(0, '上传 uploading…');
    post(code, data)
      .then(function (accepted) {
        state.id = accepted.id;
        return poll(accepted.id);
      })
      .then(function (status) {
        var rejects = status.rejected
          ? S.fetchJson(url(cfg.api.rejects, { id: status.id }) + '?limit=' + cfg.rejectsInTable)
          : Promise.resolve(null);
        return rejects.then(function (fc) { showReport(status, fc); });
      })
      .catch(function (err) {
        progress.hidden = true;
        showError(String(err && err.message ? err.message : err));
      })
      .then(function () { submit.disabled = false; });
  });
})();
