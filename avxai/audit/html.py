"""Building blocks of the report page: escaping, number formats, tables that sort and filter, and the page's
style and script (plain JavaScript inside the page: no network, no library).

A sortable table sorts by a column when its header is clicked (or focused and Enter pressed): numbers from the
largest down on the first click, text from A on the first click, the other way on the next; empty cells last.
A table with filters gets a search box (rows holding the text) and one menu per categorical column (rows whose
cell is, or lists, the chosen word).
"""

from __future__ import annotations

import html
import math
from typing import Any, Sequence
from urllib.parse import quote

__all__ = ["esc", "url", "num", "pct", "Cell", "table", "CSS", "SCRIPT"]


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def url(rel: str) -> str:
    return esc(quote(rel, safe="/"))


def num(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "&ndash;"
    return f"{float(value):.{digits}f}"


def pct(value: Any) -> str:
    return "&ndash;" if value is None else f"{100 * float(value):.1f}%"


class Cell:
    """A table cell: its HTML (escaped by the caller), the value it sorts by (a number, a text, or None: sorts
    last) and the words a filter menu matches (default: the sort text)."""

    __slots__ = ("html", "sort", "words")

    def __init__(self, html_: str, sort: "float | str | None" = None, words: Sequence[str] | None = None):
        self.html, self.sort, self.words = html_, sort, words


def _cell(c: "Cell | str", tag: str, text: bool) -> str:
    cell = c if isinstance(c, Cell) else Cell(c)
    attrs = ' class="text"' if text else ""
    if cell.sort is not None:
        attrs += f' data-v="{esc(cell.sort)}"'
    elif isinstance(c, Cell):
        attrs += ' data-v=""'
    if cell.words is not None:
        attrs += f' data-f="{esc("|".join(cell.words))}"'
    return f"<{tag}{attrs}>{cell.html}</{tag}>"


def table(header: Sequence[str], rows: Sequence[Sequence["Cell | str"]], *, text_columns: Sequence[int] = (),
          table_id: str | None = None, sortable: bool = False, filters: Sequence[int] = (),
          search: bool = False) -> str:
    """An HTML table (header cells are HTML). ``sortable``: the headers sort; ``filters``: columns that get a
    menu of their words; ``search``: a search box. Both need ``table_id``."""
    if (sortable or filters or search) and not table_id:
        raise ValueError("a sortable or filterable table needs a table_id")
    head = []
    for i, h in enumerate(header):
        kind = "text" if i in text_columns else "num"
        attrs = f' class="text"' if kind == "text" else ""
        if sortable:
            attrs += f' data-type="{kind}" tabindex="0" aria-sort="none" title="sort by this column"'
        head.append(f"<th{attrs}>{h}</th>")
    body = "".join("<tr>" + "".join(_cell(c, "td", i in text_columns) for i, c in enumerate(row)) + "</tr>"
                   for row in rows)
    cls = ' class="sortable"' if sortable else ""
    ident = f' id="{esc(table_id)}"' if table_id else ""
    out = f"<table{cls}{ident}><thead><tr>{''.join(head)}</tr></thead><tbody>{body}</tbody></table>"
    if sortable:  # a wide table scrolls inside the page instead of widening it
        out = f'<div class="scroll">{out}</div>'
    if not (filters or search):
        return out
    controls = []
    if search:
        controls.append(f'<label>rows holding <input type="search" data-search placeholder="text"></label>')
    for col in filters:
        words: set[str] = set()
        for row in rows:
            c = row[col]
            cell = c if isinstance(c, Cell) else Cell(c)
            if cell.words is not None:
                words.update(cell.words)
            else:  # what the script compares: data-v, else the cell's text
                words.add(str(cell.sort) if cell.sort is not None else html.unescape(cell.html).strip())
        options = "".join(f'<option value="{esc(w)}">{esc(w)}</option>' for w in sorted(w for w in words if w))
        label = html.unescape(header[col]).replace("<", "").replace(">", "")
        controls.append(f'<label>{esc(label)} <select data-col="{col}"><option value="">all</option>{options}'
                        "</select></label>")
    controls.append('<span class="shown"></span>')
    return f'<div class="filters" data-table="{esc(table_id)}">{" ".join(controls)}</div>{out}'


CSS = """
body { font-family: sans-serif; margin: 1.5em auto; max-width: 1100px; color: #222; padding: 0 1em; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: right; }
th { background: #f2f2f2; }
th[data-type] { cursor: pointer; user-select: none; }
th[aria-sort="ascending"]::after { content: " \\25B2"; }
th[aria-sort="descending"]::after { content: " \\25BC"; }
td.text, th.text { text-align: left; }
table.sortable td { white-space: nowrap; }
.scroll { overflow-x: auto; max-width: 100%; }
.filters { font-size: 0.85em; margin-top: 0.6em; display: flex; gap: 1em; flex-wrap: wrap; align-items: center; }
.filters .shown { color: #555; }
.headline { border: 2px solid #0072B2; padding: 0.4em 1em; background: #f5f9fc; }
.headline p.big { font-size: 1.15em; }
section.trial { border-top: 2px solid #ddd; margin-top: 1.5em; padding-top: 0.5em; }
.players { display: flex; gap: 1em; flex-wrap: wrap; }
.players figure { margin: 0; }
.players figcaption { font-size: 0.8em; color: #555; }
img { max-width: 100%; height: auto; }
.error { color: #a00; white-space: pre-wrap; text-align: left; }
.note { color: #555; font-size: 0.9em; }
.flag { font-weight: bold; color: #8a3b00; }
.wrong { font-weight: bold; color: #8a3b00; }
"""

SCRIPT = """
(function () {
  'use strict';
  function sortValue(td) {
    var v = td.getAttribute('data-v');
    return v === null ? td.textContent.trim() : v;
  }
  function sortBy(table, col, th) {
    var numeric = th.getAttribute('data-type') === 'num';
    var state = th.getAttribute('aria-sort');
    var descending = state === 'none' ? numeric : state === 'ascending';
    Array.prototype.forEach.call(th.parentNode.cells, function (h) {
      if (h.hasAttribute('data-type')) { h.setAttribute('aria-sort', 'none'); }
    });
    th.setAttribute('aria-sort', descending ? 'descending' : 'ascending');
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.forEach(function (row, i) { if (!row.hasAttribute('data-i')) { row.setAttribute('data-i', String(i)); } });
    rows.sort(function (a, b) {
      var x = sortValue(a.cells[col]), y = sortValue(b.cells[col]);
      if (x === '' || y === '') {
        if (x !== y) { return x === '' ? 1 : -1; }
      } else {
        var c = numeric ? parseFloat(x) - parseFloat(y) : x.localeCompare(y);
        if (c !== 0) { return descending ? -c : c; }
      }
      return Number(a.getAttribute('data-i')) - Number(b.getAttribute('data-i'));
    });
    rows.forEach(function (row) { body.appendChild(row); });
  }
  function filter(box) {
    var table = document.getElementById(box.getAttribute('data-table'));
    var search = box.querySelector('input[data-search]');
    var text = search ? search.value.trim().toLowerCase() : '';
    var menus = Array.prototype.slice.call(box.querySelectorAll('select[data-col]'));
    var shown = 0, rows = table.tBodies[0].rows;
    Array.prototype.forEach.call(rows, function (row) {
      var ok = !text || row.textContent.toLowerCase().indexOf(text) >= 0;
      menus.forEach(function (menu) {
        if (!ok || !menu.value) { return; }
        var td = row.cells[Number(menu.getAttribute('data-col'))];
        var words = td.hasAttribute('data-f') ? td.getAttribute('data-f').split('|') : [sortValue(td)];
        ok = words.indexOf(menu.value) >= 0;
      });
      row.hidden = !ok;
      shown += ok ? 1 : 0;
    });
    box.querySelector('.shown').textContent = shown + ' of ' + rows.length + ' rows shown';
  }
  document.querySelectorAll('table.sortable').forEach(function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
      th.addEventListener('click', function () { sortBy(table, col, th); });
      th.addEventListener('keydown', function (e) {
        if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); sortBy(table, col, th); }
      });
    });
  });
  document.querySelectorAll('.filters').forEach(function (box) {
    box.addEventListener('input', function () { filter(box); });
    box.addEventListener('change', function () { filter(box); });
    filter(box);
  });
})();
"""
