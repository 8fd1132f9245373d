//! Reciprocal-rank fusion of several ranked result lists (e.g. vector and
//! keyword search).

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

/// The customary `k`: it damps the weight of the very first ranks.
pub const DEFAULT_RRF_K: f32 = 60.0;

/// Fuses ranked lists: each id scores `sum(1 / (k + rank))` over the lists it
/// appears in, with `rank` starting at 1 in each list's given order (the
/// scores inside the lists are not compared, as they live on different
/// scales). An id repeated within one list counts at its best rank only.
/// Results are sorted by fused score; ties keep first-seen order. A `k`
/// that is not a positive number is replaced by [`DEFAULT_RRF_K`].
pub fn reciprocal_rank_fusion<Id>(lists: &[Vec<(Id, f32)>], k: f32) -> Vec<(Id, f32)>
where
    Id: Clone + Eq + Hash,
{
    let k = if k.is_finite() && k > 0.0 {
        k
    } else {
        DEFAULT_RRF_K
    };
    let mut slots: HashMap<Id, usize> = HashMap::new();
    let mut fused: Vec<(Id, f32)> = Vec::new();
    for list in lists {
        let mut seen_in_list: HashSet<&Id> = HashSet::with_capacity(list.len());
        for (position, (id, _)) in list.iter().enumerate() {
            if !seen_in_list.insert(id) {
                continue;
            }
            let contribution = 1.0 / (k + position as f32 + 1.0);
            match slots.get(id) {
                Some(&slot) => fused[slot].1 += contribution,
                None => {
                    slots.insert(id.clone(), fused.len());
                    fused.push((id.clone(), contribution));
                }
            }
        }
    }
    // A stable sort keeps first-seen order among equal scores.
    fused.sort_by(|a, b| b.1.total_cmp(&a.1));
    fused
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_in_both_lists_win() {
        let vector = vec![("a", 0.9), ("b", 0.8), ("c", 0.7)];
        let keyword = vec![("c", 12.0), ("d", 11.0), ("a", 3.0)];
        let fused = reciprocal_rank_fusion(&[vector, keyword], 60.0);
        let ids: Vec<&str> = fused.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, ["a", "c", "b", "d"]);
        assert!((fused[0].1 - (1.0 / 61.0 + 1.0 / 63.0)).abs() < 1e-7);
        assert!((fused[2].1 - 1.0 / 62.0).abs() < 1e-7);
    }

    #[test]
    fn ties_keep_first_seen_order_and_duplicates_count_once() {
        let fused = reciprocal_rank_fusion(&[vec![(1, 0.0), (1, 0.0)], vec![(2, 0.0)]], 60.0);
        assert_eq!(fused, vec![(1, 1.0 / 61.0), (2, 1.0 / 61.0)]);
    }

    #[test]
    fn degenerate_inputs() {
        assert!(reciprocal_rank_fusion::<u32>(&[], 60.0).is_empty());
        assert!(reciprocal_rank_fusion::<u32>(&[vec![], vec![]], 60.0).is_empty());
        let fused = reciprocal_rank_fusion(&[vec![("x", 1.0)]], f32::NAN);
        assert_eq!(fused, vec![("x", 1.0 / 61.0)]);
    }
}
