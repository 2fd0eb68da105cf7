// The book's layout help for narrow screens, in two parts.
//
// 1. Display equations that are wider than their column (a phone, a long theorem) are scaled down
//    to fit it: MathJax 3 cannot break a display equation across lines. This runs as part of
//    MathJax's own start-up (startup.pageReady), so MathJax.startup.promise resolves only once every
//    equation fits, and again whenever the window's width changes. The script is deferred, just
//    before MathJax's deferred script (qatlib.report.markup's setup), so it adds to the page's
//    MathJax options after they are set and before MathJax reads them.
// 2. A table of three or more columns gets, in each cell, a copy of its column's header and the class
//    qatlib-cards, so that qatlib.css can show it on a phone as one card per row (header: value)
//    instead of a grid wider than the screen.
(function () {
  "use strict";

  function fitEquations() {
    document.querySelectorAll('mjx-container[display="true"]').forEach(function (equation) {
      equation.style.fontSize = "";
      var box = equation.parentElement;
      var label = box.querySelector(":scope > .eqno");
      var math = equation.querySelector(":scope > mjx-math") || equation;
      var scale = 1;
      // Not every part of an equation scales with the font (rules, spacing rounded to pixels), so
      // shrink until it fits, a few times at most.
      for (var pass = 0; pass < 5; pass++) {
        // The container scrolls (a block formatting context), so it sits beside the number's
        // float: its own width is the room, when it is narrower than the box less the number.
        var room = Math.min(box.clientWidth - (label ? label.offsetWidth : 0), equation.clientWidth || Infinity) - 2;
        var needed = math.getBoundingClientRect().width;
        if (room <= 0 || needed <= room) break;
        scale = scale * (room / needed) * 0.98;
        equation.style.fontSize = (100 * scale).toFixed(1) + "%";
      }
    });
  }

  // Each body cell gets a copy of its column's header (maths included, before MathJax typesets
  // it) in a span.qatlib-label that only the phone layout shows.
  function labelTables() {
    document.querySelectorAll("article table:not(.qatlib-cards)").forEach(function (table) {
      var head = table.tHead && table.tHead.rows.length ? table.tHead.rows[0] : null;
      if (!head || head.cells.length < 3) return;
      Array.prototype.forEach.call(table.tBodies, function (body) {
        Array.prototype.forEach.call(body.rows, function (row) {
          Array.prototype.forEach.call(row.cells, function (cell, index) {
            var header = head.cells[index];
            if (!header || !header.textContent.trim()) return;
            var label = document.createElement("span");
            label.className = "qatlib-label";
            label.setAttribute("aria-hidden", "true");
            Array.prototype.forEach.call(header.childNodes, function (node) {
              label.appendChild(node.cloneNode(true));
            });
            var value = document.createElement("span");
            value.className = "qatlib-value";
            while (cell.firstChild) value.appendChild(cell.firstChild);
            cell.appendChild(label);
            cell.appendChild(value);
          });
        });
      });
      table.classList.add("qatlib-cards");
    });
  }

  window.MathJax = window.MathJax || {};
  window.MathJax.startup = Object.assign(window.MathJax.startup || {}, {
    pageReady: function () {
      labelTables();
      return window.MathJax.startup.defaultPageReady().then(fitEquations);
    },
  });
  var width = window.innerWidth;
  window.addEventListener("resize", function () {
    if (window.innerWidth !== width) {
      width = window.innerWidth;
      fitEquations();
    }
  });
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", labelTables);
  } else {
    labelTables();
  }
})();
