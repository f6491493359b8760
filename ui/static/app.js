// coffer ui: small progressive enhancements. Every page works without it.
(function () {
  "use strict";
  // Filter forms submit when one of their selects changes.
  document.querySelectorAll("form.autosubmit select").forEach(function (s) {
    s.addEventListener("change", function () { s.form.submit(); });
  });
  // j/k move through the rows of a listing; Enter opens the selected row.
  var rows = Array.prototype.slice.call(document.querySelectorAll("table.listing tbody tr"));
  var cur = -1;
  function select(i) {
    if (!rows.length) return;
    if (cur >= 0) rows[cur].classList.remove("sel");
    cur = Math.max(0, Math.min(rows.length - 1, i));
    rows[cur].classList.add("sel");
    rows[cur].scrollIntoView({ block: "nearest" });
  }
  document.addEventListener("keydown", function (e) {
    if (e.target.tagName === "INPUT" || e.target.tagName === "SELECT") return;
    if (e.key === "j") select(cur + 1);
    else if (e.key === "k") select(cur - 1);
    else if (e.key === "Enter" && cur >= 0) {
      var a = rows[cur].querySelector("a");
      if (a) a.click();
    }
  });
})();
