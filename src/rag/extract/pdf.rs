//! PDF text extraction via `pdf-extract` (which parses with `lopdf`).

use std::panic::{catch_unwind, AssertUnwindSafe};

use pdf_extract::{Document, Object, OutputError, PlainTextOutput};

use super::text::collapse_whitespace;
use super::{Block, ExtractError, ExtractLimits};

pub(super) fn extract(
    bytes: &[u8],
    limits: &ExtractLimits,
) -> Result<(Option<String>, Vec<Block>), ExtractError> {
    // The font and encoding code of the PDF stack panics on some malformed
    // files; a bad upload must become an error, not a crashed worker.
    catch_unwind(AssertUnwindSafe(|| extract_pages(bytes, limits))).unwrap_or_else(|_| {
        Err(ExtractError::Malformed(
            "the PDF could not be parsed".to_owned(),
        ))
    })
}

fn extract_pages(
    bytes: &[u8],
    limits: &ExtractLimits,
) -> Result<(Option<String>, Vec<Block>), ExtractError> {
    // Loading tries the empty user password, which opens most "protected"
    // PDFs; anything still encrypted afterwards needs a real password.
    let document = Document::load_mem(bytes).map_err(load_error)?;
    if document.is_encrypted() {
        return Err(ExtractError::Encrypted);
    }
    let pages = document.get_pages();
    if pages.len() > limits.max_pdf_pages {
        return Err(ExtractError::TooManyPages {
            pages: pages.len(),
            max: limits.max_pdf_pages,
        });
    }
    let mut blocks = Vec::new();
    for &page in pages.keys() {
        let mut text = String::new();
        let mut output = PlainTextOutput::new(&mut text);
        pdf_extract::output_doc_page(&document, &mut output, page).map_err(output_error)?;
        blocks.extend(paragraphs(&text));
    }
    if blocks.is_empty() {
        return Err(ExtractError::NoText);
    }
    Ok((info_title(&document), blocks))
}

fn load_error(error: pdf_extract::Error) -> ExtractError {
    match error {
        pdf_extract::Error::Decryption(_)
        | pdf_extract::Error::InvalidPassword
        | pdf_extract::Error::AlreadyEncrypted => ExtractError::Encrypted,
        other => ExtractError::Malformed(other.to_string()),
    }
}

fn output_error(error: OutputError) -> ExtractError {
    match error {
        OutputError::PdfError(pdf_extract::Error::Decryption(_)) => ExtractError::Encrypted,
        other => ExtractError::Malformed(other.to_string()),
    }
}

/// Splits page text into paragraphs at blank lines, re-joining lines and
/// words hyphenated across line ends.
fn paragraphs(page: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut current = String::new();
    for line in page.lines().map(str::trim) {
        if line.is_empty() {
            push_paragraph(&mut current, &mut blocks);
            continue;
        }
        if current.ends_with('-') && starts_lowercase(line) && ends_with_letter_hyphen(&current) {
            current.pop();
        } else if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(line);
    }
    push_paragraph(&mut current, &mut blocks);
    blocks
}

fn push_paragraph(current: &mut String, blocks: &mut Vec<Block>) {
    let text = collapse_whitespace(current);
    current.clear();
    if !text.is_empty() {
        blocks.push(Block::Paragraph(text));
    }
}

fn starts_lowercase(line: &str) -> bool {
    line.chars().next().is_some_and(char::is_lowercase)
}

fn ends_with_letter_hyphen(text: &str) -> bool {
    let mut tail = text.chars().rev();
    tail.next() == Some('-') && tail.next().is_some_and(char::is_alphabetic)
}

