//! In-process cache of frequently read metadata (content items, packs): bounded in size, entries
//! expire after a TTL, and every write through the API invalidates the entry it changed.

use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;

use super::catalog::PackRow;
use super::content::ContentRow;

#[derive(Clone)]
pub struct MetadataCache {
    content: Cache<String, Arc<ContentRow>>,
    packs: Cache<String, Arc<PackRow>>,
}

impl std::fmt::Debug for MetadataCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetadataCache")
            .field("content", &self.content.entry_count())
            .field("packs", &self.packs.entry_count())
            .finish()
    }
}

impl MetadataCache {
    pub fn new(capacity: u64, ttl: Duration) -> Self {
        Self {
            content: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
            packs: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
        }
    }

    pub fn content(&self, id: &str) -> Option<Arc<ContentRow>> {
        self.content.get(id)
    }

    pub fn put_content(&self, row: ContentRow) -> Arc<ContentRow> {
        let row = Arc::new(row);
        self.content.insert(row.id.clone(), row.clone());
        row
    }

    pub fn invalidate_content(&self, id: &str) {
        self.content.invalidate(id);
    }

    pub fn pack(&self, id: &str) -> Option<Arc<PackRow>> {
        self.packs.get(id)
    }

    pub fn put_pack(&self, row: PackRow) -> Arc<PackRow> {
        let row = Arc::new(row);
        self.packs.insert(row.id.clone(), row.clone());
        row
    }

    pub fn invalidate_pack(&self, id: &str) {
        self.packs.invalidate(id);
    }
}
