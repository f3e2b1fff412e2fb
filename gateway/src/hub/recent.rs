//! The newest items of a room that a snapshot carries — the sticker board and the chat
//! history: at most `capacity`, oldest first, with the ids of new items issued here.

use std::collections::VecDeque;

/// The newest items, oldest first, at most `capacity`; ids are issued above the largest one
/// ever used.
#[derive(Debug)]
pub(super) struct Recent<T> {
    items: VecDeque<T>,
    next_id: u64,
    capacity: usize,
}

impl<T> Recent<T> {
    /// What the store had (oldest first; the oldest beyond `capacity` are left out); new ids
    /// start above `max_id`.
    pub fn new(loaded: Vec<T>, max_id: u64, capacity: usize) -> Recent<T> {
        let mut items: VecDeque<T> = loaded.into();
        while items.len() > capacity {
            items.pop_front();
        }
        Recent {
            items,
            next_id: max_id + 1,
            capacity,
        }
    }

    /// The id of the next item (issued: the next call returns the one after).
    pub fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Whether `id` was ever issued (or loaded): 1 ≤ id < the next one.
    pub fn issued(&self, id: u64) -> bool {
        id != 0 && id < self.next_id
    }

    /// Adds `item` as the newest; returns the oldest items that left to keep `capacity`.
    pub fn push(&mut self, item: T) -> Vec<T> {
        self.items.push_back(item);
        let mut evicted = Vec::new();
        while self.items.len() > self.capacity {
            if let Some(old) = self.items.pop_front() {
                evicted.push(old);
            }
        }
        evicted
    }

    /// Keeps the items for which `keep` says so.
    pub fn retain(&mut self, keep: impl FnMut(&T) -> bool) {
        self.items.retain(keep);
    }

    pub fn clear(&mut self) {
        self.items.clear();
    }

    /// Oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.items.iter()
    }
}
