// coffer ui: small progressive enhancements. Every page works without it.
(function () {
  "use strict";
  // Filter forms submit when one of their selects changes.
  document.querySelectorAll("form.autosubmit select").forEach(function (s) {
    s.addEventListener("change", function () { s.form.submit(); });
  });
  // A text preview is coloured by highlight.js (loaded on those pages
  // only): in the language its file name says, else the one it looks like.
  var code = document.querySelector(".preview code[data-name]");
  if (code && window.hljs) highlight(code);
  function highlight(code) {
    var name = code.dataset.name.toLowerCase();
    var ext = name.slice(name.lastIndexOf(".") + 1); // the whole name for Makefile, Dockerfile
    var text = code.textContent, res = null;
    if (hljs.getLanguage(ext)) {
      res = hljs.highlight(text, { language: ext, ignoreIllegals: true });
    } else if (text.length <= 256 * 1024) { // guessing tries every language
      res = hljs.highlightAuto(text);
      if (res.relevance < 10) res = null; // a weak guess colours prose wrongly
    }
    if (!res || !res.language) return;
    code.innerHTML = res.value; // escaped by highlight.js
    code.classList.add("hljs");
    var label = document.querySelector("h2 .lang");
    if (label) label.textContent = "(" + hljs.getLanguage(res.language).name + ")";
  }
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
