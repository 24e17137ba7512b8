//! Paging and CSV export rules of every list in the REST API.

use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::ApiError;

/// Rows per page when the caller does not say.
pub const DEFAULT_PER_PAGE: i64 = 100;

pub const MAX_PER_PAGE: i64 = 1000;

/// Rows in one CSV export, at most.
pub const MAX_EXPORT_ROWS: i64 = 100_000;

/// (page, per_page) checked; a CSV export takes every row.
pub(crate) fn paging(
    page: Option<i64>,
    per_page: Option<i64>,
    csv: bool,
) -> Result<(i64, i64), ApiError> {
    if csv {
        return Ok((1, MAX_EXPORT_ROWS));
    }
    let page = page.unwrap_or(1);
    if page < 1 {
        return Err(ApiError::invalid_query("page: must be at least 1"));
    }
    let per_page = per_page.unwrap_or(DEFAULT_PER_PAGE);
    if !(1..=MAX_PER_PAGE).contains(&per_page) {
        return Err(ApiError::invalid_query(format!(
            "per_page: must be between 1 and {MAX_PER_PAGE}"
        )));
    }
    Ok((page, per_page))
}

pub(crate) fn is_csv(format: Option<&str>) -> Result<bool, ApiError> {
    match format.unwrap_or("json") {
        "json" | "" => Ok(false),
        "csv" => Ok(true),
        other => Err(ApiError::invalid_query(format!(
            "format: {other:?} is not one of json, csv"
        ))),
    }
}

/// A CSV download. Cells that a spreadsheet would run as a formula are prefixed with `'`:
/// inventory text comes from hosts, and a hostile host must not get code into an analyst's
/// spreadsheet.
pub fn csv_response(filename: &str, header: &[&str], rows: Vec<Vec<String>>) -> Response {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(header);
    for row in rows {
        let safe: Vec<String> = row
            .into_iter()
            .map(|c| {
                if c.starts_with(['=', '+', '-', '@', '\t', '\r']) {
                    format!("'{c}")
                } else {
                    c
                }
            })
            .collect();
        let _ = w.write_record(&safe);
    }
    let body = w.into_inner().unwrap_or_default();
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        body,
    )
        .into_response()
}
