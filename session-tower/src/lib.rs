//! Placeholder: not implemented yet.
