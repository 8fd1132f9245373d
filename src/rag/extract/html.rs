//! HTML: walks the parsed DOM and keeps the readable structure.

use scraper::{ElementRef, Html};

use super::text::{collapse_whitespace, tidy_preformatted};
use super::{Block, ExtractError};

/// Elements whose content is never readable prose.
const SKIPPED: &[&str] = &[
    "head", "script", "style", "noscript", "template", "nav", "svg", "canvas", "iframe", "object",
    "embed", "button", "select", "textarea", "input", "dialog",
];

/// Elements that end the current paragraph.
const BLOCK_CONTAINERS: &[&str] = &[
    "html",
    "body",
    "div",
    "section",
    "article",
    "main",
    "header",
    "footer",
    "aside",
    "figure",
    "figcaption",
    "form",
    "fieldset",
    "details",
    "summary",
    "dl",
    "dt",
    "dd",
    "address",
    "center",
    "hgroup",
    "caption",
    "ul",
    "ol",
    "menu",
    "hr",
];

/// Beyond this nesting the structure is flattened, so hostile documents
/// cannot exhaust the stack.
const MAX_DEPTH: usize = 128;

/// HTML nested deeper than this is rejected before parsing: tree building
/// cost grows with the square of the depth. Real pages stay far below it.
const MAX_NESTING: usize = 1000;

/// Void elements and elements whose end tag may be omitted; they do not
/// reliably add a nesting level.
const NOT_NESTING: &[&[u8]] = &[
    b"area",
    b"base",
    b"br",
    b"col",
    b"embed",
    b"hr",
    b"img",
    b"input",
    b"link",
    b"meta",
    b"source",
    b"track",
    b"wbr",
    b"param",
    b"p",
    b"li",
    b"dt",
    b"dd",
    b"tr",
    b"td",
    b"th",
    b"option",
    b"optgroup",
    b"thead",
    b"tbody",
    b"tfoot",
    b"colgroup",
    b"rb",
    b"rt",
    b"rp",
    b"html",
    b"head",
    b"body",
];

/// Elements whose content is raw text, where `<` does not start a tag.
const RAW_TEXT: &[&[u8]] = &[b"script", b"style", b"textarea", b"title", b"xmp"];

pub(super) fn extract(source: &str) -> Result<(Option<String>, Vec<Block>), ExtractError> {
    if nesting_exceeds(source, MAX_NESTING) {
        return Err(ExtractError::Malformed(format!(
            "HTML is nested more than {MAX_NESTING} levels deep"
        )));
    }
    let document = Html::parse_document(source);
    let root = document.root_element();
    let mut walker = Walker::default();
    walker.walk(root, 0);
    walker.flush();
    let title = root
        .descendent_elements()
        .find(|element| element.value().name() == "title")
        .map(|element| collapse_whitespace(&element.text().collect::<String>()))
        .filter(|title| !title.is_empty())
        .or_else(|| first_top_heading(&walker.blocks));
    Ok((title, walker.blocks))
}

