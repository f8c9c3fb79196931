//! The tamper-evident audit log: an HMAC-SHA256 hash chain written by one writer per sandbox and
//! read by `lasso audit verify|view|list`.
