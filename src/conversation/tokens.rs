//! Word-level view of a message for the deterministic extractor: lowercase
//! words, phrase lookup, and bookkeeping of which words a recogniser already
//! claimed (so "deep voice" is not also read as a depth).

/// A phrase table: word sequences and the value each one means.
pub(super) type PhraseTable<T> = &'static [(&'static [&'static str], T)];

/// One occurrence of a phrase.
#[derive(Debug, Clone, Copy)]
pub(super) struct PhraseMatch<T> {
    pub start: usize,
    pub end: usize,
    pub value: T,
}

/// Words that cancel the phrase right after them ("not in the morning").
const NEGATORS: &[&str] = &[
    "not", "no", "never", "don't", "dont", "isn't", "except", "without", "instead",
];
/// How far back a negator may sit ("not in the morning" is three words).
const NEGATION_REACH: usize = 3;

pub(super) struct Tokens {
    words: Vec<String>,
    /// Which clause (between commas and sentence ends) each word is in.
    clauses: Vec<usize>,
    claimed: Vec<bool>,
}

impl Tokens {
    pub fn new(text: &str) -> Self {
        let (words, clauses): (Vec<String>, Vec<usize>) =
            split_words_in_clauses(text).into_iter().unzip();
        let claimed = vec![false; words.len()];
        Tokens {
            words,
            clauses,
            claimed,
        }
    }

    pub fn len(&self) -> usize {
        self.words.len()
    }

    pub fn word(&self, index: usize) -> Option<&str> {
        self.words.get(index).map(String::as_str)
    }

    pub fn is_claimed(&self, index: usize) -> bool {
        self.claimed.get(index).copied().unwrap_or(true)
    }

    pub fn claim(&mut self, start: usize, end: usize) {
        for flag in self.claimed.iter_mut().take(end).skip(start) {
            *flag = true;
        }
    }

    /// Unclaimed words, in order.
    pub fn unclaimed(&self) -> impl Iterator<Item = &str> {
        self.words
            .iter()
            .zip(&self.claimed)
            .filter(|(_, claimed)| !**claimed)
            .map(|(word, _)| word.as_str())
    }

    /// Whether the unclaimed words `start..start + phrase.len()` spell `phrase`.
    pub fn matches_at(&self, start: usize, phrase: &[&str]) -> bool {
        let end = start + phrase.len();
        end <= self.words.len()
            && phrase.iter().enumerate().all(|(offset, word)| {
                !self.claimed[start + offset] && self.words[start + offset] == *word
            })
    }

    /// Every non-overlapping occurrence of the table's phrases among the
    /// unclaimed words, left to right, preferring the longest phrase at each
    /// position. Found words are claimed.
    pub fn take_phrases<T: Copy>(&mut self, table: PhraseTable<T>) -> Vec<PhraseMatch<T>> {
        let mut found = Vec::new();
        let mut start = 0;
        while start < self.words.len() {
            let longest = table
                .iter()
                .filter(|(phrase, _)| self.matches_at(start, phrase))
                .max_by_key(|(phrase, _)| phrase.len());
            match longest {
                Some((phrase, value)) => {
                    let end = start + phrase.len();
                    found.push(PhraseMatch {
                        start,
                        end,
                        value: *value,
                    });
                    self.claim(start, end);
                    start = end;
                }
                None => start += 1,
            }
        }
        found
    }

    /// Whether a negating word sits shortly before `start`, in the same
    /// clause ("morning, no wait, evening" negates nothing).
    pub fn is_negated(&self, start: usize) -> bool {
        let Some(&clause) = self.clauses.get(start) else {
            return false;
        };
        (start.saturating_sub(NEGATION_REACH)..start).any(|index| {
            self.clauses[index] == clause && NEGATORS.contains(&self.words[index].as_str())
        })
    }
}

/// Lowercase words: letters and digits, apostrophes inside words kept
/// ("don't"), decimal points inside numbers kept ("1.5"), and digits split
/// from letters ("10min" -> "10", "min").
pub(super) fn split_words(text: &str) -> Vec<String> {
    split_words_in_clauses(text)
        .into_iter()
        .map(|(word, _)| word)
        .collect()
}

/// The words with the number of the clause each belongs to; a clause ends at
/// a comma, semicolon, colon, sentence end or line break.
fn split_words_in_clauses(text: &str) -> Vec<(String, usize)> {
    let chars: Vec<char> = text
        .chars()
        .flat_map(char::to_lowercase)
        .map(|c| {
            if matches!(c, '\u{2019}' | '\u{2018}' | '`') {
                '\''
            } else {
                c
            }
        })
        .collect();
    let mut words = Vec::new();
    let mut current = String::new();
    let mut clause = 0;
    for (index, &c) in chars.iter().enumerate() {
        let previous = index.checked_sub(1).and_then(|i| chars.get(i)).copied();
        let next = chars.get(index + 1).copied();
        let joins_word = match c {
            c if c.is_alphanumeric() => true,
            '\'' => {
                previous.is_some_and(char::is_alphabetic) && next.is_some_and(char::is_alphabetic)
            }
            '.' => {
                previous.is_some_and(|p| p.is_ascii_digit())
                    && next.is_some_and(|n| n.is_ascii_digit())
            }
            _ => false,
        };
        if !joins_word {
            flush(&mut current, &mut words, clause);
            if matches!(c, ',' | ';' | ':' | '.' | '!' | '?' | '\n') {
                clause += 1;
            }
            continue;
        }
        let kind_changes = previous.is_some_and(|p| {
            c.is_alphanumeric() && p.is_alphanumeric() && (p.is_ascii_digit() != c.is_ascii_digit())
        });
        if kind_changes {
            flush(&mut current, &mut words, clause);
        }
        current.push(c);
    }
    flush(&mut current, &mut words, clause);
    words
}

fn flush(current: &mut String, words: &mut Vec<(String, usize)>, clause: usize) {
    if !current.is_empty() {
        words.push((std::mem::take(current), clause));
    }
}