/// Estimates the element nesting depth with a quick tag scan.
fn nesting_exceeds(source: &str, limit: usize) -> bool {
    let lower = source.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    let mut depth = 0usize;
    let mut at = 0usize;
    while let Some(offset) = bytes[at..].iter().position(|&b| b == b'<') {
        at += offset + 1;
        let rest = &bytes[at..];
        if rest.starts_with(b"!--") {
            match find(rest, b"-->") {
                Some(end) => at += end + 3,
                None => break,
            }
            continue;
        }
        if rest.first() == Some(&b'/') {
            depth = depth.saturating_sub(1);
            continue;
        }
        let name_len = rest
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'-')
            .count();
        if name_len == 0 {
            continue;
        }
        let name = &rest[..name_len];
        // Without a further `>` no further tag can open: stop, which also
        // keeps the scan linear.
        let Some(tag_len) = find(rest, b">").map(|end| end + 1) else {
            break;
        };
        let self_closing = rest[..tag_len].ends_with(b"/>");
        at += tag_len;
        if RAW_TEXT.contains(&name) {
            let closing = [b"</".as_slice(), name].concat();
            match find(&bytes[at..], &closing) {
                Some(end) => at += end,
                None => break,
            }
            continue;
        }
        if self_closing || NOT_NESTING.contains(&name) {
            continue;
        }
        depth += 1;
        if depth > limit {
            return true;
        }
    }
    false
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn first_top_heading(blocks: &[Block]) -> Option<String> {
    blocks.iter().find_map(|block| match block {
        Block::Heading { level: 1, text } => Some(text.clone()),
        _ => None,
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Container {
    Paragraph,
    ListItem,
    Quote,
}

#[derive(Default)]
struct Walker {
    blocks: Vec<Block>,
    inline: String,
    containers: Vec<Container>,
}

impl Walker {
    fn walk(&mut self, element: ElementRef<'_>, depth: usize) {
        for child in element.children() {
            if let Some(text) = child.value().as_text() {
                self.inline.push_str(text);
                continue;
            }
            let Some(child) = ElementRef::wrap(child) else {
                continue;
            };
            if is_hidden(child) {
                continue;
            }
            if depth >= MAX_DEPTH {
                self.inline.push(' ');
                self.inline.extend(child.text());
                continue;
            }
            self.element(child, depth + 1);
        }
    }

    fn element(&mut self, element: ElementRef<'_>, depth: usize) {
        let name = element.value().name();
        match name {
            _ if SKIPPED.contains(&name) => {}
            "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => {
                self.flush();
                let level = name[1..].parse().unwrap_or(1);
                let text = collapse_whitespace(&element.text().collect::<String>());
                if !text.is_empty() {
                    self.blocks.push(Block::Heading { level, text });
                }
            }
            "pre" => {
                self.flush();
                let code = tidy_preformatted(&element.text().collect::<String>());
                if !code.is_empty() {
                    self.blocks.push(Block::Code(code));
                }
            }
            "table" => {
                self.flush();
                self.table(element);
            }
            "li" => self.within(Container::ListItem, element, depth),
            "blockquote" => self.within(Container::Quote, element, depth),
            "p" if self.current() == Container::ListItem => {
                // Paragraphs of a loose list item stay in that item.
                self.inline.push(' ');
                self.walk(element, depth);
                self.inline.push(' ');
            }
            "p" => {
                self.flush();
                self.walk(element, depth);
                self.flush();
            }
            "br" => self.inline.push(' '),
            _ if BLOCK_CONTAINERS.contains(&name) => {
                self.flush();
                self.walk(element, depth);
                self.flush();
            }
            // Inline elements (a, span, em, code, ...) add to the current text.
            _ => self.walk(element, depth),
        }
    }

    fn within(&mut self, container: Container, element: ElementRef<'_>, depth: usize) {
        self.flush();
        self.containers.push(container);
        self.walk(element, depth);
        self.flush();
        self.containers.pop();
    }

    fn current(&self) -> Container {
        self.containers
            .last()
            .copied()
            .unwrap_or(Container::Paragraph)
    }

    /// Emits the pending inline text as a block of the current container kind.
    fn flush(&mut self) {
        let text = collapse_whitespace(&self.inline);
        self.inline.clear();
        if text.is_empty() {
            return;
        }
        self.blocks.push(match self.current() {
            Container::Paragraph => Block::Paragraph(text),
            Container::ListItem => Block::ListItem(text),
            Container::Quote => Block::Quote(text),
        });
    }

    fn table(&mut self, table: ElementRef<'_>) {
        for row in table
            .descendent_elements()
            .filter(|element| element.value().name() == "tr")
        {
            let cells: Vec<String> = row
                .child_elements()
                .filter(|cell| matches!(cell.value().name(), "td" | "th"))
                .map(|cell| collapse_whitespace(&cell.text().collect::<String>()))
                .collect();
            if cells.iter().any(|cell| !cell.is_empty()) {
                self.blocks.push(Block::TableRow(cells.join(" | ")));
            }
        }
    }
}

fn is_hidden(element: ElementRef<'_>) -> bool {
    let value = element.value();
    value.attr("hidden").is_some() || value.attr("aria-hidden") == Some("true")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const PAGE: &str = r#"<!DOCTYPE html>
<html><head><title> Refund   policy </title><style>p{color:red}</style>
<script>var secret = "do not index";</script></head>
<body>
<nav><a href="/">Home</a> | <a href="/faq">FAQ</a></nav>
<h1>Refunds</h1>
<p>We refund <b>any</b> order
   within 30 days.</p>
<div>Loose text in a div<p>and a paragraph</p></div>
<h2>How to ask</h2>
<ul><li>Open the <a href="/help">help page</a></li>
    <li><p>Write to us</p><ul><li>by email</li></ul></li></ul>
<blockquote>Fast and fair.</blockquote>
<pre>let x = 1;
  let y = 2;
</pre>
<table><tr><th>Plan</th><th>Days</th></tr><tr><td>Basic</td><td>30</td></tr></table>
<p hidden>hidden text</p>
<script>track()</script>
</body></html>"#;

    #[test]
    fn keeps_structure_and_drops_chrome() {
        let (title, blocks) = extract(PAGE).unwrap();
        assert_eq!(title.as_deref(), Some("Refund policy"));
        assert_eq!(
            blocks,
            vec![
                Block::Heading {
                    level: 1,
                    text: "Refunds".into()
                },
                Block::Paragraph("We refund any order within 30 days.".into()),
                Block::Paragraph("Loose text in a div".into()),
                Block::Paragraph("and a paragraph".into()),
                Block::Heading {
                    level: 2,
                    text: "How to ask".into()
                },
                Block::ListItem("Open the help page".into()),
                Block::ListItem("Write to us".into()),
                Block::ListItem("by email".into()),
                Block::Quote("Fast and fair.".into()),
                Block::Code("let x = 1;\n  let y = 2;".into()),
                Block::TableRow("Plan | Days".into()),
                Block::TableRow("Basic | 30".into()),
            ]
        );
    }

    #[test]
    fn title_falls_back_to_first_h1() {
        let (title, _) = extract("<body><h2>Sub</h2><h1>Main</h1></body>").unwrap();
        assert_eq!(title.as_deref(), Some("Main"));
    }

    #[test]
    fn deep_nesting_is_flattened() {
        let depth = 900;
        let html = format!(
            "{}deep text{}",
            "<div>".repeat(depth),
            "</div>".repeat(depth)
        );
        let (_, blocks) = extract(&html).unwrap();
        assert_eq!(blocks, vec![Block::Paragraph("deep text".into())]);
    }

    #[test]
    fn hostile_nesting_is_rejected_before_parsing() {
        let html = format!("{}x", "<div><b>".repeat(50_000));
        let started = std::time::Instant::now();
        assert!(matches!(extract(&html), Err(ExtractError::Malformed(_))));
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn nesting_scan_ignores_unclosed_paragraphs_and_scripts() {
        let many_paragraphs = "<p>para ".repeat(5_000);
        assert!(!nesting_exceeds(&many_paragraphs, 10));
        let script = "<script>for(;;){ s += '<div>'; }</script>".repeat(100);
        assert!(!nesting_exceeds(&script, 10));
        assert!(nesting_exceeds(&"<span>".repeat(11), 10));
        assert!(!nesting_exceeds(&"<span></span><img/><br>".repeat(50), 10));
        let started = std::time::Instant::now();
        assert!(!nesting_exceeds(&"a < b ".repeat(200_000), 10));
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }
}
