/// What fork choice needs to know about a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub index_block_hash: String,
    pub parent_index_block_hash: String,
    pub height: u64,
    /// Announced by a Nakamoto node (always canonical when announced).
    pub nakamoto: bool,
    /// On the chain we currently follow.
    pub canonical: bool,
}

/// What to do with a newly delivered block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Already known: nothing to do.
    Duplicate,
    /// Its parent is our tip (or we have no tip yet): apply it.
    Extend,
    /// It wins over our tip: roll back `rollback` (tip first, i.e. reverse
    /// chain order), then apply `apply` (oldest first; ends with the new block).
    Reorg {
        rollback: Vec<String>,
        apply: Vec<String>,
    },
    /// It loses fork choice: store it (it may win later), change nothing.
    SideBranch,
    /// Its parent is unknown (or an ancestor is missing): hold it and record a gap.
    Orphan { missing: String },
}

/// Decide what `new` means given our `tip` and a lookup of known headers.
pub fn plan(tip: Option<&Header>, new: &Header, lookup: impl Fn(&str) -> Option<Header>) -> Plan {
    if lookup(&new.index_block_hash).is_some() {
        return Plan::Duplicate;
    }
    let Some(tip) = tip else {
        return Plan::Extend;
    };
    if new.parent_index_block_hash == tip.index_block_hash {
        return Plan::Extend;
    }
    if lookup(&new.parent_index_block_hash).is_none() {
        return Plan::Orphan {
            missing: new.parent_index_block_hash.clone(),
        };
    }
    let wins = if new.nakamoto {
        true
    } else {
        new.height > tip.height
    };
    if !wins {
        return Plan::SideBranch;
    }
    // Walk the new branch down to the first canonical ancestor.
    let mut apply = vec![new.index_block_hash.clone()];
    let mut cursor = new.parent_index_block_hash.clone();
    let ancestor = loop {
        let Some(h) = lookup(&cursor) else {
            return Plan::Orphan { missing: cursor };
        };
        if h.canonical {
            break h;
        }
        apply.push(h.index_block_hash.clone());
        cursor = h.parent_index_block_hash.clone();
    };
    apply.reverse();
    // Walk our chain down from the tip to that ancestor.
    let mut rollback = Vec::new();
    let mut cursor = tip.clone();
    while cursor.index_block_hash != ancestor.index_block_hash {
        if cursor.height <= ancestor.height {
            // Canonical flags disagree with parent links: refuse to guess.
            return Plan::Orphan {
                missing: ancestor.index_block_hash.clone(),
            };
        }
        rollback.push(cursor.index_block_hash.clone());
        match lookup(&cursor.parent_index_block_hash) {
            Some(p) => cursor = p,
            None => {
                return Plan::Orphan {
                    missing: cursor.parent_index_block_hash.clone(),
                }
            }
        }
    }
    Plan::Reorg { rollback, apply }
}
