//! HTML helpers for the e2e tests: enough to read our own server-rendered pages (tags,
//! attributes, hidden form fields, text of a class).

/// Decodes the few entities askama escapes.
pub fn html_unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Attributes of one start tag's text (`<input a="b" c>`), names lower-cased, values unescaped.
pub fn tag_attrs(tag: &str) -> Vec<(String, String)> {
    let inner = tag.trim().trim_start_matches('<').trim_end_matches('>');
    let s = inner.strip_suffix('/').unwrap_or(inner);
    let b = s.as_bytes();
    let ws = |c: u8| c.is_ascii_whitespace();
    let mut i = b.iter().position(|c| ws(*c)).unwrap_or(b.len());
    let mut out = Vec::new();
    loop {
        while i < b.len() && ws(b[i]) {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let name_start = i;
        while i < b.len() && b[i] != b'=' && !ws(b[i]) {
            i += 1;
        }
        let name = s[name_start..i].to_ascii_lowercase();
        let mut j = i;
        while j < b.len() && ws(b[j]) {
            j += 1;
        }
        if j < b.len() && b[j] == b'=' {
            j += 1;
            while j < b.len() && ws(b[j]) {
                j += 1;
            }
            let value;
            if j < b.len() && (b[j] == b'"' || b[j] == b'\'') {
                let q = b[j];
                let mut k = j + 1;
                while k < b.len() && b[k] != q {
                    k += 1;
                }
                value = &s[j + 1..k];
                i = (k + 1).min(b.len());
            } else {
                let mut k = j;
                while k < b.len() && !ws(b[k]) {
                    k += 1;
                }
                value = &s[j..k];
                i = k;
            }
            out.push((name, html_unescape(value)));
        } else {
            out.push((name, String::new()));
        }
    }
    out
}

/// Every start tag `<name …>` in `html`, as raw text.
pub fn tags<'a>(html: &'a str, name: &str) -> Vec<&'a str> {
    let open = format!("<{name}");
    let mut out = Vec::new();
    let lower = html.to_ascii_lowercase();
    let mut from = 0;
    while let Some(pos) = lower[from..].find(&open) {
        let start = from + pos;
        let after = lower
            .as_bytes()
            .get(start + open.len())
            .copied()
            .unwrap_or(b'>');
        if !(after == b' '
            || after == b'>'
            || after == b'/'
            || after == b'\n'
            || after == b'\t'
            || after == b'\r')
        {
            from = start + open.len();
            continue;
        }
        let end = html[start..]
            .find('>')
            .map(|e| start + e + 1)
            .unwrap_or(html.len());
        out.push(&html[start..end]);
        from = end;
    }
    out
}

pub fn attr<'a>(attrs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `(name, value)` of every `<input type="hidden">` in `html`.
pub fn hidden_inputs(html: &str) -> Vec<(String, String)> {
    tags(html, "input")
        .into_iter()
        .map(tag_attrs)
        .filter(|a| attr(a, "type").is_some_and(|t| t.eq_ignore_ascii_case("hidden")))
        .filter_map(|a| {
            Some((
                attr(&a, "name")?.to_string(),
                attr(&a, "value").unwrap_or("").to_string(),
            ))
        })
        .collect()
}

/// The `<form …>…</form>` whose start tag contains `needle` (e.g. `action="/tokens"`).
pub fn form_html<'a>(html: &'a str, needle: &str) -> Option<&'a str> {
    let mut from = 0;
    while let Some(pos) = html[from..].find("<form") {
        let start = from + pos;
        let tag_end = html[start..].find('>').map(|e| start + e)?;
        let end = html[start..]
            .find("</form>")
            .map(|e| start + e + 7)
            .unwrap_or(html.len());
        if html[start..tag_end].contains(needle) {
            return Some(&html[start..end]);
        }
        from = tag_end;
    }
    None
}

/// Text content of a fragment: tags removed, entities decoded, whitespace collapsed.
pub fn strip_tags(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    html_unescape(&out)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// `(data-server-id, row html)` of every `<tr data-server-id=…>` row in `html`.
pub fn server_rows(html: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(pos) = html[from..].find("<tr") {
        let start = from + pos;
        let Some(tag_end) = html[start..].find('>').map(|e| start + e + 1) else {
            break;
        };
        let attrs = tag_attrs(&html[start..tag_end]);
        let end = html[tag_end..]
            .find("</tr>")
            .map(|e| tag_end + e + 5)
            .unwrap_or(html.len());
        if let Some(id) = attr(&attrs, "data-server-id") {
            out.push((id.to_string(), html[start..end].to_string()));
        }
        from = tag_end;
    }
    out
}

/// Text of the first element in `fragment` whose class list contains `class`.
pub fn class_text(fragment: &str, class: &str) -> Option<String> {
    let mut from = 0;
    while let Some(pos) = fragment[from..].find('<') {
        let start = from + pos;
        let tag_end = fragment[start..].find('>').map(|e| start + e + 1)?;
        let tag = &fragment[start..tag_end];
        from = tag_end;
        if tag.starts_with("</") {
            continue;
        }
        let attrs = tag_attrs(tag);
        if attr(&attrs, "class").is_some_and(|c| c.split_whitespace().any(|c| c == class)) {
            let name: String = tag[1..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            let close = format!("</{name}>");
            let end = fragment[tag_end..]
                .find(&close)
                .map(|e| tag_end + e)
                .unwrap_or(fragment.len());
            return Some(strip_tags(&fragment[tag_end..end]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hidden_inputs_and_rows() {
        let html = r#"<form method="post" action="/login"><input type="hidden" name="login_csrf" value="a&amp;b">
            <input name="username"><INPUT type='hidden' name=x value=y/></form>
            <table id="servers"><tr><th>h</th></tr>
            <tr data-server-id="s1" class="row"><td class="agent-status"><span class="badge online">online</span></td>
            <td class="protection-status">enabled</td></tr></table>"#;
        assert_eq!(
            hidden_inputs(html),
            vec![
                ("login_csrf".into(), "a&b".into()),
                ("x".into(), "y".into())
            ]
        );
        let rows = server_rows(html);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].0, "s1");
        assert_eq!(
            class_text(&rows[0].1, "agent-status").as_deref(),
            Some("online")
        );
        assert_eq!(
            class_text(&rows[0].1, "protection-status").as_deref(),
            Some("enabled")
        );
        assert!(form_html(html, "action=\"/login\"").is_some());
    }
}
