//! Web pieces that the API, the console and every capability share: the one error shape,
//! paging and CSV exports, the console's pager, links, tab bar and severity labels.
//!
//! This module sits below `auth`, `api`, `console` and `capabilities` and imports none of
//! them, so none of those needs another for these pieces (it is what broke the old
//! api <-> auth circle: `auth` answers with [`ApiError`] from here).

pub mod error;
pub mod labels;
pub mod page;
pub mod paging;

pub use error::{ApiError, ErrorBody, ErrorDetail};
