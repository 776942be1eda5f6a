//! Layer extraction (being written).
