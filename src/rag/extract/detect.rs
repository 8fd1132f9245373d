//! Content sniffing: decides what a document is from its bytes alone.

use super::{DocumentKind, ExtractError};

/// How far into the document the PDF header may appear (the PDF specification
/// tolerates leading junk) and how much text the HTML and Markdown heuristics read.
const SNIFF_BYTES: usize = 4096;

/// Binary formats recognised only to give a clearer rejection message.
const KNOWN_BINARY: &[(&[u8], &str)] = &[
    (b"PK\x03\x04", "ZIP archive (e.g. DOCX, XLSX, EPUB)"),
    (b"\xD0\xCF\x11\xE0", "legacy Microsoft Office file"),
    (b"\x89PNG", "PNG image"),
    (b"\xFF\xD8\xFF", "JPEG image"),
    (b"GIF8", "GIF image"),
    (b"{\\rtf", "RTF document"),
    (b"\x1F\x8B", "gzip archive"),
    (b"\xFF\xFE", "UTF-16 text"),
    (b"\xFE\xFF", "UTF-16 text"),
];

/// HTML tags whose presence marks a document as HTML even without `<html>`.
const HTML_TAGS: &[&str] = &[
    "<head", "<body", "<div", "<p>", "<p ", "<span", "<table", "<ul>", "<ol>", "<li>", "<h1",
    "<h2", "<h3", "<a href", "<br", "<meta", "<title", "<section", "<article",
];

/// Detects the kind of a document from its content.
///
/// PDF by its `%PDF-` header; HTML by a doctype, an `<html>` element or
/// several common tags; Markdown by headings, fences, links or lists; any
/// other valid UTF-8 is plain text. Binary data and invalid UTF-8 are
/// rejected with [`ExtractError::Unsupported`].
pub fn detect(bytes: &[u8]) -> Result<DocumentKind, ExtractError> {
    let head = &bytes[..bytes.len().min(SNIFF_BYTES)];
    if is_pdf(bytes) {
        return Ok(DocumentKind::Pdf);
    }
    if let Some((_, name)) = KNOWN_BINARY
        .iter()
        .find(|(magic, _)| head.starts_with(magic))
    {
        return Err(ExtractError::Unsupported(format!(
            "{name} is not supported"
        )));
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|_| {
        ExtractError::Unsupported("binary data or text that is not UTF-8".to_owned())
    })?;
    if looks_binary(text) {
        return Err(ExtractError::Unsupported("binary data".to_owned()));
    }
    if text.trim().is_empty() {
        return Err(ExtractError::Unsupported(
            "the document is empty".to_owned(),
        ));
    }
    let sniff = prefix(text, SNIFF_BYTES);
    if looks_like_html(sniff) {
        Ok(DocumentKind::Html)
    } else if looks_like_markdown(sniff) {
        Ok(DocumentKind::Markdown)
    } else {
        Ok(DocumentKind::PlainText)
    }
}

