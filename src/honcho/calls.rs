//! The calls that are one logical request each: workspace discovery (every page of
//! `workspaces/list`) and queue/status (`deriver/status` on `/v2`), decoded into [`super::types`].
//! Sending is [`super::retry`]'s; the work-units walk is [`super::walk`]'s.

use super::decode::decode;
use super::types::{QueueStatus, WorkspacePage};
use super::{ApiVersion, Client, Endpoint, Method, StatusFilter, UpstreamError};

impl Client {
    /// All workspace names, following every page of `POST /v{2,3}/workspaces/list`.
    pub async fn list_workspaces(&self, version: ApiVersion) -> Result<Vec<String>, UpstreamError> {
        const PAGE_SIZE: u64 = 100;
        const MAX_PAGES: u64 = 10_000;
        let mut names = Vec::new();
        let mut page = 1;
        loop {
            let url = self.url(
                &[version.segment(), "workspaces", "list"],
                &[("page", page.to_string()), ("size", PAGE_SIZE.to_string())],
            );
            let body = self
                .send(Endpoint::Discovery, Method::PostEmptyJson, url)
                .await?;
            let parsed: WorkspacePage = decode(&body)?;
            let returned = parsed.items.len();
            names.extend(parsed.items.into_iter().map(|item| item.id));
            if returned == 0 || page >= parsed.pages || page >= MAX_PAGES {
                break;
            }
            page += 1;
        }
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// One queue/status call (`deriver/status` on `/v2`).
    pub async fn fetch_status(
        &self,
        version: ApiVersion,
        workspace: &str,
        filter: &StatusFilter,
        endpoint: Endpoint,
    ) -> Result<QueueStatus, UpstreamError> {
        let path: [&str; 5] = match version {
            ApiVersion::V2 => ["v2", "workspaces", workspace, "deriver", "status"],
            ApiVersion::V3 => ["v3", "workspaces", workspace, "queue", "status"],
        };
        let mut query = Vec::new();
        for (name, value) in [
            ("observer_id", &filter.observer_id),
            ("sender_id", &filter.sender_id),
            ("session_id", &filter.session_id),
        ] {
            if let Some(value) = value {
                query.push((name, value.clone()));
            }
        }
        let url = self.url(&path, &query);
        let body = self.send(endpoint, Method::Get, url).await?;
        decode(&body)
    }
}
