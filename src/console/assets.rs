//! The console's stylesheet and its one script, served from its own origin
//! (the Content-Security-Policy allows no inline script or style).

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;

const CSS: &str = "\
*{box-sizing:border-box}\
body{font-family:system-ui,sans-serif;margin:0 auto;padding:1rem;max-width:64rem;line-height:1.4;color:#111}\
h1{font-size:1.4rem}h2{font-size:1.15rem;margin-top:2rem}\
label{display:block;margin:.6rem 0 .2rem;font-weight:600}\
label.check{display:inline-block;font-weight:400;margin-right:1rem}\
input[type=text],input[type=email],input[type=password],input[type=number]{width:100%;max-width:28rem;padding:.45rem;font-size:1rem}\
button{padding:.45rem .9rem;font-size:1rem;margin-top:.6rem}\
pre{white-space:pre-wrap;word-break:break-all;background:#f3f3f3;padding:.6rem;border-radius:4px}\
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.35rem;text-align:left;vertical-align:top;word-break:break-word}\
.error{color:#a00;font-weight:600}.note{color:#555}\
form.inline{display:inline}nav{display:flex;justify-content:space-between;align-items:center;flex-wrap:wrap;gap:.5rem}\
@media (max-width:40rem){table,thead,tbody,tr,td{display:block}thead{display:none}tr{border-bottom:2px solid #ccc;padding:.4rem 0}\
td{border:none;padding:.15rem 0}td::before{content:attr(data-label) \": \";font-weight:600}}\
";

/// Unhides each copy button (hidden without JavaScript) and makes it copy
/// the text of the element its `data-copy` names.
const SCRIPT: &str = "\
document.querySelectorAll('button[data-copy]').forEach(function (b) {\n\
  b.hidden = false;\n\
  b.addEventListener('click', function () {\n\
    var el = document.getElementById(b.getAttribute('data-copy'));\n\
    if (el && navigator.clipboard) {\n\
      navigator.clipboard.writeText(el.textContent).then(function () { b.textContent = 'Copied'; });\n\
    }\n\
  });\n\
});\n\
";

pub async fn css() -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/css; charset=utf-8"),
            (CACHE_CONTROL, "public, max-age=3600"),
        ],
        CSS,
    )
}

pub async fn script() -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (CACHE_CONTROL, "public, max-age=3600"),
        ],
        SCRIPT,
    )
}