/// `%PDF-` at the start, or within the first KiB when the file also ends like
/// a PDF (some producers write junk before the header).
fn is_pdf(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(1024)];
    let Some(at) = find(head, b"%PDF-") else {
        return false;
    };
    if head[..at].iter().all(u8::is_ascii_whitespace) {
        return true;
    }
    let tail = &bytes[bytes.len().saturating_sub(1024)..];
    find(tail, b"%%EOF").is_some()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn prefix(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Valid UTF-8 can still be binary: NUL bytes or many control characters.
fn looks_binary(text: &str) -> bool {
    let sample = prefix(text, 8192);
    if sample.contains('\0') {
        return true;
    }
    let controls = sample
        .chars()
        .filter(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t' | '\x0C'))
        .count();
    controls * 10 > sample.chars().count().max(1)
}

fn looks_like_html(sniff: &str) -> bool {
    let lower = sniff.trim_start().to_ascii_lowercase();
    let lower = strip_leading_comments(&lower);
    if lower.starts_with("<!doctype html") || lower.starts_with("<html") {
        return true;
    }
    if lower.starts_with("<?xml") && lower.contains("<html") {
        return true;
    }
    let tags = HTML_TAGS.iter().filter(|tag| lower.contains(*tag)).count();
    let closers = ["</p>", "</div>", "</li>", "</a>", "</span>", "</td>"]
        .iter()
        .filter(|tag| lower.contains(*tag))
        .count();
    // Markdown may embed a little HTML; a document that starts with a tag and
    // uses several distinct ones is HTML.
    (lower.starts_with('<') && tags >= 2) || (tags >= 3 && closers >= 2)
}

fn strip_leading_comments(mut text: &str) -> &str {
    while let Some(rest) = text.strip_prefix("<!--") {
        match rest.find("-->") {
            Some(end) => text = rest[end + 3..].trim_start(),
            None => return text,
        }
    }
    text
}

fn looks_like_markdown(sniff: &str) -> bool {
    let mut strong = 0usize;
    let mut weak = 0usize;
    let mut previous_line_has_text = false;
    for line in sniff.lines() {
        let trimmed = line.trim_start();
        let structural = is_atx_heading(trimmed)
            || trimmed.starts_with("```")
            || trimmed.starts_with("~~~")
            || (previous_line_has_text && is_setext_underline(trimmed))
            || is_table_delimiter(trimmed);
        if structural {
            strong += 1;
        } else if is_list_item(trimmed) || trimmed.starts_with("> ") {
            weak += 1;
        }
        if has_inline_link(line) {
            strong += 1;
        }
        if line.contains("**") || line.contains("__") || line.contains('`') {
            weak += 1;
        }
        previous_line_has_text = !trimmed.is_empty();
    }
    strong >= 1 || weak >= 3
}

fn is_atx_heading(line: &str) -> bool {
    let hashes = line.bytes().take_while(|&b| b == b'#').count();
    (1..=6).contains(&hashes)
        && line[hashes..].starts_with(' ')
        && !line[hashes..].trim().is_empty()
}

fn is_setext_underline(line: &str) -> bool {
    let line = line.trim_end();
    line.len() >= 3 && (line.bytes().all(|b| b == b'=') || line.bytes().all(|b| b == b'-'))
}

fn is_table_delimiter(line: &str) -> bool {
    let line = line.trim();
    line.starts_with('|')
        && line.contains("---")
        && line.bytes().all(|b| matches!(b, b'|' | b'-' | b':' | b' '))
}

fn is_list_item(line: &str) -> bool {
    if ["- ", "* ", "+ "]
        .iter()
        .any(|marker| line.starts_with(marker))
    {
        return true;
    }
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0
        && digits < 10
        && (line[digits..].starts_with(". ") || line[digits..].starts_with(") "))
}

fn has_inline_link(line: &str) -> bool {
    line.match_indices("](")
        .any(|(at, _)| line[..at].contains('[') && line[at..].contains(')'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pdf_by_magic() {
        assert_eq!(
            detect(b"%PDF-1.7\n%\xE2\xE3\xCF\xD3\n"),
            Ok(DocumentKind::Pdf)
        );
        assert_eq!(detect(b"\n\n%PDF-1.4\n"), Ok(DocumentKind::Pdf));
    }

    #[test]
    fn html_by_doctype_or_tags() {
        assert_eq!(
            detect(b"<!DOCTYPE html><title>x</title>"),
            Ok(DocumentKind::Html)
        );
        assert_eq!(
            detect(b"  <html lang=en><body>hi</body></html>"),
            Ok(DocumentKind::Html)
        );
        assert_eq!(
            detect(b"<!-- saved page --><div><p>One</p><p>Two</p></div>"),
            Ok(DocumentKind::Html)
        );
    }

    #[test]
    fn markdown_by_structure() {
        assert_eq!(detect(b"# Title\n\nSome text."), Ok(DocumentKind::Markdown));
        assert_eq!(
            detect(b"See [the docs](https://example.com)."),
            Ok(DocumentKind::Markdown)
        );
        assert_eq!(detect(b"Title\n=====\n\nbody"), Ok(DocumentKind::Markdown));
        assert_eq!(
            detect(b"- one\n- two\n- three\n"),
            Ok(DocumentKind::Markdown)
        );
        assert_eq!(
            detect(b"Intro with a <b>tag</b>.\n\n## Usage\n"),
            Ok(DocumentKind::Markdown)
        );
    }

    #[test]
    fn plain_text_otherwise() {
        assert_eq!(
            detect("Dear team,\n\nthe meeting moves to 3 p.m. - see you there.\nÉlodie".as_bytes()),
            Ok(DocumentKind::PlainText)
        );
        assert_eq!(
            detect(b"\xEF\xBB\xBFplain with bom"),
            Ok(DocumentKind::PlainText)
        );
    }

    #[test]
    fn binary_and_invalid_utf8_are_unsupported() {
        assert!(matches!(
            detect(b"\x89PNG\r\n\x1a\n...."),
            Err(ExtractError::Unsupported(_))
        ));
        assert!(matches!(
            detect(b"PK\x03\x04rest"),
            Err(ExtractError::Unsupported(_))
        ));
        assert!(matches!(
            detect(b"abc\xFF\xFEdef"),
            Err(ExtractError::Unsupported(_))
        ));
        assert!(matches!(
            detect(b"abc\0\0\0def"),
            Err(ExtractError::Unsupported(_))
        ));
        assert!(matches!(
            detect(b"  \n "),
            Err(ExtractError::Unsupported(_))
        ));
    }

    #[test]
    fn file_names_do_not_matter() {
        // A document that merely mentions a PDF file name is still text.
        assert_eq!(
            detect(b"report.pdf is attached"),
            Ok(DocumentKind::PlainText)
        );
        assert_eq!(
            detect(b"A PDF starts with %PDF-1.7 and ends with a trailer."),
            Ok(DocumentKind::PlainText)
        );
    }
}
