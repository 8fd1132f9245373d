//! Groups blocks into sections: the runs of blocks under one heading path.

use std::ops::Range;

use crate::rag::extract::Block;

pub(super) struct Section {
    pub heading_path: Vec<String>,
    /// Indexes of the section's non-heading blocks.
    pub blocks: Range<usize>,
}

pub(super) fn sections(blocks: &[Block]) -> Vec<Section> {
    let mut sections = Vec::new();
    let mut headings: Vec<(u8, String)> = Vec::new();
    let mut start = 0;
    for (index, block) in blocks.iter().enumerate() {
        if let Block::Heading { level, text } = block {
            push_section(&mut sections, &headings, start..index);
            while headings.last().is_some_and(|(open, _)| open >= level) {
                headings.pop();
            }
            headings.push((*level, text.clone()));
            start = index + 1;
        }
    }
    push_section(&mut sections, &headings, start..blocks.len());
    sections
}

fn push_section(sections: &mut Vec<Section>, headings: &[(u8, String)], blocks: Range<usize>) {
    if !blocks.is_empty() {
        sections.push(Section {
            heading_path: headings.iter().map(|(_, text)| text.clone()).collect(),
            blocks,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heading_paths_follow_levels() {
        let heading = |level, text: &str| Block::Heading {
            level,
            text: text.into(),
        };
        let para = || Block::Paragraph("x".into());
        let blocks = vec![
            para(),
            heading(1, "A"),
            para(),
            heading(2, "B"),
            para(),
            heading(3, "C"),
            heading(2, "D"),
            para(),
            heading(1, "E"),
            para(),
        ];
        let paths: Vec<(Vec<String>, Range<usize>)> = sections(&blocks)
            .into_iter()
            .map(|section| (section.heading_path, section.blocks))
            .collect();
        let path = |names: &[&str]| {
            names
                .iter()
                .map(|name| name.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            paths,
            vec![
                (path(&[]), 0..1),
                (path(&["A"]), 2..3),
                (path(&["A", "B"]), 4..5),
                (path(&["A", "D"]), 7..8),
                (path(&["E"]), 9..10),
            ]
        );
    }
}
