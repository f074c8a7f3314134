//! s62: audit logging for records systems holding personal data (DPA 2018 s62).
pub fn placeholder() {}
