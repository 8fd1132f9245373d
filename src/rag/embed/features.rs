//! Hashed text features for the built-in embedder.
//!
//! Word unigrams, word bigrams and character trigrams of normalised words,
//! hashed with FNV-1a plus a bit mixer. Stable across processes, platforms
//! and releases: changing anything here changes every vector, which requires
//! a new model id.

use unicode_segmentation::UnicodeSegmentation;

/// Feature families; the tag is hashed in so families never collide by design.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Family {
    Word = 1,
    Bigram = 2,
    Trigram = 3,
}

impl Family {
    /// Relative weight: whole words say most, trigrams add robustness to
    /// inflection and typos.
    pub(super) fn weight(self) -> f32 {
        match self {
            Family::Word => 1.0,
            Family::Bigram => 0.7,
            Family::Trigram => 0.35,
        }
    }
}

/// A hashed feature occurrence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Feature {
    pub hash: u64,
    pub family: u8,
}

/// Lower-cased words without punctuation, with a light English plural stem.
pub(super) fn normalised_words(text: &str) -> Vec<String> {
    text.unicode_words()
        .map(|word| stem(word.to_lowercase()))
        .filter(|word| !word.is_empty())
        .collect()
}

fn stem(mut word: String) -> String {
    for possessive in ["'s", "’s"] {
        if word.len() > possessive.len() + 1 && word.ends_with(possessive) {
            word.truncate(word.len() - possessive.len());
        }
    }
    if word.chars().count() <= 3 || !word.is_ascii() {
        return word;
    }
    if let Some(stem) = word.strip_suffix("ies") {
        return format!("{stem}y");
    }
    if word.ends_with("sses") {
        word.truncate(word.len() - 2);
        return word;
    }
    if word.ends_with('s') && !["ss", "us", "is"].iter().any(|end| word.ends_with(end)) {
        word.pop();
    }
    word
}

/// Every feature occurrence of `words`, unsorted.
pub(super) fn features(words: &[String]) -> Vec<Feature> {
    let mut out = Vec::with_capacity(words.len() * 8);
    let mut chars: Vec<char> = Vec::new();
    for (index, word) in words.iter().enumerate() {
        out.push(feature(Family::Word, &[word.as_bytes()]));
        if let Some(next) = words.get(index + 1) {
            out.push(feature(
                Family::Bigram,
                &[word.as_bytes(), b"\x1F", next.as_bytes()],
            ));
        }
        chars.clear();
        chars.push('<');
        chars.extend(word.chars());
        chars.push('>');
        for window in chars.windows(3) {
            let mut buffers = [[0u8; 4]; 3];
            let [a, b, c] = &mut buffers;
            let parts = [
                window[0].encode_utf8(a).as_bytes(),
                window[1].encode_utf8(b).as_bytes(),
                window[2].encode_utf8(c).as_bytes(),
            ];
            out.push(feature(Family::Trigram, &parts));
        }
    }
    out
}

fn feature(family: Family, parts: &[&[u8]]) -> Feature {
    Feature {
        hash: stable_hash(family as u8, parts),
        family: family as u8,
    }
}

/// FNV-1a over the family tag and the parts, then the MurmurHash3 finaliser
/// so that every output bit depends on every input bit.
pub(super) fn stable_hash(tag: u8, parts: &[&[u8]]) -> u64 {
    let mut hash = fnv1a(FNV_OFFSET, &[tag]);
    for part in parts {
        hash = fnv1a(hash, part);
    }
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^ (hash >> 33)
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(PRIME);
    }
    hash
}

pub(super) fn family_weight(tag: u8) -> f32 {
    match tag {
        1 => Family::Word.weight(),
        2 => Family::Bigram.weight(),
        _ => Family::Trigram.weight(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case_punctuation_and_plurals() {
        assert_eq!(
            normalised_words("The Refunds, policies & CLASSES: customer's bus! Ünïcode"),
            [
                "the",
                "refund",
                "policy",
                "class",
                "customer",
                "bus",
                "ünïcode"
            ]
        );
    }

    #[test]
    fn fnv1a_matches_reference_vectors() {
        assert_eq!(fnv1a(FNV_OFFSET, b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(FNV_OFFSET, b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(FNV_OFFSET, b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn hash_is_stable() {
        // Pinned: a change here silently invalidates every stored vector.
        assert_eq!(stable_hash(1, &[b"refund"]), 0x3a30_e2ff_5362_4ef8);
        assert_eq!(stable_hash(3, &[b"<", b"r", b"e"]), 0x811a_7e16_8e20_9d38);
    }

    #[test]
    fn feature_counts() {
        let words = normalised_words("red apple");
        let features = features(&words);
        // 2 words + 1 bigram + trigrams of "<red>" (3) and "<apple>" (5).
        assert_eq!(features.len(), 2 + 1 + 3 + 5);
    }
}
