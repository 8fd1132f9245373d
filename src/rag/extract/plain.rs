//! Plain text: paragraphs are separated by blank lines.

use super::text::tidy_preformatted;
use super::Block;

pub(super) fn extract(text: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut paragraph = String::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            flush(&mut paragraph, &mut blocks);
        } else {
            paragraph.push_str(line);
            paragraph.push('\n');
        }
    }
    flush(&mut paragraph, &mut blocks);
    blocks
}

fn flush(paragraph: &mut String, blocks: &mut Vec<Block>) {
    let text = tidy_preformatted(paragraph);
    paragraph.clear();
    if !text.is_empty() {
        blocks.push(Block::Paragraph(text));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_blank_lines() {
        let blocks = extract("first line\nsecond line\n\n\n  \nnext one\r\n");
        assert_eq!(
            blocks,
            vec![
                Block::Paragraph("first line\nsecond line".into()),
                Block::Paragraph("next one".into()),
            ]
        );
    }
}