fn info_title(document: &Document) -> Option<String> {
    let info = document.trailer.get(b"Info").ok()?;
    let (_, info) = document.dereference(info).ok()?;
    let title = info.as_dict().ok()?.get(b"Title").ok()?;
    let (_, title) = document.dereference(title).ok()?;
    let title = match title {
        Object::String(..) => pdf_extract::decode_text_string(title).ok()?,
        _ => return None,
    };
    let title = collapse_whitespace(&title);
    (!title.is_empty()).then_some(title)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use pdf_extract::content::{Content, Operation};
    use pdf_extract::{dictionary, EncryptionState, EncryptionVersion, Permissions, Stream};

    const EMBEDDED_FONT_PDF: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/rag-two-pages-embedded-font.pdf"
    ));
    const IMAGE_ONLY_PDF: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/rag-image-only-scan.pdf"
    ));

    /// Builds a PDF with one page per entry, each showing its lines of text.
    fn build_pdf(pages: &[&[&str]]) -> Document {
        let mut doc = Document::with_version("1.5");
        let pages_id = doc.new_object_id();
        let font_id = doc.add_object(dictionary! {
            "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica",
        });
        let resources_id = doc.add_object(dictionary! {
            "Font" => dictionary! { "F1" => font_id },
        });
        let mut kids = Vec::new();
        for lines in pages {
            let mut operations = vec![
                Operation::new("BT", vec![]),
                Operation::new("Tf", vec!["F1".into(), 12.into()]),
                Operation::new("TL", vec![16.into()]),
                Operation::new("Td", vec![50.into(), 700.into()]),
            ];
            for line in *lines {
                operations.push(Operation::new("Tj", vec![Object::string_literal(*line)]));
                operations.push(Operation::new("T*", vec![]));
            }
            operations.push(Operation::new("ET", vec![]));
            let content = Content { operations }.encode().unwrap();
            let content_id = doc.add_object(Stream::new(dictionary! {}, content));
            let page_id = doc.add_object(dictionary! {
                "Type" => "Page", "Parent" => pages_id, "Contents" => content_id,
            });
            kids.push(page_id.into());
        }
        let count = kids.len() as i64;
        doc.objects.insert(
            pages_id,
            Object::Dictionary(dictionary! {
                "Type" => "Pages", "Kids" => kids, "Count" => count,
                "Resources" => resources_id,
                "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
            }),
        );
        let catalog_id = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
        doc.trailer.set("Root", catalog_id);
        let info_id =
            doc.add_object(dictionary! { "Title" => Object::string_literal("Built title") });
        doc.trailer.set("Info", info_id);
        doc.compress();
        doc
    }

    fn to_bytes(doc: &mut Document) -> Vec<u8> {
        let mut bytes = Vec::new();
        doc.save_to(&mut bytes).unwrap();
        bytes
    }

    #[test]
    fn extracts_text_of_a_built_pdf() {
        let bytes = to_bytes(&mut build_pdf(&[
            &["Hello from page one."],
            &["Second page here."],
        ]));
        let (title, blocks) = extract(&bytes, &ExtractLimits::default()).unwrap();
        assert_eq!(title.as_deref(), Some("Built title"));
        let text: Vec<&str> = blocks.iter().map(Block::text).collect();
        assert_eq!(text, ["Hello from page one.", "Second page here."]);
    }

    #[test]
    fn extracts_embedded_font_fixture() {
        let (title, blocks) = extract(EMBEDDED_FONT_PDF, &ExtractLimits::default()).unwrap();
        assert_eq!(title.as_deref(), Some("Café opening hours"));
        let all: String = blocks
            .iter()
            .map(Block::text)
            .collect::<Vec<_>>()
            .join("\n");
        for expected in [
            "Opening hours",
            "The café opens at eight every weekday.",
            "Refunds are granted",
        ] {
            assert!(all.contains(expected), "{expected:?} missing from {all:?}");
        }
    }

    #[test]
    fn image_only_pdf_has_no_text() {
        assert_eq!(
            extract(IMAGE_ONLY_PDF, &ExtractLimits::default()),
            Err(ExtractError::NoText)
        );
    }

    #[test]
    fn page_limit_is_enforced() {
        let bytes = to_bytes(&mut build_pdf(&[&["a"], &["b"], &["c"]]));
        let limits = ExtractLimits {
            max_pdf_pages: 2,
            ..ExtractLimits::default()
        };
        assert_eq!(
            extract(&bytes, &limits),
            Err(ExtractError::TooManyPages { pages: 3, max: 2 })
        );
    }

    #[test]
    fn password_protected_pdf_is_reported() {
        let mut doc = build_pdf(&[&["secret text"]]);
        let file_id = Object::String(
            b"0123456789abcdef".to_vec(),
            pdf_extract::StringFormat::Hexadecimal,
        );
        doc.trailer.set("ID", vec![file_id.clone(), file_id]);
        let version = EncryptionVersion::V2 {
            document: &doc,
            owner_password: "owner",
            user_password: "user",
            key_length: 128,
            permissions: Permissions::all(),
        };
        let state = EncryptionState::try_from(version).unwrap();
        doc.encrypt(&state).unwrap();
        let bytes = to_bytes(&mut doc);
        assert_eq!(
            extract(&bytes, &ExtractLimits::default()),
            Err(ExtractError::Encrypted)
        );
    }

    #[test]
    fn garbage_is_malformed() {
        let result = extract(
            b"%PDF-1.7\nthis is not really a pdf",
            &ExtractLimits::default(),
        );
        assert!(
            matches!(result, Err(ExtractError::Malformed(_))),
            "{result:?}"
        );
    }

    #[test]
    fn paragraphs_join_lines_and_hyphenation() {
        let blocks = paragraphs("  First line of a para-\ngraph that wraps\n\n\nNext one.\n");
        assert_eq!(
            blocks,
            vec![
                Block::Paragraph("First line of a paragraph that wraps".into()),
                Block::Paragraph("Next one.".into()),
            ]
        );
    }

    #[test]
    fn keeps_real_hyphens() {
        let blocks = paragraphs("well-\nKnown and 2-\nfold");
        assert_eq!(
            blocks,
            vec![Block::Paragraph("well- Known and 2- fold".into())]
        );
    }
}
