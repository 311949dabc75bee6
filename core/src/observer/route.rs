/// The observer endpoints stacks-node POSTs to (stacks-core `docs/event-dispatcher.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    NewBlock,
    NewBurnBlock,
    NewMempoolTx,
    DropMempoolTx,
    NewMicroblocks,
    Attachments,
    /// `/stackerdb_chunks`, `/proposal_response`, `/mined_*`: acknowledged, not processed.
    Other,
}

impl Route {
    /// Map a request path to a route.
    pub fn from_path(path: &str) -> Route {
        match path {
            "/new_block" => Route::NewBlock,
            "/new_burn_block" => Route::NewBurnBlock,
            "/new_mempool_tx" => Route::NewMempoolTx,
            "/drop_mempool_tx" => Route::DropMempoolTx,
            "/new_microblocks" => Route::NewMicroblocks,
            "/attachments/new" => Route::Attachments,
            _ => Route::Other,
        }
    }

    /// The path, for logs, metrics and dead letters.
    pub fn path(self) -> &'static str {
        match self {
            Route::NewBlock => "/new_block",
            Route::NewBurnBlock => "/new_burn_block",
            Route::NewMempoolTx => "/new_mempool_tx",
            Route::DropMempoolTx => "/drop_mempool_tx",
            Route::NewMicroblocks => "/new_microblocks",
            Route::Attachments => "/attachments/new",
            Route::Other => "other",
        }
    }
}
