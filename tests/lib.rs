//! Night Core's end-to-end tests live in `all/` as one integration binary with a
//! module per area; this library is empty so that the package has a target.
#![forbid(unsafe_code)]
