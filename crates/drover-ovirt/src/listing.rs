//! Listing a collection: the `search` query with its `sortby` and `page` clauses,
//! `case_sensitive`, and `max`.

use crate::api::Req;
use crate::fault::ApiResult;
use crate::search::{ObjectType, Query, Subject};

/// Results per page of a `page N` clause when the request gives no `max`.
pub const DEFAULT_PAGE_SIZE: usize = 100;

/// The members of `items` the request's search selects, in its order, limited by `max`.
pub fn select<S: Subject>(
    req: &Req,
    target: &'static ObjectType,
    mut items: Vec<S>,
) -> ApiResult<Vec<S>> {
    let max = req.max()?;
    let Some(text) = req.q("search").filter(|s| !s.trim().is_empty()) else {
        items.truncate(max.unwrap_or(usize::MAX));
        return Ok(items);
    };
    let case_sensitive = req.flag("case_sensitive")?.unwrap_or(false);
    let query = Query::parse(text, target, case_sensitive)?;
    items.retain(|s| query.matches(s));
    query.sort_subjects(&mut items);
    let items = match query.page() {
        Some(page) => {
            let size = max.unwrap_or(DEFAULT_PAGE_SIZE);
            items
                .into_iter()
                .skip((page as usize - 1).saturating_mul(size))
                .take(size)
                .collect()
        }
        None => {
            items.truncate(max.unwrap_or(usize::MAX));
            items
        }
    };
    Ok(items)
}
