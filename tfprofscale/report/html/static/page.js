// tfprofscale's HTML report: draws the charts (plotly.js) and drives the tables (sort, filter, collapse).
// Everything it needs is in the page: the data in #tfprofscale-data, plotly.js in the page or beside it.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("tfprofscale-data").textContent);
  var UNITS = [[1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "K"]];
  var BYTES = [[1073741824, "GiB"], [1048576, "MiB"], [1024, "KiB"]];

  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, function (c) {
      return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c];
    });
  }
  function si(value) {
    for (var i = 0; i < UNITS.length; i++) {
      if (Math.abs(value) >= UNITS[i][0]) return (value / UNITS[i][0]).toFixed(2) + UNITS[i][1];
    }
    return Number.isInteger(value) ? String(value) : value.toFixed(2);
  }
  function bytes(value) {
    for (var i = 0; i < BYTES.length; i++) {
      if (value >= BYTES[i][0]) return (value / BYTES[i][0]).toFixed(2) + " " + BYTES[i][1];
    }
    return value + " B";
  }
  var INTEGER = new Intl.NumberFormat("en-US", {maximumFractionDigits: 0});
  var ONE_DECIMAL = new Intl.NumberFormat("en-US", {minimumFractionDigits: 1, maximumFractionDigits: 1});
  function format(value, column) {
    if (value === null || value === undefined || value === "") return column.empty || "";
    switch (column.format) {
      case "si": return si(value);
      case "bytes": return bytes(value);
      case "int": return INTEGER.format(value);
      case "fixed1": return ONE_DECIMAL.format(value);
      case "fixed2": return value.toFixed(2);
      case "fixed3": return value.toFixed(3);
      case "percent": return (100 * value).toFixed(1) + "%";
      case "ratio": return value.toFixed(3);
      case "shape": return "(" + value.join(", ") + ")";
      case "link": return '<a href="' + escapeHtml(value[1]) + '">' + escapeHtml(value[0]) + "</a>";
      default: return escapeHtml(value);
    }
  }
  function sortValue(value) {
    if (Array.isArray(value)) return value.length && typeof value[0] === "number"
      ? value.reduce(function (a, b) { return a * b; }, 1) : String(value[0]);
    return value;
  }

  // -- tables ------------------------------------------------------------------------------------
  // Each row's <tr> is built once; sorting, collapsing and filtering only choose and order those elements.
  function DataTable(element, spec) {
    this.element = element;
    this.columns = spec.columns;
    this.rows = spec.rows;
    this.children = {};
    this.collapsed = {};
    this.sortKey = null;
    this.sortDir = 1;
    this.filter = "";
    var self = this;
    this.rows.forEach(function (row, index) {
      row._order = index;
      var parent = row.parent === undefined || row.parent === null ? "" : row.parent;
      (self.children[parent] = self.children[parent] || []).push(row);
    });
    this.renderHead();
    this.renderBody();
  }
  DataTable.prototype.rowElement = function (row) {
    if (!row._tr) row._tr = this.buildRow(row);  // built when first shown: a long table builds only what is seen
    return row._tr;
  };
  DataTable.prototype.renderHead = function () {
    var cells = this.columns.map(function (column, index) {
      var unit = column.unit ? '<span class="unit">' + escapeHtml(column.unit) + "</span>" : "";
      var title = column.title ? ' title="' + escapeHtml(column.title) + '"' : "";
      return '<th data-column="' + index + '"' + title + ' tabindex="0" aria-sort="none">' +
        escapeHtml(column.label) + unit + "</th>";
    });
    this.element.innerHTML = "<thead><tr>" + cells.join("") + "</tr></thead><tbody></tbody>";
    var self = this;
    this.element.querySelectorAll("th").forEach(function (th) {
      th.addEventListener("click", function () { self.sortBy(Number(th.dataset.column)); });
      th.addEventListener("keydown", function (e) { if (e.key === "Enter") self.sortBy(Number(th.dataset.column)); });
    });
    this.element.addEventListener("click", function (event) {
      var toggle = event.target.closest(".toggle");
      if (!toggle) return;
      var id = toggle.dataset.id;
      self.collapsed[id] = !self.collapsed[id];
      self.renderBody();
    });
  };
  DataTable.prototype.buildRow = function (row) {
    var self = this;
    var cells = this.columns.map(function (column, index) {
      var value = row[column.key];
      var raw = value === null || value === undefined ? "" : sortValue(value);
      var text = format(value, column);
      if (index === 0) {
        var toggle = self.children[row.id]
          ? '<button class="toggle" data-id="' + escapeHtml(row.id) + '" aria-label="collapse or expand">&#9662;</button>'
          : '<span class="leaf"></span>';
        text = '<span class="indent" style="padding-left:' + (1.2 * (row.depth || 0)) + 'em">' + toggle +
          '<span class="short">' + text + '</span><span class="path">' + escapeHtml(row.id) + "</span></span>";
      }
      var numeric = column.format !== "text" && column.format !== "link" && index > 0 ? ' class="num"' : "";
      return "<td" + numeric + ' data-v="' + escapeHtml(raw) + '">' + text + "</td>";
    });
    var tr = document.createElement("tr");
    if (row.hover) tr.title = row.hover;
    if (row.group) tr.className = "group"; else if (row.flagged) tr.className = "flagged";
    tr.innerHTML = cells.join("");
    row._toggle = tr.querySelector(".toggle");
    return tr;
  };
  DataTable.prototype.sortBy = function (index) {
    var key = this.columns[index].key;
    if (this.sortKey === key) this.sortDir = -this.sortDir;
    else { this.sortKey = key; this.sortDir = this.columns[index].format === "text" ? 1 : -1; }
    var self = this;
    this.element.querySelectorAll("th").forEach(function (th, i) {
      th.setAttribute("aria-sort", i === index ? (self.sortDir > 0 ? "ascending" : "descending") : "none");
    });
    this.renderBody();
  };
  DataTable.prototype.compare = function (a, b) {
    if (this.sortKey === null) return a._order - b._order;
    var x = sortValue(a[this.sortKey]), y = sortValue(b[this.sortKey]);
    var xMissing = x === null || x === undefined || x === "", yMissing = y === null || y === undefined || y === "";
    if (xMissing || yMissing) return xMissing === yMissing ? a._order - b._order : (xMissing ? 1 : -1);
    if (x < y) return -this.sortDir;
    if (x > y) return this.sortDir;
    return a._order - b._order;
  };
  DataTable.prototype.visibleRows = function () {
    var self = this, shown = [];
    var compare = function (a, b) { return self.compare(a, b); };
    if (this.filter) {
      var needle = this.filter;
      return this.rows.filter(function (row) {
        return self.columns.some(function (c) { return c.format === "text" && String(row[c.key] || "").toLowerCase().indexOf(needle) >= 0; })
          || String(row.id).toLowerCase().indexOf(needle) >= 0;
      }).sort(compare);
    }
    (function walk(parent) {
      (self.children[parent] || []).slice().sort(compare).forEach(function (row) {
        shown.push(row);
        if (!self.collapsed[row.id]) walk(row.id);
      });
    })("");
    return shown;
  };
  // Up to WINDOWED_FROM rows are all in the document; a longer table keeps only the rows in view of its
  // scroll box (and a margin) there, between two spacer rows, so sorting a 5,000-row table lays out ~100 rows.
  var WINDOWED_FROM = 120, MARGIN_ROWS = 40, GUESSED_ROW_HEIGHT = 22;
  DataTable.prototype.renderBody = function () {
    this.element.classList.toggle("flat", !!this.filter);
    this.shown = this.visibleRows();
    if (this.shown.length < WINDOWED_FROM) this.place(0, this.shown.length);
    else if (!this.rowHeight) this.place(0, WINDOWED_FROM);  // the first rows, measured by startWindowing
    else this.renderWindow();
  };
  DataTable.prototype.place = function (start, end) {
    var self = this, collapsed = this.collapsed, body = this.element.tBodies[0];
    var rows = this.shown.slice(start, end).map(function (row) {
      var tr = self.rowElement(row);
      if (row._toggle) row._toggle.textContent = collapsed[row.id] ? "\u25B8" : "\u25BE";
      return tr;
    });
    var height = this.rowHeight || GUESSED_ROW_HEIGHT;
    if (start > 0) rows.unshift(spacer(start * height, this.columns.length));
    if (end < this.shown.length) rows.push(spacer((this.shown.length - end) * height, this.columns.length));
    body.replaceChildren.apply(body, rows);
    this.window = [start, end];
  };
  DataTable.prototype.renderWindow = function () {
    var box = this.element.parentElement;
    var first = Math.floor(box.scrollTop / this.rowHeight);
    var start = Math.max(0, first - MARGIN_ROWS);
    var end = Math.min(this.shown.length, first + Math.ceil(box.clientHeight / this.rowHeight) + MARGIN_ROWS);
    this.place(start, end);
  };
  DataTable.prototype.startWindowing = function () {
    // Called once the first rows are laid out: fix each column's width and the row height, then window
    // (a table in a hidden pane cannot be measured: it windows with a guessed row height).
    if (this.rows.length < WINDOWED_FROM || this.rowHeight) return;
    var sample = this.element.tBodies[0].rows[0];
    this.rowHeight = sample && sample.offsetHeight ? sample.offsetHeight : GUESSED_ROW_HEIGHT;
    this.element.querySelectorAll("th").forEach(function (th) {
      if (th.offsetWidth) th.style.minWidth = th.offsetWidth + "px";
    });
    var self = this, pending = false, box = this.element.parentElement;
    box.addEventListener("scroll", function () {
      if (pending) return;
      pending = true;
      requestAnimationFrame(function () {
        pending = false;
        var first = Math.floor(box.scrollTop / self.rowHeight);
        var last = first + Math.ceil(box.clientHeight / self.rowHeight);
        if (first < self.window[0] + 5 && self.window[0] > 0 || last > self.window[1] - 5 &&
            self.window[1] < self.shown.length) self.renderWindow();
      });
    });
    this.renderWindow();
  };
  function spacer(height, columns) {
    var tr = document.createElement("tr");
    tr.className = "spacer";
    tr.innerHTML = '<td colspan="' + columns + '" style="height:' + height + 'px;padding:0;border:0"></td>';
    return tr;
  }

  var tables = {};
  Object.keys(data.tables).forEach(function (key) {
    var element = document.getElementById(key);
    if (element) tables[key] = new DataTable(element, data.tables[key]);
  });
  document.querySelectorAll("input.filter").forEach(function (input) {
    input.addEventListener("input", function () {
      var table = tables[input.dataset.table];
      table.filter = input.value.trim().toLowerCase();
      table.renderBody();
    });
  });
  window.tfprofscaleTables = tables;
  Object.keys(tables).forEach(function (key) { tables[key].startWindowing(); });

  // -- charts ------------------------------------------------------------------------------------
  var config = {responsive: true, displaylogo: false, showLink: false, showSendToCloud: false,
                modeBarButtonsToRemove: ["sendDataToCloud", "lasso2d", "select2d"]};
  function visible(element) { return !!(element.offsetWidth || element.offsetHeight || element.getClientRects().length); }
  function drawVisible() {
    var drawing = [];
    document.querySelectorAll("div.chart[data-figure]:not([data-drawn])").forEach(function (element) {
      if (!visible(element) || element.dataset.drawing) return;
      element.dataset.drawing = "1";
      var figure = data.figures[element.dataset.figure];
      drawing.push(Plotly.newPlot(element, figure.data, figure.layout || {}, config).then(function () {
        element.dataset.drawn = "1";
      }, function (error) {
        element.dataset.drawn = "error";
        console.error("chart " + element.id + ": " + error);
      }));
    });
    return Promise.all(drawing);
  }
  document.querySelectorAll(".tab-bar").forEach(function (bar) {
    bar.addEventListener("click", function (event) {
      var button = event.target.closest("button.tab");
      if (!button) return;
      bar.querySelectorAll("button.tab").forEach(function (other) {
        var selected = other === button;
        other.setAttribute("aria-selected", String(selected));
        document.getElementById(other.dataset.pane).hidden = !selected;
      });
      drawVisible();
    });
  });
  // When every chart of the first view has drawn: milliseconds since navigation (read by tools/bench_html.py).
  drawVisible().then(function () { window.tfprofscaleRenderedMs = performance.now(); });
  window.tfprofscaleDrawVisible = drawVisible;
})();
