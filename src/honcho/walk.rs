//! The work-units walk: `queue/work-units` page by page, the cursor followed verbatim, each page
//! handed to the caller and dropped (no queue data kept), stopped at the page cap and failed on
//! a cursor loop. Sending each page is the client's; aggregating is the caller's.

use std::collections::HashSet;
use std::fmt::Write as _;

use super::decode::decode;
use super::types::WorkUnitsPage;
use super::{Client, Endpoint, Method, UpstreamError};

/// How a walk ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalkOutcome {
    /// Pages fetched.
    pub pages: u32,
    /// True when the page cap stopped the walk before `next_page` was null.
    pub truncated: bool,
}

impl Client {
    /// Walks `queue/work-units` of `workspace`, handing each page to `on_page` and keeping
    /// nothing. Follows `next_page` verbatim; stops at `max_pages` (truncated) and fails on a
    /// repeated cursor or an empty page that still points further.
    pub async fn walk_work_units<F>(
        &self,
        workspace: &str,
        page_size: u32,
        max_pages: u32,
        mut on_page: F,
    ) -> Result<WalkOutcome, UpstreamError>
    where
        F: FnMut(&WorkUnitsPage<'_>),
    {
        let mut cursor: Option<String> = None;
        let mut seen_cursors: HashSet<String> = HashSet::new();
        let mut pages = 0;
        // The path is built (and percent-encoded) once per walk; each page only sets its query.
        let first_page = self.url(
            &["v3", "workspaces", workspace, "queue", "work-units"],
            &[("size", page_size.to_string())],
        );
        let mut query = String::new();
        loop {
            if pages >= max_pages {
                return Ok(WalkOutcome {
                    pages,
                    truncated: true,
                });
            }
            let mut url = first_page.clone();
            if let Some(cursor) = &cursor {
                // The cursor is already percent-encoded: append it verbatim.
                query.clear();
                let _ = write!(query, "size={page_size}&cursor={cursor}");
                url.set_query(Some(&query));
            }
            let body = self.send(Endpoint::WorkUnits, Method::Get, url).await?;
            pages += 1;
            let page: WorkUnitsPage<'_> = decode(&body)?;
            on_page(&page);
            match page.next_page {
                None => {
                    return Ok(WalkOutcome {
                        pages,
                        truncated: false,
                    });
                }
                Some(next) => {
                    if page.items.is_empty() || !seen_cursors.insert(next.to_string()) {
                        return Err(UpstreamError::CursorLoop { pages });
                    }
                    cursor = Some(next.into_owned());
                }
            }
        }
    }
}
