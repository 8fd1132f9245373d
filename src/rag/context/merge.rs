//! Merges consecutive chunks of one document into passages.

use std::collections::HashMap;
use std::hash::Hash;

use super::RetrievedChunk;
use crate::rag::tokens::TokenCounter;

/// Shortest shared text treated as chunk overlap (unless it is a whole
/// chunk): shorter matches are more likely coincidence than overlap.
const MIN_OVERLAP_BYTES: usize = 12;

/// Consecutive chunks of one document, shown and cited together.
#[derive(Debug, Clone)]
pub(super) struct Passage<K> {
    pub kb_id: K,
    pub title: String,
    /// The headings all member chunks share.
    pub heading_path: Vec<String>,
    pub first: usize,
    pub last: usize,
    pub score: f32,
    pub text: String,
    members: Vec<Member>,
}

#[derive(Debug, Clone)]
struct Member {
    index: usize,
    text: String,
    score: f32,
    heading_path: Vec<String>,
}

/// Groups chunks by document and merges runs of consecutive indexes. The
/// result follows the order in which documents first appear in `chunks`.
pub(super) fn passages<C, K>(chunks: Vec<RetrievedChunk<C, K>>) -> Vec<Passage<K>>
where
    K: Clone + Eq + Hash,
{
    let mut documents: Vec<(K, String, Vec<Member>)> = Vec::new();
    let mut slots: HashMap<K, usize> = HashMap::new();
    for chunk in chunks {
        let member = Member {
            index: chunk.chunk_index,
            text: chunk.text,
            score: chunk.score,
            heading_path: chunk.heading_path,
        };
        match slots.get(&chunk.kb_id) {
            Some(&slot) => documents[slot].2.push(member),
            None => {
                slots.insert(chunk.kb_id.clone(), documents.len());
                documents.push((chunk.kb_id, chunk.kb_title, vec![member]));
            }
        }
    }
    let mut passages = Vec::new();
    for (kb_id, title, mut members) in documents {
        members.sort_by_key(|member| member.index);
        let mut run: Vec<Member> = Vec::new();
        for member in members {
            if run
                .last()
                .is_some_and(|last| last.index + 1 != member.index)
            {
                passages.push(Passage::new(
                    kb_id.clone(),
                    title.clone(),
                    std::mem::take(&mut run),
                ));
            }
            run.push(member);
        }
        if !run.is_empty() {
            passages.push(Passage::new(kb_id, title, run));
        }
    }
    passages
}

impl<K: Clone> Passage<K> {
    fn new(kb_id: K, title: String, members: Vec<Member>) -> Self {
        let mut text = String::new();
        for member in &members {
            append_without_overlap(&mut text, &member.text);
        }
        let heading_path =
            common_prefix(members.iter().map(|member| member.heading_path.as_slice()));
        Self {
            kb_id,
            title,
            heading_path,
            first: members.first().map_or(0, |member| member.index),
            last: members.last().map_or(0, |member| member.index),
            score: members
                .iter()
                .map(|member| member.score)
                .fold(f32::MIN, f32::max),
            text,
            members,
        }
    }

    /// The passage as shown to the model, under its `[number]` header.
    pub(super) fn render(&self, number: usize) -> String {
        let mut header = format!("[{number}] {}", self.title);
        if !self.heading_path.is_empty() {
            header.push_str(" — ");
            header.push_str(&self.heading_path.join(" > "));
        }
        format!("{header}\n{}", self.text)
    }

    pub(super) fn estimate_tokens(&self, counter: &TokenCounter, number: usize) -> usize {
        counter.count(&self.render(number))
    }

    /// The best-scoring chunk alone, when the passage has several.
    pub(super) fn best_single(&self) -> Option<Passage<K>> {
        if self.members.len() < 2 {
            return None;
        }
        let best = self.members.iter().max_by(|a, b| {
            a.score
                .total_cmp(&b.score)
                .then_with(|| b.index.cmp(&a.index))
        })?;
        Some(Passage::new(
            self.kb_id.clone(),
            self.title.clone(),
            vec![best.clone()],
        ))
    }
}

fn common_prefix<'a>(mut paths: impl Iterator<Item = &'a [String]>) -> Vec<String> {
    let Some(first) = paths.next() else {
        return Vec::new();
    };
    let mut length = first.len();
    for path in paths {
        length = first
            .iter()
            .zip(path)
            .take(length)
            .take_while(|(a, b)| a == b)
            .count();
    }
    first[..length].to_vec()
}

/// Appends `next` to `text`, skipping the start of `next` that repeats the
/// end of `text` (the overlap consecutive chunks share).
fn append_without_overlap(text: &mut String, next: &str) {
    if text.is_empty() {
        text.push_str(next);
        return;
    }
    let shared = overlap_len(text, next);
    if shared == 0 {
        text.push('\n');
    }
    text.push_str(&next[shared..]);
}

/// Length of the longest suffix of `previous` that is a prefix of `next`,
/// aligned to word boundaries on both sides; 0 when there is none.
fn overlap_len(previous: &str, next: &str) -> usize {
    let longest = previous.len().min(next.len());
    for length in (1..=longest).rev() {
        if length < MIN_OVERLAP_BYTES && length != next.len() {
            break;
        }
        let start = previous.len() - length;
        if !previous.is_char_boundary(start) || !next.is_char_boundary(length) {
            continue;
        }
        if previous[start..] != next[..length] {
            continue;
        }
        let starts_at_word = previous[..start]
            .chars()
            .next_back()
            .is_none_or(char::is_whitespace);
        let ends_at_word = next[length..]
            .chars()
            .next()
            .is_none_or(|c| !c.is_alphanumeric());
        if starts_at_word && ends_at_word {
            return length;
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_is_found_on_word_boundaries() {
        assert_eq!(
            overlap_len("One. Two three four.", "Two three four. Five."),
            15
        );
        assert_eq!(overlap_len("alpha beta", "gamma"), 0);
        // A short coincidence is not overlap.
        assert_eq!(overlap_len("... and the", "the end"), 0);
        // Not aligned to a word start in the previous text.
        assert_eq!(
            overlap_len("xxtwo three four five", "two three four five six"),
            0
        );
        assert_eq!(
            overlap_len("é repeated words here", "é repeated words here and more"),
            22
        );
    }

    #[test]
    fn common_prefix_of_paths() {
        let a = vec!["A".to_owned(), "B".to_owned()];
        let b = vec!["A".to_owned(), "C".to_owned()];
        assert_eq!(
            common_prefix([a.as_slice(), b.as_slice()].into_iter()),
            vec!["A".to_owned()]
        );
        assert_eq!(common_prefix([a.as_slice()].into_iter()), a);
    }
}
