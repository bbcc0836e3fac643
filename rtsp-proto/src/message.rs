//! TODO (being written).
