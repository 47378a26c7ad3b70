// A small Markdown renderer for model output, safe by construction: every
// character of the input is HTML-escaped before any markup is added, and
// the only markup added is a fixed set of tags (p, br, h1-h6, strong, em,
// code, pre, ul, ol, li, blockquote, hr, a). Links keep only http(s) and
// mailto addresses. Nothing the model writes can become an element,
// attribute or script; the page's Content-Security-Policy is a second
// wall. Unclosed code fences (a stream still arriving) render as code.
(function () {
  "use strict";
  const ESC = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
  const escape = (s) => s.replace(/[&<>"']/g, (c) => ESC[c]);

  // inline renders one line's worth of text: code spans first (their
  // content is literal), then links, bold and italics on escaped text.
  function inline(text) {
    let out = "";
    const re = /(`+)([\s\S]*?[^`])\1(?!`)/g;
    let last = 0;
    let m;
    while ((m = re.exec(text)) !== null) {
      out += spans(text.slice(last, m.index));
      out += "<code>" + escape(m[2].trim() === "" ? m[2] : m[2].replace(/^ (.*) $/, "$1")) + "</code>";
      last = re.lastIndex;
    }
    return out + spans(text.slice(last));
  }

  function spans(raw) {
    let s = escape(raw);
    s = s.replace(/\[([^\]\n]+)\]\(((?:https?:\/\/|mailto:)[^\s()<>]+)\)/g,
      (_, label, url) => '<a href="' + url + '" target="_blank" rel="noopener noreferrer">' + label + "</a>");
    s = s.replace(/\*\*(?=\S)([^*]+?)\*\*/g, "<strong>$1</strong>");
    s = s.replace(/__(?=\S)([^_]+?)__/g, "<strong>$1</strong>");
    s = s.replace(/(^|[^*\w])\*(?=\S)([^*\n]+?)\*(?![*\w])/g, "$1<em>$2</em>");
    s = s.replace(/(^|[^_\w])_(?=\S)([^_\n]+?)_(?![_\w])/g, "$1<em>$2</em>");
    return s;
  }

  function render(src) {
    const lines = String(src).replace(/\r\n?/g, "\n").split("\n");
    const out = [];
    let para = [];
    let list = null; // {tag, items}
    let quote = [];
    const flushPara = () => {
      if (para.length) out.push("<p>" + para.map(inline).join("<br>") + "</p>");
      para = [];
    };
    const flushList = () => {
      if (list) out.push("<" + list.tag + ">" + list.items.map((i) => "<li>" + inline(i) + "</li>").join("") + "</" + list.tag + ">");
      list = null;
    };
    const flushQuote = () => {
      if (quote.length) out.push("<blockquote>" + render(quote.join("\n")) + "</blockquote>");
      quote = [];
    };
    const flushAll = () => { flushPara(); flushList(); flushQuote(); };

    for (let i = 0; i < lines.length; i++) {
      const line = lines[i];
      const fence = line.match(/^\s{0,3}(```+|~~~+)\s*([\w+#.-]*)/);
      if (fence) {
        flushAll();
        const close = new RegExp("^\\s{0,3}" + fence[1][0] + "{" + fence[1].length + ",}\\s*$");
        const body = [];
        i++;
        while (i < lines.length && !close.test(lines[i])) body.push(lines[i++]);
        const lang = fence[2] ? ' data-lang="' + escape(fence[2]) + '"' : "";
        out.push("<pre" + lang + "><code>" + escape(body.join("\n")) + "</code></pre>");
        continue;
      }
      if (/^\s*>/.test(line)) {
        flushPara(); flushList();
        quote.push(line.replace(/^\s*> ?/, ""));
        continue;
      }
      flushQuote();
      if (/^\s*$/.test(line)) { flushPara(); flushList(); continue; }
      const h = line.match(/^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$/);
      if (h) {
        flushAll();
        out.push("<h" + h[1].length + ">" + inline(h[2]) + "</h" + h[1].length + ">");
        continue;
      }
      if (/^\s{0,3}([-*_])(\s*\1){2,}\s*$/.test(line)) { flushAll(); out.push("<hr>"); continue; }
      const li = line.match(/^\s{0,3}([-*+]|\d{1,9}[.)])\s+(.*)$/);
      if (li) {
        flushPara();
        const tag = /\d/.test(li[1]) ? "ol" : "ul";
        if (!list || list.tag !== tag) { flushList(); list = { tag, items: [] }; }
        list.items.push(li[2]);
        continue;
      }
      if (list && /^\s{2,}\S/.test(line)) { list.items[list.items.length - 1] += " " + line.trim(); continue; }
      flushList();
      para.push(line);
    }
    flushAll();
    return out.join("");
  }

  window.renderMarkdown = render;
  window.escapeHTML = escape;
})();
