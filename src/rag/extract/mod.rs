//! Turns uploaded document bytes into structured text blocks.
//!
//! The document type is detected from the content, never from a file name or
//! a client-supplied content type.

mod detect;
mod html;
mod markdown;
mod pdf;
mod plain;
mod text;

pub use detect::detect;

/// Kind of document, as detected from its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentKind {
    Pdf,
    Html,
    Markdown,
    PlainText,
}

/// One structural unit of a document.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", content = "content", rename_all = "snake_case")]
pub enum Block {
    /// A section heading; `level` is 1 (top) to 6.
    Heading {
        level: u8,
        text: String,
    },
    Paragraph(String),
    ListItem(String),
    /// Preformatted text; whitespace is meaningful.
    Code(String),
    Quote(String),
    /// One table row, cells separated by ` | `.
    TableRow(String),
}

impl Block {
    /// The text carried by the block.
    pub fn text(&self) -> &str {
        match self {
            Block::Heading { text, .. } => text,
            Block::Paragraph(text)
            | Block::ListItem(text)
            | Block::Code(text)
            | Block::Quote(text)
            | Block::TableRow(text) => text,
        }
    }
}

/// The text content of a document, in reading order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExtractedDocument {
    pub kind: DocumentKind,
    pub title: Option<String>,
    pub blocks: Vec<Block>,
}

/// Bounds that protect the server from oversized or hostile uploads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtractLimits {
    /// Largest accepted input, in bytes.
    pub max_bytes: usize,
    /// Largest accepted PDF, in pages.
    pub max_pdf_pages: usize,
}

impl Default for ExtractLimits {
    fn default() -> Self {
        Self {
            max_bytes: 20 * 1024 * 1024,
            max_pdf_pages: 500,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExtractError {
    #[error("document is {size} bytes; the limit is {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("unsupported document: {0}")]
    Unsupported(String),
    #[error("PDF has {pages} pages; the limit is {max} pages")]
    TooManyPages { pages: usize, max: usize },
    #[error("PDF is encrypted and cannot be read without a password")]
    Encrypted,
    #[error("document contains no extractable text (a scanned or image-only PDF needs OCR first)")]
    NoText,
    #[error("malformed document: {0}")]
    Malformed(String),
}

/// Extracts the text of a document of the given kind.
///
/// Fails with [`ExtractError::TooLarge`] before parsing anything when the input
/// exceeds `limits.max_bytes`. PDF parsing is CPU-bound: run it on a blocking
/// thread.
pub fn extract(
    bytes: &[u8],
    kind: DocumentKind,
    limits: &ExtractLimits,
) -> Result<ExtractedDocument, ExtractError> {
    check_size(bytes, limits)?;
    let (title, blocks) = match kind {
        DocumentKind::Pdf => pdf::extract(bytes, limits)?,
        DocumentKind::Html => html::extract(utf8(bytes)?)?,
        DocumentKind::Markdown => markdown::extract(utf8(bytes)?),
        DocumentKind::PlainText => (None, plain::extract(utf8(bytes)?)),
    };
    if blocks.is_empty() {
        return Err(ExtractError::NoText);
    }
    Ok(ExtractedDocument {
        kind,
        title,
        blocks,
    })
}

/// Detects the kind of a document and extracts it.
pub fn detect_and_extract(
    bytes: &[u8],
    limits: &ExtractLimits,
) -> Result<ExtractedDocument, ExtractError> {
    check_size(bytes, limits)?;
    let kind = detect(bytes)?;
    extract(bytes, kind, limits)
}

fn check_size(bytes: &[u8], limits: &ExtractLimits) -> Result<(), ExtractError> {
    if bytes.len() > limits.max_bytes {
        return Err(ExtractError::TooLarge {
            size: bytes.len(),
            max: limits.max_bytes,
        });
    }
    Ok(())
}

/// Decodes UTF-8, dropping a byte-order mark.
fn utf8(bytes: &[u8]) -> Result<&str, ExtractError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    std::str::from_utf8(bytes)
        .map_err(|_| ExtractError::Unsupported("text is not valid UTF-8".to_owned()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn size_guard_comes_first() {
        let limits = ExtractLimits {
            max_bytes: 10,
            ..ExtractLimits::default()
        };
        let error = detect_and_extract(b"# Heading\n\nlong enough", &limits).unwrap_err();
        assert_eq!(error, ExtractError::TooLarge { size: 22, max: 10 });
        let error = extract(b"%PDF-1.7 and more", DocumentKind::Pdf, &limits).unwrap_err();
        assert!(matches!(error, ExtractError::TooLarge { .. }));
    }

    #[test]
    fn detects_and_extracts_each_kind() {
        let limits = ExtractLimits::default();
        let html = detect_and_extract(b"<!doctype html><h1>Hi</h1><p>There</p>", &limits).unwrap();
        assert_eq!(html.kind, DocumentKind::Html);
        assert_eq!(html.title.as_deref(), Some("Hi"));
        let markdown = detect_and_extract(b"# Hi\n\nThere *you* are.", &limits).unwrap();
        assert_eq!(markdown.kind, DocumentKind::Markdown);
        assert_eq!(
            markdown.blocks[1],
            Block::Paragraph("There you are.".into())
        );
        let plain = detect_and_extract("Just a note.\n\nSecond part.".as_bytes(), &limits).unwrap();
        assert_eq!(plain.kind, DocumentKind::PlainText);
        assert_eq!(plain.blocks.len(), 2);
        let pdf = detect_and_extract(
            include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/rag-two-pages-embedded-font.pdf"
            )),
            &limits,
        )
        .unwrap();
        assert_eq!(pdf.kind, DocumentKind::Pdf);
    }

    #[test]
    fn documents_without_text_are_rejected() {
        let limits = ExtractLimits::default();
        let error = extract(
            b"<html><script>x()</script></html>",
            DocumentKind::Html,
            &limits,
        );
        assert_eq!(error, Err(ExtractError::NoText));
        let error = extract(b"\xFF\xFE", DocumentKind::PlainText, &limits);
        assert!(matches!(error, Err(ExtractError::Unsupported(_))));
    }
}
