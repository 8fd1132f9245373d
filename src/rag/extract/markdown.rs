//! Markdown (CommonMark with GitHub extensions) via `pulldown-cmark`.

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

use super::text::{collapse_whitespace, tidy_preformatted};
use super::Block;

pub(super) fn extract(source: &str) -> (Option<String>, Vec<Block>) {
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_YAML_STYLE_METADATA_BLOCKS;
    let mut builder = Builder::default();
    for event in Parser::new_ext(source, options) {
        builder.event(event);
    }
    builder.emit_pending();
    let title = builder.front_matter_title.clone().or_else(|| {
        builder.blocks.iter().find_map(|block| match block {
            Block::Heading { level: 1, text } => Some(text.clone()),
            _ => None,
        })
    });
    (title, builder.blocks)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Container {
    Item,
    Quote,
}

#[derive(Default)]
struct Builder {
    blocks: Vec<Block>,
    /// Inline text of the block being read.
    text: String,
    containers: Vec<Container>,
    heading: Option<u8>,
    in_code: bool,
    in_metadata: bool,
    cells: Vec<String>,
    front_matter_title: Option<String>,
}

impl Builder {
    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            Event::Text(text) if self.in_metadata => self.metadata(&text),
            Event::Text(text)
            | Event::Code(text)
            | Event::InlineMath(text)
            | Event::DisplayMath(text) => self.text.push_str(&text),
            Event::SoftBreak | Event::HardBreak => {
                self.text.push(if self.in_code { '\n' } else { ' ' });
            }
            Event::TaskListMarker(done) => self.text.push_str(if done { "[x] " } else { "[ ] " }),
            Event::Rule => self.emit_pending(),
            // Raw HTML and footnote markers carry no readable prose.
            Event::Html(_) | Event::InlineHtml(_) | Event::FootnoteReference(_) => {}
        }
    }

    fn start(&mut self, tag: Tag<'_>) {
        match tag {
            Tag::Heading { level, .. } => {
                self.emit_pending();
                self.heading = Some(level as u8);
            }
            // Paragraphs of a loose list item stay in that item.
            Tag::Paragraph if self.container() == Some(Container::Item) => self.text.push(' '),
            Tag::Paragraph | Tag::Table(_) | Tag::List(_) => self.emit_pending(),
            Tag::Item => {
                self.emit_pending();
                self.containers.push(Container::Item);
            }
            Tag::BlockQuote(_) => {
                self.emit_pending();
                self.containers.push(Container::Quote);
            }
            Tag::CodeBlock(_) => {
                self.emit_pending();
                self.in_code = true;
            }
            Tag::TableHead | Tag::TableRow => self.cells.clear(),
            Tag::TableCell => self.text.clear(),
            Tag::MetadataBlock(_) => self.in_metadata = true,
            _ => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Heading(_) => {
                let text = collapse_whitespace(&self.text);
                self.text.clear();
                let level = self.heading.take().unwrap_or(1);
                if !text.is_empty() {
                    self.blocks.push(Block::Heading { level, text });
                }
            }
            TagEnd::Paragraph if self.container() == Some(Container::Item) => {}
            TagEnd::Paragraph => self.emit_pending(),
            TagEnd::Item | TagEnd::BlockQuote(_) => {
                self.emit_pending();
                self.containers.pop();
            }
            TagEnd::CodeBlock => {
                let code = tidy_preformatted(&self.text);
                self.text.clear();
                self.in_code = false;
                if !code.is_empty() {
                    self.blocks.push(Block::Code(code));
                }
            }
            TagEnd::TableCell => {
                self.cells.push(collapse_whitespace(&self.text));
                self.text.clear();
            }
            TagEnd::TableHead | TagEnd::TableRow => {
                if self.cells.iter().any(|cell| !cell.is_empty()) {
                    self.blocks.push(Block::TableRow(self.cells.join(" | ")));
                }
                self.cells.clear();
            }
            TagEnd::MetadataBlock(_) => self.in_metadata = false,
            _ => {}
        }
    }

    fn container(&self) -> Option<Container> {
        self.containers.last().copied()
    }

    /// Emits the pending inline text as a block of the innermost container kind.
    fn emit_pending(&mut self) {
        let text = collapse_whitespace(&self.text);
        self.text.clear();
        if text.is_empty() {
            return;
        }
        self.blocks.push(match self.container() {
            Some(Container::Item) => Block::ListItem(text),
            Some(Container::Quote) => Block::Quote(text),
            None => Block::Paragraph(text),
        });
    }

    /// Reads `title:` from YAML front matter; the rest of it is not prose.
    fn metadata(&mut self, yaml: &str) {
        for line in yaml.lines() {
            if let Some(value) = line.strip_prefix("title:") {
                let value = value.trim().trim_matches(|c| c == '"' || c == '\'').trim();
                if !value.is_empty() {
                    self.front_matter_title = Some(value.to_owned());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_structure() {
        let source = "---\ntitle: \"Billing guide\"\nowner: ops\n---\n\
# Billing\n\nInvoices are sent *monthly*\nby email.\n\n\
## Payment methods\n\n- Card\n- Bank transfer\n  - SEPA only\n- [x] Checked item\n\n\
> Quoted advice.\n\n```rust\nfn main() {}\n```\n\n\
| Plan | Price |\n|------|-------|\n| Pro  | 10 €  |\n\n\
See [the portal](https://example.com/portal) for `details`.\n";
        let (title, blocks) = extract(source);
        assert_eq!(title.as_deref(), Some("Billing guide"));
        assert_eq!(
            blocks,
            vec![
                Block::Heading {
                    level: 1,
                    text: "Billing".into()
                },
                Block::Paragraph("Invoices are sent monthly by email.".into()),
                Block::Heading {
                    level: 2,
                    text: "Payment methods".into()
                },
                Block::ListItem("Card".into()),
                Block::ListItem("Bank transfer".into()),
                Block::ListItem("SEPA only".into()),
                Block::ListItem("[x] Checked item".into()),
                Block::Quote("Quoted advice.".into()),
                Block::Code("fn main() {}".into()),
                Block::TableRow("Plan | Price".into()),
                Block::TableRow("Pro | 10 €".into()),
                Block::Paragraph("See the portal for details.".into()),
            ]
        );
    }

    #[test]
    fn loose_list_items_stay_whole() {
        let (title, blocks) = extract("# Top\n\n1. First para.\n\n   Second para.\n\n2. Next\n");
        assert_eq!(title.as_deref(), Some("Top"));
        assert_eq!(
            blocks[1..],
            [
                Block::ListItem("First para. Second para.".into()),
                Block::ListItem("Next".into()),
            ]
        );
    }
}
